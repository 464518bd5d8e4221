"""The HTTP service as a client sees it: a real uvicorn server on a loopback port."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from synthwatch.cli import main
from tests.embeddings.test_decode import _png_header_only
from tests.store.test_index import TINY, _write_crops
from tests.synthwatch.serving import TOKEN, running_service


def _synthwatch(store, *args, check=True):
    return subprocess.run([sys.executable, "-m", "synthwatch", "--store", str(store), *map(str, args)],
                          capture_output=True, text=True, check=check)


def _indexed_store(folder: Path) -> Path:
    """A store in ``folder`` of 12 real and 12 fake crops (originals under ``folder/in``), embedded
    and indexed, with no head."""
    _write_crops(folder / "in" / "real", 12, seed=1)
    _write_crops(folder / "in" / "synthetic" / "gen", 12, seed=2)
    store = folder / "store"
    for args in (["ingest", folder / "in"], ["embed", *TINY], ["index"]):
        assert main(["--store", str(store), *map(str, args), "--json"]) == 0, args
    return store


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(base URL, store, folder)`` of `serve --max-upload-mb 0.5` over an indexed store without a
    head, shared by this module's tests: they read it (one adds an image it does not index)."""
    folder = tmp_path_factory.mktemp("indexed")
    store = _indexed_store(folder)
    with running_service(store, "--max-upload-mb", "0.5") as base:
        yield base, store, folder


@pytest.fixture
def private_server(tmp_path):
    """The same over a store of this test's own, for a test that writes to it."""
    store = _indexed_store(tmp_path)
    with running_service(store, "--max-upload-mb", "0.5") as base:
        yield base, store, tmp_path


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


def test_keeps_answering_while_the_pipeline_writes_and_picks_up_the_new_index(private_server):
    base, store, tmp_path = private_server
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
    with running_service(store) as base:
        fake = next((corpus.out / "synthetic" / "ae-nearest").rglob("*.png"))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        ask = lambda: httpx.post(f"{base}/detect", params={"k": 3}, headers=headers,  # noqa: E731
                                 files={"file": (fake.name, fake.read_bytes())}, timeout=60)
        assert httpx.post(f"{base}/detect", files={"file": ("x.png", b"x")}).status_code == 401
        answer = ask().json()
        result = answer["results"][0]
        assert answer["head_version"] == first["version"] == result["head_version"]
        assert {"score", "synthetic", "threshold", "attribution", "neighbors"} <= set(result)
        assert result["neighbors"][0]["path"] == str(fake) and len(result["neighbors"][0]["image_id"]) == 64
        _, second, _ = cli("--store", store, "train", "--head", "knn", "--n-boot", "50", "--json")
        assert second["champion"] == first["version"] and second["decision"] == "rejected"  # floors
        HeadRegistry(StoreLayout(store)).promote(second["version"], reason="test")
        assert ask().json()["head_version"] == second["version"]  # no restart


def _get(base, path, token=TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{base}{path}", params=params, headers=headers, timeout=30)


def test_thumbnails_are_small_jpegs_of_stored_originals_found_by_id(server, cli):
    base, store, tmp_path = server
    query = next((tmp_path / "in" / "real").iterdir())
    neighbor = _post(base, query.name, query.read_bytes(), k=1).json()["results"][0]["neighbors"][0]
    assert neighbor["image_id"] == hashlib.sha256(query.read_bytes()).hexdigest()
    path = f"/thumbnail/{neighbor['image_id']}"
    assert _get(base, path, token=None).status_code == 401
    assert _get(base, path, token="wrong").status_code == 401
    answer = _get(base, path, size=32)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(answer.content)) as image:
        assert image.format == "JPEG" and max(image.size) == 32
    with Image.open(io.BytesIO(_get(base, path).content)) as image:
        assert image.size == (48, 48)  # never enlarged
    too_large = _get(base, path, size=4096)
    assert too_large.status_code == 422
    assert too_large.json()["detail"].startswith("Expected a valid request, but query.size")
    unknown = _get(base, f"/thumbnail/{'0' * 64}")
    assert unknown.status_code == 404 and "is not one" in unknown.json()["detail"]
    for bad in ("not-an-id", "%2E%2E%2Fcatalog.duckdb", neighbor["image_id"].upper()):
        answer = _get(base, f"/thumbnail/{bad}")
        assert answer.status_code in (404, 422) and set(answer.json()) == {"detail"}
        assert answer.headers["content-type"] == "application/json"
    referenced = _write_crops(tmp_path / "in-place", 1, seed=9)[0]
    cli("--store", store, "ingest", referenced.parent, "--label", "real", "--no-copy", "--json")
    in_place = _get(base, f"/thumbnail/{hashlib.sha256(referenced.read_bytes()).hexdigest()}")
    assert in_place.status_code == 404 and "--no-copy" in in_place.json()["detail"]


