"""The gate's checks on hand-made metrics: floors, backward transfer, false positives, leakage."""

from __future__ import annotations

from synthwatch.heads.gate import GatePolicy, judge, reasons


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


def test_regression_on_a_known_generator_fails_within_tolerance_passes():
    logo = {"a": metrics(0.9)}
    champion = {"a": metrics(0.97, held_out=False), "new": metrics(0.6, held_out=True)}
    worse = judge(logo, {"a": metrics(0.94, held_out=False), "new": metrics(0.9, held_out=False)}, champion,
                  target_fpr=0.01, leaking_groups=[], same_splits=True)
    assert not by_name(worse)["backward_transfer[a]"].passed
    assert "backward_transfer[new]" not in by_name(worse)  # the champion never knew it
    fine = judge(logo, {"a": metrics(0.955, held_out=False)}, champion, target_fpr=0.01, leaking_groups=[],
                 same_splits=True)
    assert all(c.passed for c in fine)


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
