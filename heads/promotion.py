"""Drift checks against the champion, the gate's decision on a candidate, and `retrain`.

Every decision is stored beside the candidate in the registry with each check's value,
threshold and verdict, logged as a ``synthwatch.head.promoted`` or ``synthwatch.head.rejected``
event, and a promotion moves the champion alias through the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from synthwatch.heads.dataset import REAL
from synthwatch.heads.detector import HeadSpec
from synthwatch.heads.defaults import DEFAULT_ALPHA
from synthwatch.heads.drift import mmd_test, score_drift
from synthwatch.heads.embedding_map import embedding_map
from synthwatch.heads.evaluation import Evaluation, paired_results
from synthwatch.heads.gate import GatePolicy, judge, reasons
from synthwatch.heads.learning_curve import learning_curve
from synthwatch.heads.report import write_report
from synthwatch.heads.pipeline import evaluate_registered, prepare_for, train_and_register
from synthwatch.heads.prepare import EvaluationData, embedding_set_of
from synthwatch.heads.records import HeadRecord, read_record
from synthwatch.heads.scorers import EmbeddingScorer, load_scorer
from synthwatch.heads.training import TrainOptions
from synthwatch.store.catalog import DRIFT_DETECTED, HEAD_PROMOTED, HEAD_REJECTED, Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import ChampionChanged, HeadRegistry
from synthwatch.store.schema import utc_now
from synthwatch.store.training_data import labelled_vectors

log = logging.getLogger(__name__)
__all__ = ["Decision", "check_drift", "decide", "decided_versions", "force_promote", "new_to_champion", "retrain",
           "retrain_needed"]


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on a candidate; :meth:`as_dict` is what is stored beside it (plus the
    champion after it took effect)."""

    decision: str
    candidate: str
    champion_before: str | None
    reasons: list[str]
    checks: list[dict]
    policy: dict
    drift: dict = field(default_factory=dict)
    decided_at: str = ""
    champion: str | None = None
    forced: bool = False

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def stored(self) -> dict:
        return {"decision": self.decision, "candidate": self.candidate, "champion_before": self.champion_before,
                "reasons": self.reasons, "checks": self.checks, "policy": self.policy,
                "policy_sha256": GatePolicy(**self.policy).digest, "forced": self.forced,
                "drift": self.drift, "decided_at": self.decided_at}

    def as_dict(self) -> dict:
        return {**self.stored(), "champion": self.champion}


def decide(layout: StoreLayout, version: str, *, policy: GatePolicy = GatePolicy(),
           options: TrainOptions = TrainOptions(), drift: dict | None = None,
           prepared: EvaluationData | None = None) -> Decision:
    """Run the gate on ``version`` against the current champion; promote it if every check
    passes. Both are measured on ``prepared`` (the candidate's training data; prepared here if
    not given), so one decision prepares its data once."""
    registry = HeadRegistry(layout)
    champion = registry.champion()
    candidate = read_record(registry, version)
    if prepared is None and candidate.embeds:
        prepared = prepare_for(layout, candidate.backbone_id, replace(options, dedup_threshold=candidate.dedup_threshold))
    candidate_eval = evaluate_registered(layout, version=version, protocol="holdout", options=options,
                                         prepared=prepared).evaluation
    champion_eval, champion_record = None, None
    if champion is not None and champion != version:
        champion_record = read_record(registry, champion)
        champion_options = TrainOptions(evaluation=options.evaluation, robustness=options.robustness)
        champion_eval = evaluate_registered(layout, version=champion, protocol="holdout", options=champion_options,
                                            prepared=prepared).evaluation
    trained_groups = set(candidate.train_groups) | set(champion_record.train_groups if champion_record else [])
    leaking = sorted(trained_groups & _test_groups(layout, candidate))
    same_splits = champion_record is None or champion_record.split_seed == candidate.split_seed
    paired = None if champion_eval is None else _paired_known(candidate_eval, champion_eval, policy, options)
    checks = judge(candidate.metrics["per_generator"], candidate_eval.per_generator(), paired,
                   target_fpr=candidate.target_fpr, leaking_groups=leaking, same_splits=same_splits, policy=policy)
    passed = all(check.passed for check in checks)
    why = reasons(checks) if champion is not None or not passed else \
        ["first head in an empty registry: judged on floors, false-positive rate and leakage", *reasons(checks)]
    decision = Decision("promoted" if passed else "rejected", version, champion, why,
                        [check.as_dict() for check in checks], policy.as_dict(), drift or {}, utc_now().isoformat())
    if passed:
        try:
            registry.promote(version, reason=options.reason or "passed the gate", expected_before=champion)
        except ChampionChanged as changed:
            decision = Decision("rejected", version, champion, [str(changed)], decision.checks, decision.policy,
                                decision.drift, decision.decided_at)
    registry.set_decision(version, decision.stored())  # once, with the verdict that took effect
    decision = Decision(**{**decision.__dict__, "champion": registry.champion()})
    log.info("gate: %s %s (champion now %s): %s", decision.decision, version, decision.champion,
             "; ".join(decision.reasons))
    Catalog(layout).log_event(HEAD_PROMOTED if decision.promoted else HEAD_REJECTED, {
        "candidate": version, "champion": decision.champion, "reasons": decision.reasons,
        "policy_sha256": policy.digest})
    return decision


