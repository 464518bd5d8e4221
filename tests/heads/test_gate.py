"""The gate's checks on hand-made metrics: floors, backward transfer, false positives, leakage."""

from __future__ import annotations

import numpy as np

from synthwatch.heads.gate import GatePolicy, judge, reasons
from synthwatch.heads.metrics import paired_difference


def metrics(auroc, low=None, tpr=0.5, tpr_low=0.3, fpr=0.01, fpr_low=0.0, held_out=True):
    return {"auroc": auroc, "auroc_ci": [auroc - 0.05 if low is None else low, auroc + 0.03], "tpr_at_1fpr": tpr,
            "tpr_at_1fpr_ci": [tpr_low, tpr + 0.1], "fpr": fpr, "fpr_ci": [fpr_low, fpr + 0.01], "held_out": held_out}


def by_name(checks):
    return {c.name: c for c in checks}


def test_first_head_is_judged_on_floors_fpr_and_leakage_alone():
    checks = judge({"a": metrics(0.9), "b": metrics(0.8, low=0.65)}, {"a": metrics(0.95, held_out=False)}, None,
                   target_fpr=0.01, leaking_groups=[], same_splits=True)
    named = by_name(checks)
    assert set(named) == {"held_out_auroc_floor[a]", "held_out_tpr_floor[a]", "held_out_auroc_floor[b]",
                          "held_out_tpr_floor[b]", "false_positive_rate", "leakage"}
    assert not named["held_out_auroc_floor[b]"].passed and named["held_out_auroc_floor[b]"].value == 0.65
    assert reasons(checks) == ["held_out_auroc_floor[b]: 0.6500 against 0.7000 (lower end of the AUROC interval)"]


def _scores(seed, drop=0.0, n_real=60, n_fake=60):
    """Champion and candidate scores of the same images: shared difficulty, each head's own noise."""
    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=n_real), rng.normal(size=n_fake) + 2.5
    champion = (real + 0.3 * rng.normal(size=n_real), fake + 0.3 * rng.normal(size=n_fake))
    candidate = (real + 0.3 * rng.normal(size=n_real), fake - drop + 0.3 * rng.normal(size=n_fake))
    return candidate, champion


def _paired(seed, drop=0.0, metrics=("auroc", "tpr_at_1fpr")):
    candidate, champion = _scores(seed, drop)
    return paired_difference(candidate, champion, thresholds=(0.0, 0.0), metrics=metrics, n_boot=400, seed=seed,
                             level=0.90)


def test_backward_transfer_is_judged_on_the_interval_of_the_paired_difference():
    logo = {"a": metrics(0.9)}
    forgot = judge(logo, {"a": metrics(0.9, held_out=False)}, {"a": _paired(0, drop=2.0), "b": _paired(1)},
                   target_fpr=0.01, leaking_groups=[], same_splits=True)
    check = by_name(forgot)["backward_transfer[a]"]
    assert not check.passed and check.threshold == -GatePolicy().regression_tolerance
    low, high = check.interval
    assert low <= check.value <= high and high < 0  # the difference, with its interval, both below zero
    assert by_name(forgot)["backward_transfer[b]"].passed
    assert "backward_transfer_tpr[a]" not in by_name(forgot)  # the TPR check is optional
    with_tpr = by_name(judge(logo, {"a": metrics(0.9, held_out=False)}, {"a": _paired(0, drop=2.0)}, target_fpr=0.01,
                             leaking_groups=[], same_splits=True, policy=GatePolicy(tpr_tolerance=0.1)))
    assert not with_tpr["backward_transfer_tpr[a]"].passed and with_tpr["backward_transfer_tpr[a]"].threshold == -0.1
    unmeasured = by_name(judge(logo, {}, {"a": None}, target_fpr=0.01, leaking_groups=[], same_splits=True))
    assert not unmeasured["backward_transfer[a]"].passed and "too few" in unmeasured["backward_transfer[a]"].detail
    as_json = check.as_dict()
    assert set(as_json) >= {"value", "interval", "threshold", "p_value"} and as_json["threshold"] < 0


def test_holm_judges_the_backward_transfer_checks_together():
    paired = {f"g{i}": _paired(10 + i, drop=0.5) for i in range(6)}  # each forgot a little
    plain = judge({}, {}, paired, target_fpr=0.01, leaking_groups=[], same_splits=True,
                  policy=GatePolicy(regression_tolerance=0.08))
    holm = judge({}, {}, paired, target_fpr=0.01, leaking_groups=[], same_splits=True,
                 policy=GatePolicy(regression_tolerance=0.08, correction="holm"))
    plain_passed = {c.name for c in plain if c.name.startswith("backward") and c.passed}
    holm_passed = {c.name for c in holm if c.name.startswith("backward") and c.passed}
    assert holm_passed <= plain_passed and len(holm_passed) < len(plain_passed)
    assert all("Holm: p" in c.detail for c in holm if c.name.startswith("backward"))
    few = {f"g{i}": _paired(20 + i, metrics=("auroc",)) for i in range(30)}  # 400 resamples: p >= 1/401
    refused = judge({}, {}, few, target_fpr=0.01, leaking_groups=[], same_splits=True,
                    policy=GatePolicy(correction="holm"))
    transfer = [c for c in refused if c.name.startswith("backward")]
    assert len(transfer) == 30 and not any(c.passed for c in transfer)
    assert "pass --n-boot 600 or more" in transfer[0].detail


def test_false_positive_rate_and_leakage_and_policy():
    noisy = judge({"a": metrics(0.9)}, {"a": metrics(0.9, fpr=0.05, fpr_low=0.03, held_out=False)}, None,
                  target_fpr=0.01, leaking_groups=["photo-7"], same_splits=True)
    named = by_name(noisy)
    assert not named["false_positive_rate"].passed and named["false_positive_rate"].value == 0.03
    assert not named["leakage"].passed and "photo-7" in named["leakage"].detail
    lenient = judge({"a": metrics(0.6, low=0.5, tpr_low=0.0)}, {"a": metrics(0.9, held_out=False)}, None,
                    target_fpr=0.01, leaking_groups=[], same_splits=True, policy=GatePolicy(auroc_floor=0.5, tpr_floor=0))
    assert all(c.passed for c in lenient)
    edge = {"a": metrics(0.9, fpr=0.02, fpr_low=0.004, held_out=False)}  # 2 % measured, interval from 0.4 %
    verdicts = {bound: by_name(judge({"a": metrics(0.9)}, edge, None, target_fpr=0.01, leaking_groups=[],
                                     same_splits=True, policy=GatePolicy(fpr_bound=bound)))["false_positive_rate"]
                for bound in ("lower", "point", "upper")}
    assert [(v.value, v.passed) for v in verdicts.values()] == [(0.004, True), (0.02, False), (0.03, False)]
    assert not by_name(judge({}, {}, None, target_fpr=0.01, leaking_groups=[], same_splits=True))[
        "held_out_generators"].passed
