"""The promotion gate: a candidate head replaces the champion only if every check passes.

Checks, each with its value, threshold and verdict:

- ``held_out_auroc_floor[G]`` / ``held_out_tpr_floor[G]``: for each generator G the candidate
  never trained on (leave-one-generator-out), the lower end of the 95% interval of AUROC and of
  TPR at 1% FPR is at least the floor.
- ``backward_transfer[G]``: for each generator the champion knew, the candidate's AUROC on its
  test split is no worse than the champion's on the same split minus the tolerance.
- ``false_positive_rate``: on held-out real images at the candidate's threshold, the FPR is
  within the target plus the slack. Which FPR is policy (``fpr_bound``): ``lower`` (default), the
  lower end of its interval (reject only on evidence that the target is exceeded: small test sets
  make the point estimate jump in steps of 1/n); ``point``, the measured rate; ``upper``, the
  upper end (promote only on evidence that the target holds: needs thousands of real images).
- ``leakage``: no source group that either head trained on is among the evaluation's test groups,
  and both heads used the same splits.

The first head in an empty registry is judged on the floors, the FPR and leakage alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the gate (see the README for what each guards against)."""

    auroc_floor: float = 0.70
    tpr_floor: float = 0.05
    regression_tolerance: float = 0.02
    fpr_slack: float = 0.0
    fpr_bound: str = "lower"  # lower | point | upper: which FPR must be within target + slack

    def __post_init__(self) -> None:
        if self.fpr_bound not in FPR_BOUNDS:
            raise ValueError(f"Expected fpr_bound in {', '.join(FPR_BOUNDS)}, but got {self.fpr_bound!r}. "
                             "Pass --fpr-bound lower, point or upper.")

    def as_dict(self) -> dict:
        return asdict(self)


FPR_BOUNDS = ("lower", "point", "upper")


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict:
        out = {"name": self.name, "value": self.value, "threshold": self.threshold, "passed": self.passed}
        return {**out, "detail": self.detail} if self.detail else out


def judge(candidate_logo: dict, candidate_known: dict, champion_known: dict | None, *, target_fpr: float,
          leaking_groups: list[str], same_splits: bool, policy: GatePolicy = GatePolicy()) -> list[Check]:
    """Every check of the gate.

    ``candidate_logo``: the candidate kind's leave-one-generator-out ``per_generator`` metrics;
    ``candidate_known`` / ``champion_known``: the candidate's and the champion's ``per_generator``
    metrics on the same test splits (None when there is no champion).
    """
    checks: list[Check] = []
    for name, m in sorted(candidate_logo.items()):
        if not m.get("held_out"):
            continue
        checks.append(Check(f"held_out_auroc_floor[{name}]", m["auroc_ci"][0], policy.auroc_floor,
                            m["auroc_ci"][0] >= policy.auroc_floor, "lower end of the AUROC interval"))
        checks.append(Check(f"held_out_tpr_floor[{name}]", m["tpr_at_1fpr_ci"][0], policy.tpr_floor,
                            m["tpr_at_1fpr_ci"][0] >= policy.tpr_floor, "lower end of the TPR at 1% FPR interval"))
    if not any(m.get("held_out") for m in candidate_logo.values()):
        checks.append(Check("held_out_generators", 0, 1, False,
                            "no generator could be held out and measured: ingest at least two generators"))
    if champion_known is not None:
        for name, theirs in sorted(champion_known.items()):
            if theirs.get("held_out") or name not in candidate_known:
                continue  # only generators the champion knew count for backward transfer
            ours = candidate_known[name]["auroc"]
            limit = round(theirs["auroc"] - policy.regression_tolerance, 6)
            checks.append(Check(f"backward_transfer[{name}]", ours, limit, ours >= limit,
                                f"champion AUROC {theirs['auroc']:.4f} on the same test split"))
    pick = {"lower": lambda m: m["fpr_ci"][0], "point": lambda m: m["fpr"], "upper": lambda m: m["fpr_ci"][1]}
    fprs = [pick[policy.fpr_bound](m) for m in candidate_known.values()]
    worst = round(max(fprs), 6) if fprs else None
    limit = round(target_fpr + policy.fpr_slack, 6)
    what = {"lower": "lower end of the FPR interval", "point": "FPR", "upper": "upper end of the FPR interval"}
    checks.append(Check("false_positive_rate", worst, limit, worst is not None and worst <= limit,
                        f"{what[policy.fpr_bound]} on held-out real images, at the candidate's threshold"))
    checks.append(Check("leakage", float(len(leaking_groups)), 0.0, not leaking_groups and same_splits,
                        ("test groups trained on: " + ", ".join(leaking_groups) if leaking_groups else
                         "no test group was trained on") + ("" if same_splits else "; the heads used different splits")))
    return checks


def reasons(checks: list[Check]) -> list[str]:
    """One line per failed check (or a single line saying all passed)."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        return [f"all {len(checks)} checks passed"]
    return [f"{c.name}: {_fmt(c.value)} against {_fmt(c.threshold)} ({c.detail})" for c in failed]


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
