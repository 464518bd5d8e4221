"""Traffic drift checks on simulated prediction logs: at most alpha false alarms when nothing
changed, and a burst of fakes from a generator the store never saw caught with stated power."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from synthwatch.heads.traffic import MIN_IMAGES, traffic_drift

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
TRIALS = 300
ALPHA = 0.05
CHECKS = ("flag_rate", "score_distribution", "nearest_fake_distance", "embedding_mmd")
DIM = 16
# Where each kind of image lies in a 16-dimensional embedding space: photos, known fakes, and
# the unknown generator's fakes, each a cloud around its own direction.
CENTRES = {kind: np.random.default_rng(99 + n).normal(size=DIM) for n, kind in enumerate(("real", "known", "unknown"))}


def _traffic(rng, count: int, start: datetime, hours: float, *, burst: float = 0.0) -> list[dict]:
    """``count`` answers spread over ``hours`` after ``start``: 90 % real photos (low
    scores, far from known fakes), 10 % known fakes (high scores, near them); ``burst`` of them
    replaced by an unknown generator's fakes (scores just over the threshold, far from every known fake)."""
    rows = []
    for n in range(count):
        draw = rng.random()
        if draw < burst:
            kind, score, distance = "unknown", rng.uniform(0.5, 0.8), rng.uniform(0.35, 0.6)
        elif draw < burst + 0.1 * (1 - burst):
            kind, score, distance = "known", rng.beta(8, 1), rng.uniform(0.02, 0.2)
        else:
            kind, score, distance = "real", rng.beta(1, 8), rng.uniform(0.2, 0.5)
        vector = CENTRES[kind] + rng.normal(scale=2.0, size=DIM)
        rows.append({"at": start + timedelta(hours=hours * n / count), "score": float(score),
                     "synthetic": bool(score >= 0.5), "head_version": "h1", "nearest_fake_distance": float(distance),
                     "embedding": (vector / np.linalg.norm(vector)).astype(np.float32), "embedding_backbone": "b1"})
    return rows


def _run(rng, *, burst: float) -> dict:
    before = _traffic(rng, 600, NOW - timedelta(days=4), 71)
    recent = _traffic(rng, 200, NOW - timedelta(hours=23), 22, burst=burst)
    return traffic_drift(before + recent, since=timedelta(days=1), alpha=ALPHA, now=NOW)


def test_nothing_changed_alarms_at_most_alpha_of_the_time():
    rng = np.random.default_rng(0)
    alarms = np.zeros(len(CHECKS))
    for _ in range(TRIALS):
        result = _run(rng, burst=0.0)
        assert result["checked"] and result["window"]["images"] == 200 and result["baseline"]["images"] == 600
        assert tuple(check["name"] for check in result["checks"]) == CHECKS
        alarms += [check["drift"] for check in result["checks"]]
    rates = alarms / TRIALS
    # alpha plus two and a half binomial standard errors of 300 trials (0.031)
    assert (rates <= ALPHA + 0.031).all(), dict(zip(CHECKS, rates))


def test_a_burst_of_an_unknown_generator_is_caught():
    rng = np.random.default_rng(1)
    caught, any_check = np.zeros(len(CHECKS)), 0
    for _ in range(100):
        result = _run(rng, burst=0.15)
        caught += [check["drift"] for check in result["checks"]]
        any_check += result["drift"]
        assert result["drift"] == any(check["drift"] for check in result["checks"])
    power = dict(zip(CHECKS, caught / 100))
    # 15 % of a day's 200 answers from a generator far from every known fake, at alpha 0.05 (the
    # README quotes these, measured on this seed: 0.99, 0.94, 0.77, 0.82; any check: 1.00)
    assert (power["flag_rate"] >= 0.95 and power["score_distribution"] >= 0.8 and power["nearest_fake_distance"] >= 0.7
            and power["embedding_mmd"] >= 0.7), power
    assert any_check >= 95


def test_too_little_traffic_is_not_checked_and_says_why():
    rng = np.random.default_rng(2)
    rows = _traffic(rng, MIN_IMAGES - 1, NOW - timedelta(hours=5), 4)
    result = traffic_drift(rows, since=timedelta(days=1), now=NOW)
    assert not result["checked"] and not result["drift"] and "at least 20 images" in result["reason"]