def test_models_answers_what_models_list_and_show_print(trained_service, cli):
    base, store, _ = trained_service
    assert _get(base, "/models", token=None).status_code == 401
    registry = _get(base, "/models").json()
    _, listed, _ = cli("--store", store, "models", "list", "--json")
    assert {k: v for k, v in registry.items() if k != "audit"} == listed and registry["champion"]
    assert [e["action"] for e in registry["audit"]] == ["create", "promote", "decide"]
    champion = _get(base, f"/models/{registry['champion']}").json()
    _, shown, _ = cli("--store", store, "models", "show", registry["champion"], "--json")
    assert champion == shown and champion["champion"] is True
    assert {"name", "value", "threshold", "passed"} <= set(champion["gate"]["checks"][0])
    unknown = _get(base, "/models/h20990101-000000-abcdef")
    assert unknown.status_code == 404 and "is not one" in unknown.json()["detail"]
    assert _get(base, "/models/..%2Fcatalog.duckdb").status_code in (404, 422)
    assert _get(base, "/models/x", token=None).status_code == 401
    assert _get(base, "/models/.hidden").status_code == 422


def test_a_versions_report_is_served_by_version_only(trained_service):
    base, store, _ = trained_service
    champion = _get(base, "/models").json()["champion"]
    listed = {m["version"]: m["report"] for m in _get(base, "/models").json()["models"]}
    assert listed[champion] == f"reports/{champion}.html"  # relative to the store: no server path given out
    assert _get(base, f"/reports/{champion}", token=None).status_code == 401
    report = _get(base, f"/reports/{champion}")
    assert report.status_code == 200 and report.content == (store / "reports" / f"{champion}.html").read_bytes()
    assert "script-src" not in report.headers["content-security-policy"]  # nothing in it may run
    missing = _get(base, "/reports/h20990101-000000-abcdef")
    assert missing.status_code == 404 and "has none" in missing.json()["detail"]
    assert _get(base, "/reports/..%2Fcatalog.duckdb").status_code in (404, 422)
    assert _get(base, "/reports/.hidden").status_code == 422  # only version names reach the store


