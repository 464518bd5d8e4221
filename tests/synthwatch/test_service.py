"""The HTTP service as a client sees it: a real uvicorn server on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.embeddings.test_decode import _png_header_only
from tests.store.test_index import TINY, _write_crops

TOKEN = "test-token-5f2c"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _synthwatch(store, *args, check=True):
    return subprocess.run([sys.executable, "-m", "synthwatch", "--store", str(store), *map(str, args)],
                          capture_output=True, text=True, check=check)


@pytest.fixture
def server(cli, store, tmp_path):
    _write_crops(tmp_path / "in" / "real", 12, seed=1)
    _write_crops(tmp_path / "in" / "synthetic" / "gen", 12, seed=2)
    cli("--store", store, "ingest", tmp_path / "in", "--json")
    cli("--store", store, "embed", *TINY, "--json")
    cli("--store", store, "index", "--json")
    port = _free_port()
    env = {**os.environ, "SYNTHWATCH_API_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "synthwatch", "--store", str(store), "serve", "--port", str(port),
         "--max-upload-mb", "0.5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    _wait_until_up(base, process)
    yield base, store, tmp_path
    process.terminate()
    process.wait(timeout=10)


def _wait_until_up(base, process):
    """Poll until the service answers; a process that died fails at once, one that never answers
    is stopped by pytest-timeout (no wall-clock bound here)."""
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).json()["status"] == "ok":
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)


def _post(base, path, data, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base}/similar", params=params, headers=headers,
                      files={"file": (path, data, "application/octet-stream")}, timeout=30)


def _chunked_upload(base, size):
    """A multipart upload of ``size`` bytes streamed in chunks, without a Content-Length."""
    boundary = "synthwatch-test"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(size // 65536):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    return httpx.post(f"{base}/similar", content=body(), timeout=30, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": f"multipart/form-data; boundary={boundary}"})


def test_health_says_little_without_the_token(server):
    base, _, _ = server
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    detailed = httpx.get(f"{base}/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert detailed["status"] == "ok" and detailed["ntotal"] == 24 and detailed["backbone_id"].startswith("test-tiny")


def test_similar_needs_the_token(server):
    base, _, tmp_path = server
    image = next((tmp_path / "in" / "real").iterdir()).read_bytes()
    assert _post(base, "q.png", image, token=None).status_code == 401
    assert _post(base, "q.png", image, token="wrong").status_code == 401
    answer = _post(base, "q.png", image, k=3, label="synthetic")
    assert answer.status_code == 200
    body = answer.json()
    neighbors = body["results"][0]["neighbors"]
    assert body["results"][0]["query"] == "q.png" and len(neighbors) == 3
    assert {"image_id", "label", "generator", "score", "path"} <= set(neighbors[0])
    assert all(n["label"] == "synthetic" for n in neighbors)


def test_the_schema_needs_the_token_and_documents_every_error(server):
    base, _, _ = server
    assert httpx.get(f"{base}/openapi.json").status_code == 401
    assert httpx.get(f"{base}/docs").status_code == 404  # Swagger UI would load scripts from a CDN
    schema = httpx.get(f"{base}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    for route in ("/similar", "/detect"):
        responses = schema["paths"][route]["post"]["responses"]
        assert {"200", "401", "413", "422", "503"} <= set(responses)
        assert responses["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert schema["components"]["schemas"]["Problem"]["properties"]["detail"]["type"] == "string"


def test_every_error_answer_is_one_line_of_detail(server):
    base, _, tmp_path = server
    image = next((tmp_path / "in" / "real").iterdir()).read_bytes()
    answers = [_post(base, "q.png", image, token=None), _post(base, "q.png", image, k=0),
               _post(base, "q.png", image, label="fake"), _post(base, "x.png", b"hello"),
               httpx.post(f"{base}/similar", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)]
    assert [a.status_code for a in answers] == [401, 422, 422, 422, 422]
    for answer in answers:
        assert set(answer.json()) == {"detail"} and isinstance(answer.json()["detail"], str)
    assert answers[1].json()["detail"].startswith("Expected a valid request, but query.k: ")
    assert "body.file: Field required" in answers[4].json()["detail"]


def test_bad_uploads_get_4xx_with_a_reason(server):
    base, _, _ = server
    too_big = _post(base, "big.png", b"\0" * 600_000)
    assert too_big.status_code == 413 and "at most 524,288 bytes" in too_big.json()["detail"]
    bomb = _post(base, "bomb.png", _png_header_only(60_000, 60_000))
    assert bomb.status_code == 422 and "decompression bomb" in bomb.json()["detail"]
    large = _post(base, "large.png", _png_header_only(8000, 6000))  # 48 M pixels: ingest takes it, the service not
    assert large.status_code == 422 and "over the limit of 40,000,000" in large.json()["detail"]
    assert _chunked_upload(base, 5_000_000).status_code == 413  # no Content-Length to check up front
    text = _post(base, "notes.jpg", b"hello")
    assert text.status_code == 422 and "not an image" in text.json()["detail"]
    from tests.hostile_images import tiff_with_a_broken_second_frame

    hostile = _post(base, "page.tif", tiff_with_a_broken_second_frame())  # Pillow raises TypeError inside
    assert hostile.status_code == 422 and "Missing dimensions" in hostile.json()["detail"]
    assert _post(base, "x.png", b"x", k=0).status_code == 422


def test_keeps_answering_while_the_pipeline_writes_and_picks_up_the_new_index(server):
    base, store, tmp_path = server
    query = next((tmp_path / "in" / "real").iterdir()).read_bytes()
    before = httpx.get(f"{base}/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    _write_crops(tmp_path / "new" , 40, seed=7)
    pipeline = subprocess.Popen(
        f"{sys.executable} -m synthwatch --store {store} ingest {tmp_path / 'new'} --label real --batch-size 2 --json"
        f" && {sys.executable} -m synthwatch --store {store} embed {' '.join(TINY)} --shard-images 4 --json"
        f" && {sys.executable} -m synthwatch --store {store} index --json",
        shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    answered = 0
    while pipeline.poll() is None:
        response = _post(base, "q.png", query, k=5)
        assert response.status_code == 200, response.text
        answered += 1
    assert pipeline.returncode == 0, pipeline.communicate()
    assert answered >= 3
    after = httpx.get(f"{base}/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert after["index"] != before["index"] and after["ntotal"] == before["ntotal"] + 40
    new_image = next((tmp_path / "new").iterdir())
    top = _post(base, new_image.name, new_image.read_bytes(), k=1).json()["results"][0]["neighbors"][0]
    assert top["path"] == str(new_image)  # served from the rebuilt index, no restart


def test_refuses_to_start_without_a_token_or_off_loopback_without_auth(store):
    env = {k: v for k, v in os.environ.items() if k != "SYNTHWATCH_API_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "synthwatch", "--store", str(store), "serve"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "SYNTHWATCH_API_TOKEN" in done.stderr
    done = subprocess.run([sys.executable, "-m", "synthwatch", "--store", str(store), "serve",
                           "--no-auth", "--host", "0.0.0.0"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "loopback" in done.stderr


def test_detect_follows_the_champion_without_restart(proxy_store, cli):
    from synthwatch.store.registry import HeadRegistry
    from synthwatch.store.layout import StoreLayout

    store, corpus = proxy_store
    _, first, _ = cli("--store", store, "train", "--n-boot", "50", "--auroc-floor", "0", "--tpr-floor", "0", "--json")
    port = _free_port()
    env = {**os.environ, "SYNTHWATCH_API_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "synthwatch", "--store", str(store), "serve", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process)
        fake = next((corpus.out / "synthetic" / "ae-nearest").rglob("*.png"))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        ask = lambda: httpx.post(f"{base}/detect", params={"k": 3}, headers=headers,  # noqa: E731
                                 files={"file": (fake.name, fake.read_bytes())}, timeout=60)
        assert httpx.post(f"{base}/detect", files={"file": ("x.png", b"x")}).status_code == 401
        answer = ask().json()
        result = answer["results"][0]
        assert answer["head_version"] == first["version"] == result["head_version"]
        assert {"score", "synthetic", "threshold", "attribution", "neighbors"} <= set(result)
        assert result["neighbors"][0]["path"] == str(fake)
        _, second, _ = cli("--store", store, "train", "--head", "knn", "--n-boot", "50", "--json")
        assert second["champion"] == first["version"] and second["decision"] == "rejected"  # floors
        HeadRegistry(StoreLayout(store)).promote(second["version"], reason="test")
        assert ask().json()["head_version"] == second["version"]  # no restart
    finally:
        process.terminate()
        process.wait(timeout=10)