def test_only_traffic_of_the_same_head_is_compared():
    rng = np.random.default_rng(3)
    before = [{**row, "head_version": "h0", "score": 0.99, "synthetic": True}
              for row in _traffic(rng, 300, NOW - timedelta(days=3), 40)]
    before += _traffic(rng, 300, NOW - timedelta(days=2), 20)
    recent = _traffic(rng, 200, NOW - timedelta(hours=20), 19)
    result = traffic_drift(before + recent, since=timedelta(days=1), alpha=0.001, now=NOW)
    assert result["head_version"] == "h1" and result["baseline"]["images"] == 300  # the old head's rows left out
    assert tuple(check["name"] for check in result["checks"]) == CHECKS


def test_drift_traffic_reads_the_prediction_log_and_raises_an_event(cli, store):
    from synthwatch.store.catalog import TRAFFIC_DRIFT, Catalog
    from synthwatch.store.layout import StoreLayout
    from synthwatch.store.predictions import PredictionLog

    rng = np.random.default_rng(4)
    now = datetime.now(timezone.utc)
    Catalog(StoreLayout(store)).create()  # a served store has its catalog
    log = PredictionLog(StoreLayout(store))
    log.append(_traffic(rng, 400, now - timedelta(days=3), 48) + _traffic(rng, 200, now - timedelta(hours=5), 4,
                                                                           burst=0.3))
    log.flush()
    code, out, _ = cli("--store", store, "drift", "--traffic", "--since", "6h", "--json")
    assert code == 0 and out["window"]["images"] == 200 and out["baseline"]["images"] == 400
    assert {"from", "to", "images"} <= set(out["window"])
    assert [set(c) >= {"name", "statistic", "p_value", "threshold", "drift"} for c in out["checks"]] == [True] * 4
    assert out["drift"] and out["checks"][0]["threshold"] == 0.01  # the default alpha
    assert [e["name"] for e in Catalog(StoreLayout(store)).pending_events()] == [TRAFFIC_DRIFT]
    code, _, err = cli("--store", store, "drift", "--since", "6h")
    assert code == 1 and "--since only with --traffic" in err


def test_the_traffic_report_draws_each_windows_figures_over_time(cli, store, tmp_path):
    import json
    import re

    from synthwatch.store.catalog import Catalog
    from synthwatch.store.layout import StoreLayout
    from synthwatch.store.predictions import PredictionLog

    rng = np.random.default_rng(5)
    now = datetime.now(timezone.utc)
    Catalog(StoreLayout(store)).create()
    log = PredictionLog(StoreLayout(store))
    log.append(_traffic(rng, 600, now - timedelta(days=6), 6 * 24 - 1) + _traffic(rng, 100, now - timedelta(hours=20),
                                                                                  19, burst=0.4))
    log.flush()
    code, out, _ = cli("--store", store, "drift", "--traffic", "--report", tmp_path / "traffic.html", "--windows", "4",
                       "--json")
    assert code == 0 and out["report"].endswith("traffic.html")
    history = json.loads((tmp_path / "traffic.json").read_text())["history"]
    assert len(history) == 4 and [h["drift"] for h in history][-1] and not any(h["drift"] for h in history[:-1])
    page = (tmp_path / "traffic.html").read_text()
    assert re.findall(r'<svg [^>]*id="([^"]+)"', page) == ["traffic-history"]
    assert "p-value (log scale)" in page and "share flagged synthetic" in page and page.count("DRIFT") >= 1


def test_the_embedding_check_compares_vectors_of_one_backbone_only():
    rng = np.random.default_rng(6)
    before = _traffic(rng, 300, NOW - timedelta(days=3), 40)
    recent = _traffic(rng, 100, NOW - timedelta(hours=20), 19)
    # rows of another backbone (another dimension) and rows logged without vectors are left out
    before += [{**row, "embedding": np.ones(8, np.float32) / np.sqrt(8), "embedding_backbone": "b2"}
               for row in _traffic(rng, 50, NOW - timedelta(days=2), 10)]
    recent += [{**row, "embedding": None, "embedding_backbone": None} for row in _traffic(rng, 30, NOW - timedelta(hours=5), 4)]
    result = traffic_drift(sorted(before + recent, key=lambda row: row["at"]), since=timedelta(days=1), now=NOW)
    mmd = next(check for check in result["checks"] if check["name"] == "embedding_mmd")
    assert "of 100 window and 300 earlier embeddings of b1" in mmd["detail"]