def test_the_page_and_its_files_need_no_token_and_hold_no_data(trained_service):
    base, _, _ = trained_service
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/web/app.js"' in page.text and "://" not in page.text
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        answer = httpx.get(f"{base}/web/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert "://" not in answer.text  # nothing loaded from elsewhere
    assert httpx.get(f"{base}/web/index.html").status_code == 404
    assert httpx.get(f"{base}/web/..%2F..%2Fservice.py").status_code == 404


def _detect(base, data: bytes, **params):
    return httpx.post(f"{base}/detect", params=params, headers={"Authorization": f"Bearer {TOKEN}"},
                      files={"file": ("q.png", data, "application/octet-stream")}, timeout=120)


def _logged(store, source: str, expected: int) -> list[dict]:
    """The prediction log's rows tagged ``source``, once ``expected`` of them are written (the
    service flushes every few seconds; pytest-timeout bounds the wait)."""
    import time

    from synthwatch.store.layout import StoreLayout
    from synthwatch.store.predictions import read_predictions

    while True:
        rows = [r for r in read_predictions(StoreLayout(store)).to_pylist() if r["source"] == source]
        if len(rows) >= expected:
            return rows
        time.sleep(0.5)


def test_every_verdict_of_many_concurrent_requests_is_logged_exactly(trained_service):
    from concurrent.futures import ThreadPoolExecutor

    base, store, originals = trained_service
    images = sorted(originals.rglob("*.png"))[:12]
    uploads = [images[n % len(images)].read_bytes() for n in range(48)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda data: _detect(base, data, k=2, source="load-test"), uploads))
    assert all(a.status_code == 200 for a in answers)
    rows = _logged(store, "load-test", len(uploads))
    assert len(rows) == len(uploads)  # none lost, none twice
    expected = sorted((hashlib.sha256(data).hexdigest(), a.json()["results"][0]["score"])
                      for data, a in zip(uploads, answers))
    assert sorted((r["image_id"], r["score"]) for r in rows) == expected
    first = answers[0].json()["results"][0]
    row = next(r for r in rows if r["image_id"] == hashlib.sha256(uploads[0]).hexdigest())
    assert (row["synthetic"], row["threshold"], row["head_version"], row["channel"]) == \
        (first["synthetic"], first["threshold"], first["head_version"], "http")
    assert row["nearest_fake_distance"] == pytest.approx(1 - first["neighbors"][0]["score"], abs=1e-6)
    assert row["nearest_fake_generator"] == first["neighbors"][0]["generator"]
    assert _detect(base, uploads[0], source="no spaces allowed").status_code == 422
    # each row keeps the unit vector its nearest known fakes were looked up with
    from synthwatch.store.layout import StoreLayout
    from synthwatch.store.predictions import prediction_rows, read_predictions

    logged = [r for r in prediction_rows(read_predictions(StoreLayout(store), vectors=True)) if r["source"] == "load-test"]
    assert {r["embedding_backbone"] for r in logged} == {row["backbone_id"]}
    by_image = {}
    for r in logged:
        assert np.linalg.norm(r["embedding"]) == pytest.approx(1, abs=1e-5)
        by_image.setdefault(r["image_id"], []).append(r["embedding"])
    assert all(np.allclose(vectors[0], v, atol=1e-5) for vectors in by_image.values() for v in vectors)


def test_a_second_process_keeps_uploads_and_both_write_one_log(trained_service, cli, tmp_path):
    base, store, originals = trained_service
    image = sorted(originals.rglob("*.png"))[0]
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    with running_service(store, "--keep-uploads") as second:
        assert _detect(second, image.read_bytes(), source="second-process").status_code == 200
    kept = store / "uploads" / digest[:2] / digest
    assert kept.read_bytes() == image.read_bytes()  # stopped: flushed at shutdown, and the image kept
    assert [r["image_id"] for r in _logged(store, "second-process", 1)] == [digest]
    code, _, _ = cli("--store", store, "detect", image, "--log", "--source", "from-the-cli", "--json")
    assert code == 0
    (row,) = _logged(store, "from-the-cli", 1)
    assert (row["image_id"], row["channel"]) == (digest, "cli")
    code, _, err = cli("--store", store, "detect", image, "--source", "x")
    assert code == 1 and "--source only with --log" in err