def _paired_known(candidate: Evaluation, champion: Evaluation, policy: GatePolicy,
                  options: TrainOptions) -> dict[str, dict | None]:
    """For each generator the champion knew and the candidate was measured on: candidate minus
    champion on the test images both were measured on."""
    ours = {r.generator: r for r in candidate.results}
    return {r.generator: None if r.generator not in ours else  # measured for the champion, not the candidate
            paired_results(ours[r.generator], r, metrics=policy.paired_metrics, options=options.evaluation,
                           level=policy.confidence)
            for r in champion.results if not r.held_out}


def _test_groups(layout: StoreLayout, record: HeadRecord) -> set[str]:
    """Source groups of the real and known-generator images that evaluation tests on."""
    catalog = Catalog(layout)
    splits = catalog.group_splits()
    seen = set(record.generators_seen) | {REAL}
    return {group for group, generators in catalog.generators_by_group().items()
            if splits.get(group) == "test" and generators & seen}


def check_drift(layout: StoreLayout, *, alpha: float = DEFAULT_ALPHA, permutations: int = 500) -> dict:
    """Both drift checks of the synthetic images that arrived since the last head was trained
    (the champion or a candidate after it: images a candidate already saw do not alarm again)."""
    registry = HeadRegistry(layout)
    champion = registry.champion()
    if champion is None:
        return {"checked": False, "detected": False, "reason": "no champion yet"}
    scorer = load_scorer(layout, champion)
    if not isinstance(scorer, EmbeddingScorer):
        return {"checked": False, "detected": False,
                "reason": "the champion is a fine-tuned network: drift checks need an embedding head"}
    since = max(record["created_at"] for record in decided_versions(registry) or [scorer.record.as_dict()])
    new = embedding_set_of(labelled_vectors(layout, scorer.record.backbone_id, views="clean", synthetic_since=since))
    result = {"checked": False, "detected": False, "champion": champion, "new_synthetic": len(new),
              "generators": sorted(set(new.generators.tolist())), "alpha": alpha}
    if len(new) < 2:
        return {**result, "reason": f"{len(new)} new synthetic images with vectors since the last head was trained"}
    reference = scorer.reference()
    checks = []
    if len(reference["train_fake_vectors"]) >= 2:
        checks.append(mmd_test(new.vectors, reference["train_fake_vectors"], alpha=alpha, permutations=permutations))
    if len(reference["val_fake_scores"]):
        checks.append(score_drift(scorer.scores(new.vectors), reference["val_fake_scores"], scorer.threshold,
                                  alpha=alpha))
    detected = any(check.drift for check in checks)
    result.update(checked=True, detected=detected, checks=[check.as_dict() for check in checks])
    log.info("drift: %s on %d new synthetic images (%s): %s", "DETECTED" if detected else "none", len(new),
             ", ".join(result["generators"]), "; ".join(f"{c.name} p {c.p_value:.4f}" for c in checks))
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
            policy: GatePolicy = GatePolicy(), alpha: float = DEFAULT_ALPHA, drift: dict | None = None,
            write_report_file: bool = False) -> dict:
    """Check drift (unless ``drift`` is already known), train a candidate on everything the store
    holds, and gate it on the data it was trained with (the splits are the store's, so the
    champion is measured on the same test images). For each generator the champion never saw,
    the learning curve says how many of its fakes it takes to catch it. With ``write_report_file``,
    the candidate's report is written where the store keeps it (``layout.report_path``)."""
    drift = check_drift(layout, alpha=alpha) if drift is None else drift
    new = new_to_champion(layout)
    trained, evaluation = train_and_register(layout, spec, options=options)
    decision = decide(layout, trained.version, policy=policy, options=options, drift=drift, prepared=trained.prepared)
    curves = [learning_curve(trained.prepared.data, generator, spec=spec, options=options.evaluation,
                             auroc_floor=policy.auroc_floor, tpr_floor=policy.tpr_floor,
                             near_duplicates=trained.prepared.pairs)
              for generator in new if generator in trained.prepared.data.generator_names()]
    report = None
    if write_report_file:
        context = {"head_version": trained.version, "backbone_id": trained.backbone_id, "decision": decision.decision}
        points = embedding_map(trained.prepared.data, Catalog(layout).arrival_times(trained.prepared.data.image_ids))
        report, _ = write_report(layout.report_path(trained.version), evaluation, context,
                                 learning_curves=[curve.as_dict() for curve in curves], embedding_map=points)
    return {"candidate": trained.version, "decision": decision.decision, "reasons": decision.reasons,
            "checks": decision.checks, "drift": drift, "champion": decision.champion, "report": report and str(report),
            "champion_before": decision.champion_before, "metrics": trained.metrics, "notes": trained.notes,
            "training_sample": trained.prepared.training_sample,
            "evaluation_sample": trained.prepared.evaluation_sample,
            "learning_curves": [curve.as_dict() for curve in curves],
            "learning_curve_lines": [curve.line() for curve in curves]}


def new_to_champion(layout: StoreLayout) -> list[str]:
    """Stored generators the champion never saw, trained on or held out (none without a champion:
    then every generator is new, and none has a curve to draw)."""
    registry = HeadRegistry(layout)
    champion = registry.champion()
    if champion is None:
        return []
    record = read_record(registry, champion)
    return sorted(set(Catalog(layout).status()["generators"]) - set(record.generators_seen) - set(record.holdout))
