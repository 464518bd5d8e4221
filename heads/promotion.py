"""Drift checks against the champion, the gate's decision on a candidate, and `retrain`.

Every decision is stored beside the candidate in the registry with each check's value,
threshold and verdict, logged as a ``synthwatch.head.promoted`` or ``synthwatch.head.rejected``
event, and a promotion moves the champion alias through the audit log.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from synthwatch.heads.dataset import CLEAN_VIEW, REAL, assign_splits
from synthwatch.heads.detector import HeadSpec
from synthwatch.heads.drift import DEFAULT_ALPHA, mmd_test, score_drift
from synthwatch.heads.gate import GatePolicy, judge, reasons
from synthwatch.heads.jobs import TrainOptions, evaluate_registered, load_embedding_set, load_registered, train_and_register
from synthwatch.store.catalog import DRIFT_DETECTED, HEAD_PROMOTED, HEAD_REJECTED, Catalog, utc_now
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import ChampionChanged, HeadRegistry
from synthwatch.store.training_data import catalog_images


def decide(layout: StoreLayout, version: str, *, policy: GatePolicy = GatePolicy(),
           options: TrainOptions = TrainOptions(), drift: dict | None = None) -> dict:
    """Run the gate on ``version`` against the current champion; promote it if every check
    passes. Returns the stored decision (``decision``, ``reasons``, ``checks``, ``champion``...)."""
    registry = HeadRegistry(layout)
    champion = registry.champion()
    candidate = registry.record(version)
    prepared: dict = {}  # both heads are measured on the same data, prepared once when they can be
    _, candidate_eval = evaluate_registered(layout, version=version, protocol="holdout", options=options,
                                            prepared_cache=prepared)
    champion_eval, champion_record = None, None
    if champion is not None and champion != version:
        champion_record = registry.record(champion)
        _, champion_eval = evaluate_registered(layout, version=champion, protocol="holdout",
                                               options=replace(options, holdout=()),
                                               split_seed=candidate["split_seed"], prepared_cache=prepared)
    trained_groups = set(candidate.get("train_groups", [])) | set((champion_record or {}).get("train_groups", []))
    leaking = sorted(trained_groups & _test_groups(layout, candidate))
    same_splits = champion_record is None or champion_record["split_seed"] == candidate["split_seed"]
    checks = judge(candidate["metrics"]["per_generator"], candidate_eval.per_generator(),
                   champion_eval.per_generator() if champion_eval else None, target_fpr=candidate["target_fpr"],
                   leaking_groups=leaking, same_splits=same_splits, policy=policy)
    passed = all(check.passed for check in checks)
    decision = {
        "decision": "promoted" if passed else "rejected", "candidate": version, "champion_before": champion,
        "reasons": reasons(checks) if champion is not None or not passed else
        ["first head in an empty registry: judged on floors, false-positive rate and leakage", *reasons(checks)],
        "checks": [check.as_dict() for check in checks], "policy": policy.as_dict(), "forced": False,
        "drift": drift or {}, "decided_at": utc_now().isoformat(),
    }
    if passed:
        try:
            registry.promote(version, reason=options.reason or "passed the gate", expected_before=champion)
        except ChampionChanged as changed:
            passed = False
            decision.update(decision="rejected", reasons=[str(changed)])
    registry.set_decision(version, decision)  # once, with the verdict that took effect
    decision["champion"] = registry.champion()
    Catalog(layout).log_event(HEAD_PROMOTED if passed else HEAD_REJECTED, {
        "candidate": version, "champion": decision["champion"], "reasons": decision["reasons"]})
    return decision


def _test_groups(layout: StoreLayout, record: dict) -> set[str]:
    """Source groups of the real and known-generator images that evaluation tests on."""
    table = catalog_images(layout)
    sources = np.asarray(table.column("source").to_pylist(), object)
    generators = np.asarray(table.column("generator").to_pylist(), object)
    chosen = assign_splits(sorted(set(sources.tolist())), seed=record["split_seed"])
    seen = set(record["generators_seen"]) | {REAL}
    return {s for s, g in zip(sources.tolist(), generators.tolist()) if g in seen and chosen[s] == "test"}


def check_drift(layout: StoreLayout, *, alpha: float = DEFAULT_ALPHA, permutations: int = 500) -> dict:
    """Both drift checks of the synthetic images that arrived since the last head was trained
    (the champion or a candidate after it: images a candidate already saw do not alarm again)."""
    registry = HeadRegistry(layout)
    champion = registry.champion()
    if champion is None:
        return {"checked": False, "detected": False, "reason": "no champion yet"}
    loaded = load_registered(layout, champion)
    if not loaded.embeds:
        return {"checked": False, "detected": False,
                "reason": "the champion is a fine-tuned network: drift checks need an embedding head"}
    since = max(record["created_at"] for record in decided_versions(registry) or [loaded.record])
    new_ids = {row[0] for row in Catalog(layout).query(
        "SELECT image_id FROM images WHERE label = 'synthetic' AND ingested_at > ?::TIMESTAMP", [since])}
    data = load_embedding_set(layout, loaded.record["backbone_id"])
    new = data.take(np.isin(data.image_ids, list(new_ids)) & (data.views == CLEAN_VIEW))
    result = {"checked": False, "detected": False, "champion": champion, "new_synthetic": len(new),
              "generators": sorted(set(new.generators.tolist())), "alpha": alpha}
    if len(new) < 2:
        return {**result, "reason": f"{len(new)} new synthetic images with vectors since the last head was trained"}
    reference = loaded.reference(registry)
    checks = []
    if len(reference["train_fake_vectors"]) >= 2:
        checks.append(mmd_test(new.vectors, reference["train_fake_vectors"], alpha=alpha, permutations=permutations))
    if len(reference["val_fake_scores"]):
        checks.append(score_drift(loaded.scores(new.vectors), reference["val_fake_scores"], loaded.threshold,
                                  alpha=alpha))
    detected = any(check.drift for check in checks)
    result.update(checked=True, detected=detected, checks=[check.as_dict() for check in checks])
    if detected:
        Catalog(layout).log_event(DRIFT_DETECTED, {"champion": champion, "checks": result["checks"],
                                                   "generators": result["generators"]})
    return result


def decided_versions(registry: HeadRegistry) -> list[dict]:
    """Versions the gate has judged, oldest first: a candidate whose run was killed before its
    decision does not count as trained (the next cycle trains and judges a new one)."""
    return [record for record in registry.versions() if "gate" in record]


def retrain_needed(layout: StoreLayout, drift: dict) -> tuple[bool, list[str]]:
    """Whether a cycle should train a candidate, and why: no judged head yet, generators the latest
    judged head never saw (trained on or held out), or drift against the champion."""
    versions = decided_versions(HeadRegistry(layout))
    stored = set(Catalog(layout).status()["generators"]) if layout.exists() else set()
    if not stored:
        return False, []
    if not versions:
        return True, ["no head has been trained yet"]
    latest = versions[-1]
    unseen = sorted(stored - set(latest.get("generators_seen", [])) - set(latest.get("holdout", [])))
    why = [f"new generator{'s' if len(unseen) > 1 else ''}: {', '.join(unseen)}"] if unseen else []
    if drift.get("detected"):
        why.append("drift detected: " + ", ".join(c["name"] for c in drift["checks"] if c["drift"]))
    return bool(why), why


def force_promote(layout: StoreLayout, version: str, *, reason: str) -> dict:
    """Promote ``version`` whatever its gate decision said, recording that it was forced and why."""
    if not reason or not reason.strip():
        raise ValueError("Expected a reason for a forced promotion (--reason TEXT), but got none.")
    registry = HeadRegistry(layout)
    record = registry.record(version)
    moved = registry.promote(version, reason=reason, forced=True)
    gate = record.get("gate", {})
    registry.set_decision(version, {**gate, "forced": True, "forced_reason": reason, "forced_at": utc_now().isoformat(),
                                    "decision_before_forcing": gate.get("decision")})
    Catalog(layout).log_event(HEAD_PROMOTED, {"candidate": version, "champion": version, "forced": True,
                                              "reasons": [f"forced: {reason}"]})
    return moved


def retrain(layout: StoreLayout, *, spec: HeadSpec = HeadSpec(), options: TrainOptions = TrainOptions(),
            policy: GatePolicy = GatePolicy(), alpha: float = DEFAULT_ALPHA, drift: dict | None = None) -> dict:
    """Check drift (unless ``drift`` is already known), train a candidate on everything the store
    holds, and gate it."""
    drift = check_drift(layout, alpha=alpha) if drift is None else drift
    champion = HeadRegistry(layout).champion()
    notes = []
    if champion is not None:  # compare on the champion's splits: a test set stays one test set
        seed = HeadRegistry(layout).record(champion)["split_seed"]
        if seed != options.evaluation.seed:
            notes.append(f"split seed {seed} (the champion's) used instead of {options.evaluation.seed}, so both "
                         "heads are measured on the same test images")
        options = replace(options, evaluation=replace(options.evaluation, seed=seed))
    payload, _ = train_and_register(layout, spec, options=options)
    payload["notes"] = notes + payload["notes"]
    decision = decide(layout, payload["version"], policy=policy, options=options, drift=drift)
    return {"candidate": payload["version"], "decision": decision["decision"], "reasons": decision["reasons"],
            "checks": decision["checks"], "drift": drift, "champion": decision["champion"],
            "champion_before": decision["champion_before"], "metrics": payload["metrics"], "notes": payload["notes"]}
