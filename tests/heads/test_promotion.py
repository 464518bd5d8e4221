"""The gate end to end: a candidate that forgets a known generator is rejected, one that does not
is promoted, a forced promotion is recorded as forced, rollback, and drift on a new generator."""

from __future__ import annotations

import numpy as np
from PIL import Image

from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout

NO_FLOORS = ("--auroc-floor", "0", "--tpr-floor", "0", "--n-boot", "200")


def _add_blocky_generator(cli, store, corpus, tmp_path):
    """Fakes that are easy to learn and unlike the others: 4x4-pixel blocks blown up to 64 px,
    in the same source groups (photos) as the real images."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "blocky"
    for photo in sorted(p.name for p in (corpus.out / "real").iterdir()):
        for number in range(4):
            pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            path = folder / "synthetic" / "blocky" / photo / f"{number}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).resize((64, 64), Image.Resampling.NEAREST).save(path)
    assert cli("--store", store, "ingest", folder, "--json")[0] == 0
    assert cli("--store", store, "embed", "--backbone", "test-tiny-dinov2", "--workers", "0", "--json")[0] == 0


def test_gate_rejects_a_regression_promotes_a_fair_candidate_forces_and_rolls_back(cli, proxy_store, tmp_path):
    store, corpus = proxy_store
    _add_blocky_generator(cli, store, corpus, tmp_path)
    code, first, err = cli("--store", store, "train", *NO_FLOORS, "--json")
    assert code == 0, err
    assert first["decision"] == "promoted" and first["champion"] == first["version"]
    assert {c["name"] for c in first["checks"]} >= {"false_positive_rate", "leakage"}
    assert not any(c["name"].startswith("backward_transfer") for c in first["checks"])  # first head: no champion

    # Trained without the blocky fakes, a candidate regresses on a generator the champion knew.
    code, forgetful, err = cli("--store", store, "train", "--holdout", "blocky", *NO_FLOORS, "--json")
    assert code == 3, err  # a rejection is its own exit code, for scripts and CI
    checks = {c["name"]: c for c in forgetful["checks"]}
    assert forgetful["decision"] == "rejected" and not checks["backward_transfer[blocky]"]["passed"]
    assert checks["backward_transfer[blocky]"]["value"] < checks["backward_transfer[blocky]"]["threshold"]
    assert any(r.startswith("backward_transfer[blocky]") for r in forgetful["reasons"])
    assert forgetful["champion"] == first["version"]

    # Retrained on everything, a candidate keeps what the champion knew.
    code, fair, err = cli("--store", store, "retrain", "--reason", "test", *NO_FLOORS, "--json")
    assert code == 0, err
    assert {"candidate", "decision", "reasons", "checks", "drift", "champion"} <= set(fair)
    assert all({"name", "value", "threshold", "passed"} <= set(c) for c in fair["checks"])
    assert fair["decision"] == "promoted" and fair["champion"] == fair["candidate"], fair["reasons"]

    # The rejected one can only be promoted by force, with a reason, and is marked as forced.
    code, _, err = cli("--store", store, "models", "promote", forgetful["version"], "--json")
    assert code == 1 and "--force --reason" in err
    code, _, err = cli("--store", store, "models", "promote", forgetful["version"], "--force", "--json")
    assert code == 1 and "Expected a reason" in err
    code, moved, _ = cli("--store", store, "models", "promote", forgetful["version"], "--force", "--reason",
                         "incident 42", "--json")
    assert code == 0 and moved == {"before": fair["candidate"], "after": forgetful["version"], "forced": True}
    code, listed, _ = cli("--store", store, "models", "list", "--json")
    entry = next(m for m in listed["models"] if m["version"] == forgetful["version"])
    assert listed["champion"] == forgetful["version"] and entry["forced"] and entry["decision"] == "rejected"
    assert {"version", "created_at", "decision", "metrics"} <= set(entry)
    code, shown, _ = cli("--store", store, "models", "show", forgetful["version"], "--json")
    assert shown["gate"]["forced_reason"] == "incident 42" and shown["audit"][-1]["forced"] is True

    code, rolled, _ = cli("--store", store, "models", "rollback", "--json")
    assert code == 0 and rolled == {"before": forgetful["version"], "after": fair["candidate"]}
    events = [e["name"] for e in Catalog(StoreLayout(store)).events()]
    assert events.count("synthwatch.head.promoted") == 3 and events.count("synthwatch.head.rejected") == 1


def test_retrain_checks_drift_when_a_new_generator_arrives(cli, proxy_store, tmp_path):
    store, corpus = proxy_store
    code, first, _ = cli("--store", store, "train", *NO_FLOORS, "--json")
    assert first["decision"] == "promoted"
    _add_blocky_generator(cli, store, corpus, tmp_path)
    code, result, err = cli("--store", store, "retrain", *NO_FLOORS, "--alpha", "0.05", "--json")
    assert code == (3 if result["decision"] == "rejected" else 0), err
    drift = result["drift"]
    assert drift["checked"] and drift["generators"] == ["blocky"] and drift["new_synthetic"] == 4 * 9
    named = {c["name"]: c for c in drift["checks"]}
    assert set(named) == {"embedding_mmd", "score_detection_rate"}
    assert named["embedding_mmd"]["drift"] and named["embedding_mmd"]["p_value"] < 0.05
    assert drift["detected"]
    assert any(e["name"] == "synthwatch.drift.detected" for e in Catalog(StoreLayout(store)).events())


def test_a_candidate_killed_before_its_decision_does_not_stop_the_loop(proxy_store):
    from synthwatch.heads.detector import HeadSpec
    from synthwatch.heads.evaluation import EvalOptions
    from synthwatch.heads.pipeline import train_and_register
    from synthwatch.heads.training import TrainOptions
    from synthwatch.heads.promotion import check_drift, retrain, retrain_needed
    from synthwatch.heads.gate import GatePolicy

    store, _ = proxy_store
    layout = StoreLayout(store)
    fast = TrainOptions(evaluation=EvalOptions(n_boot=100), robustness=False)
    orphan, _ = train_and_register(layout, HeadSpec(), options=fast)  # what a kill between register and decide leaves
    assert retrain_needed(layout, check_drift(layout)) == (True, ["no head has been trained yet"])
    result = retrain(layout, options=fast, policy=GatePolicy(auroc_floor=0, tpr_floor=0))
    assert result["candidate"] != orphan.version and result["decision"] == "promoted"
    assert retrain_needed(layout, check_drift(layout))[0] is False
