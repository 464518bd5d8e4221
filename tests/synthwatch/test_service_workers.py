"""`synthwatch serve --workers N`: several processes on one port, which a client sees as one
service: right answers from any of them, /metrics counting for all, one prediction log."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.synthwatch.serving import TOKEN, _free_port, build_trained_store, running_service

REQUESTS = 40


@pytest.fixture(scope="module")
def fleet_store(tmp_path_factory):
    """A trained store of this module's own: its prediction log must hold only this module's rows."""
    return build_trained_store(tmp_path_factory.mktemp("fleet"))


def _detect(base: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{base}/detect", params={"k": 2, "source": "fleet"}, timeout=120,
                      headers={"Authorization": f"Bearer {TOKEN}"},
                      files={"file": ("q.png", data, "application/octet-stream")})


def _scrape(base: str) -> dict:
    """``{(sample name, labels as a sorted tuple): value}`` of /metrics, read with Prometheus's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _detects_by_worker(scrape: dict) -> dict:
    """``{pid: /detect requests that worker answered}``."""
    return {dict(labels)["pid"]: value for (name, labels), value in scrape.items()
            if name == "synthwatch_worker_requests" and dict(labels)["route"] == "/detect"}


def test_two_workers_share_the_load_and_answer_count_and_log_as_one(fleet_store, tmp_path, monkeypatch):
    from synthwatch.api import Store
    from synthwatch.store.layout import StoreLayout
    from synthwatch.store.predictions import read_predictions

    images = sorted((fleet_store.parent / "in").rglob("*.png"))[:10]
    uploads = [images[n % len(images)].read_bytes() for n in range(REQUESTS)]
    expected = {entry["query"]: entry for entry in Store(fleet_store).detect(images, k=2).as_dict()["results"]}
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the service makes its folder of metric files
    with running_service(fleet_store, "--workers", "2") as base:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda data: _detect(base, data), uploads))
        after = _scrape(base)
        assert len(list(tmp_path.glob("synthwatch-metrics-*"))) == 1
    assert all(answer.status_code == 200 for answer in answers)
    for n, answer in enumerate(answers):  # the same verdict as the store gives in process, from either worker
        got, want = answer.json()["results"][0], expected[str(images[n % len(images)])]
        assert (got["score"], got["synthetic"], got["head_version"]) == \
            (pytest.approx(want["score"], abs=1e-6), want["synthetic"], want["head_version"])

    served = _detects_by_worker(after)
    assert sum(served.values()) == REQUESTS and len(served) == 2 and all(served.values()), served  # both answered
    assert after[("synthwatch_requests_total", (("route", "/detect"), ("status", "200")))] == REQUESTS
    assert after[("synthwatch_request_seconds_count", (("route", "/detect"),))] == REQUESTS
    flagged = sum(answer.json()["results"][0]["synthetic"] for answer in answers)
    assert (after.get(("synthwatch_verdicts_total", (("verdict", "synthetic"),)), 0),
            after.get(("synthwatch_verdicts_total", (("verdict", "real"),)), 0)) == (flagged, REQUESTS - flagged)
    champion = answers[0].json()["head_version"]
    assert after[("synthwatch_head_info", (("version", champion),))] == 1

    # stopped (SIGTERM to the parent): every worker flushed its last rows, and the metric files are gone
    rows = read_predictions(StoreLayout(fleet_store)).to_pylist()
    assert sorted((row["image_id"], row["score"]) for row in rows) == \
        sorted((hashlib.sha256(data).hexdigest(), answer.json()["results"][0]["score"])
               for data, answer in zip(uploads, answers))
    assert not list(tmp_path.glob("synthwatch-metrics-*"))


def test_a_fleet_of_no_workers_is_refused(fleet_store, cli, monkeypatch):
    monkeypatch.setenv("SYNTHWATCH_API_TOKEN", TOKEN)
    code, _, err = cli("--store", fleet_store, "serve", "--workers", "0")
    assert code == 1
    assert "Expected --workers of at least 1, but got 0. Pass 1 for one process" in err


def test_a_worker_that_cannot_start_stops_the_fleet_with_its_reason(tmp_path):
    # uvicorn restarts a worker that exits for any other reason: without this, a restart loop
    script = ("from synthwatch.fleet import serve_workers\n"
              "if __name__ == '__main__':\n"
              f"    serve_workers(2, {{'store': 'x'}}, port={_free_port()})\n")  # options without 'auth'
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 1
    assert "StoreError: Expected every worker to start, but one failed: KeyError: 'auth'." in done.stderr
    assert not list(tmp_path.glob("synthwatch-metrics-*"))