def _scrape(base) -> dict:
    """``{(metric sample name, labels as a sorted tuple): value}`` of /metrics, read with
    Prometheus's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = _get(base, "/metrics").text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_requests_latency_and_verdicts_in_prometheus_format(trained_service):
    base, store, originals = trained_service
    assert _get(base, "/metrics", token=None).status_code == 401
    before = _scrape(base)
    images = sorted(originals.rglob("*.png"))[:5]
    answers = [_detect(base, image.read_bytes(), k=0).json()["results"][0] for image in images]
    assert _detect(base, b"not an image").status_code == 422
    image_id = hashlib.sha256(images[0].read_bytes()).hexdigest()
    assert _get(base, f"/thumbnail/{image_id}").status_code == 200
    after = _scrape(base)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("synthwatch_requests_total", route="/detect", status="200") == 5
    assert delta("synthwatch_requests_total", route="/detect", status="422") == 1
    assert delta("synthwatch_request_seconds_count", route="/detect") == 6
    assert delta("synthwatch_request_seconds_bucket", route="/detect", le="+Inf") == 6
    flagged = sum(a["synthetic"] for a in answers)
    assert (delta("synthwatch_verdicts_total", verdict="synthetic"), delta("synthwatch_verdicts_total", verdict="real")) \
        == (flagged, 5 - flagged)
    champion = answers[0]["head_version"]
    assert after[("synthwatch_head_info", (("version", champion),))] == 1
    assert delta("synthwatch_requests_total", route="/thumbnail/{image_id}", status="200") == 1  # the template:
    assert not any(image_id in dict(labels).get("route", "") for _, labels in after)  # ids never become labels


def test_ready_waits_for_a_champion_and_an_index_while_health_says_alive(trained_service, server):
    base, _, _ = trained_service
    assert _get(base, "/ready", token=None).json() == {"ready": True}
    assert _get(base, "/ready").json()["champion"]
    bare, _, _ = server  # an indexed store with no head yet
    refused = _get(bare, "/ready", token=None)
    assert refused.status_code == 503 and refused.json()["detail"] == "not ready"
    explained = _get(bare, "/ready")
    assert explained.status_code == 503 and explained.json()["detail"] != "not ready"
    assert _get(bare, "/health", token=None).status_code == 200


def test_a_batch_is_scored_as_its_images_one_by_one_and_a_bad_one_is_an_answer(trained_service):
    base, _, originals = trained_service
    images = sorted(originals.rglob("*.png"))[:5]
    files = [("file", (image.name, image.read_bytes(), "image/png")) for image in images]
    files.insert(2, ("file", ("broken.png", b"not an image", "image/png")))
    batch = httpx.post(f"{base}/detect", params={"k": 1, "source": "batch-test"},
                       headers={"Authorization": f"Bearer {TOKEN}"}, files=files, timeout=120)
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert [r["query"] for r in results] == [name for _, (name, _, _) in files]
    assert "error" in results[2] and "score" not in results[2]
    for image, result in zip(images, results[:2] + results[3:]):
        alone = _detect(base, image.read_bytes(), k=1).json()["results"][0]
        assert result["score"] == alone["score"] and result["neighbors"] == alone["neighbors"]
    assert len(_logged(trained_service[1], "batch-test", 5)) == 5  # the refused image is not logged
    too_many = [("file", (f"{n}.png", images[0].read_bytes(), "image/png")) for n in range(33)]
    refused = httpx.post(f"{base}/detect", headers={"Authorization": f"Bearer {TOKEN}"}, files=too_many, timeout=120)
    assert refused.status_code == 422 and "at most 32 images" in refused.json()["detail"]


def test_the_schema_types_every_answer_and_every_error(trained_service):
    base, _, _ = trained_service
    schema = _get(base, "/openapi.json").json()
    detect = schema["paths"]["/detect"]["post"]["responses"]
    assert detect["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Detections")
    assert {"401", "413", "422", "503"} <= set(detect)
    assert all(detect[code]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")
               for code in ("401", "413", "422", "503"))
    detection = schema["components"]["schemas"]["Detection"]["properties"]
    assert {"score", "synthetic", "threshold", "head_version", "attribution", "neighbors", "error"} <= set(detection)
    similar = schema["paths"]["/similar"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert similar["$ref"].endswith("/Similar")


def test_the_access_log_has_a_line_per_request_and_never_the_token(trained_service, tmp_path):
    _, store, originals = trained_service
    output = tmp_path / "serve.log"
    image = sorted(originals.rglob("*.png"))[0]
    with running_service(store, "--access-log", output=output) as base:
        assert _detect(base, image.read_bytes(), k=0, source="access-log-test").status_code == 200
        assert _get(base, "/models", token="wrong").status_code == 401
    lines = output.read_text().splitlines()
    assert any('"POST /detect?k=0&source=access-log-test HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /models HTTP/1.1" 401' in line for line in lines)
    assert TOKEN not in output.read_text() and "wrong" not in output.read_text()
