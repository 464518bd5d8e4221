"""The promotion gate: a candidate head replaces the champion only if every check passes.

Checks, each with its value, threshold and verdict:

- ``held_out_auroc_floor[G]`` / ``held_out_tpr_floor[G]``: for each generator G the candidate
  never trained on (leave-one-generator-out), the lower end of the 95% interval of AUROC and of
  TPR at 1% FPR is at least the floor.
- ``backward_transfer[G]``: for each generator the champion knew, non-inferiority of the
  candidate on the same test images: the lower end of the interval of (candidate AUROC -
  champion AUROC), from a paired bootstrap over those images, is above ``-regression_tolerance``.
  ``backward_transfer_tpr[G]`` does the same for TPR at 1% FPR when ``tpr_tolerance`` is set.
  With ``correction="holm"`` the backward-transfer checks are judged together on their
  bootstrap p-values (Holm's step-down): stricter than promotion needs (all checks must pass, so
  promoting a candidate that forgot any one generator is already bounded by the one-sided
  level), for when per-generator verdicts are read on their own.
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

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from synthwatch.heads.metrics import PairedDifference


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the gate (see the README for what each guards against)."""

    auroc_floor: float = 0.70
    tpr_floor: float = 0.05
    # The non-inferiority margin and level: at about 10 test fakes per known generator (the
    # demo), a candidate equal to the champion clears 0.06 at 0.90 in 97% of simulated trials
    # (0.05: 95%, 0.02: 77%; tests/heads/test_gate_simulation.py); 1,000 resolve 0.01.
    regression_tolerance: float = 0.06
    fpr_slack: float = 0.0
    fpr_bound: str = "lower"  # lower | point | upper: which FPR must be within target + slack
    tpr_tolerance: float | None = None  # also require TPR at 1% FPR non-inferior by this margin
    confidence: float = 0.90  # two-sided level of the paired differences' intervals (one-sided 95%)
    correction: str = "none"  # none | holm: judge the backward-transfer checks together

    def __post_init__(self) -> None:
        if self.fpr_bound not in FPR_BOUNDS:
            raise ValueError(f"Expected fpr_bound in {', '.join(FPR_BOUNDS)}, but got {self.fpr_bound!r}. "
                             "Pass --fpr-bound lower, point or upper.")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"Expected correction in {', '.join(CORRECTIONS)}, but got {self.correction!r}. "
                             "Pass --correction none or holm.")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"Expected a confidence between 0.5 and 1, but got {self.confidence}. "
                             "Pass --confidence 0.90 (the default) or 0.95.")

    @property
    def paired_metrics(self) -> tuple[str, ...]:
        return ("auroc", "tpr_at_1fpr") if self.tpr_tolerance is not None else ("auroc",)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def digest(self) -> str:
        """sha256 of the policy's canonical JSON: stored with each decision, equal for equal policies."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


FPR_BOUNDS = ("lower", "point", "upper")
CORRECTIONS = ("none", "holm")


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str = ""
    interval: tuple[float, float] | None = None
    p_value: float | None = None

    def as_dict(self) -> dict:
        out = {"name": self.name, "value": self.value, "threshold": self.threshold, "passed": self.passed}
        if self.interval is not None:
            out["interval"] = [round(v, 6) for v in self.interval]
        if self.p_value is not None:
            out["p_value"] = round(self.p_value, 6)
        return {**out, "detail": self.detail} if self.detail else out


def judge(candidate_logo: dict, candidate_known: dict, paired: dict | None, *, target_fpr: float,
          leaking_groups: list[str], same_splits: bool, policy: GatePolicy = GatePolicy()) -> list[Check]:
    """Every check of the gate.

    ``candidate_logo``: the candidate kind's leave-one-generator-out ``per_generator`` metrics;
    ``candidate_known``: the candidate's ``per_generator`` metrics on the test splits;
    ``paired``: for each generator the champion knew, {metric: candidate minus champion on the
    same test images} (None for a generator too few shared images; ``paired`` None when there is
    no champion).
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
    if paired is not None:
        checks += backward_transfer(paired, policy)
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


def backward_transfer(paired: dict[str, dict[str, PairedDifference] | None], policy: GatePolicy) -> list[Check]:
    """Non-inferiority of the candidate on each generator the champion knew, per paired metric."""
    margins = {"auroc": ("backward_transfer", policy.regression_tolerance),
               "tpr_at_1fpr": ("backward_transfer_tpr", policy.tpr_tolerance)}
    checks = []
    for metric in policy.paired_metrics:
        prefix, tolerance = margins[metric]
        for name, differences in sorted(paired.items()):
            if differences is None:
                checks.append(Check(f"{prefix}[{name}]", None, -tolerance, False,
                                    "too few test images measured by both heads to compare them"))
                continue
            d = differences[metric]
            low = d.interval[0]
            checks.append(Check(f"{prefix}[{name}]", round(d.difference, 6), -tolerance, low > -tolerance,
                                f"candidate {d.a:.4f} - champion {d.b:.4f} on the same test images; lower end of "
                                f"the {d.level:.0%} interval {low:.4f}", d.interval, d.p_at_most(-tolerance)))
    if policy.correction != "holm":
        return checks
    resamples = min((len(d[m].draws) for d in paired.values() if d for m in d), default=0)
    alpha = (1 - policy.confidence) / 2
    if checks and resamples and 1 / (resamples + 1) > alpha / len(checks):  # no p-value could pass: say why
        why = (f"Holm over {len(checks)} checks needs p-values down to {alpha / len(checks):.2g}, but "
               f"{resamples} resamples reach 1/{resamples + 1}: pass --n-boot {int(len(checks) / alpha)} or more, "
               "or --correction none")
        return [replace(c, passed=False, detail=f"{c.detail}; {why}") for c in checks]
    return _holm(checks, 1 - policy.confidence)


def _holm(checks: list[Check], alpha_two_sided: float) -> list[Check]:
    """Holm's step-down over the checks' p-values at the intervals' one-sided level: the smallest
    p passes if <= alpha / m, the next if <= alpha / (m - 1), ...; after the first failure the rest
    fail. Checks without a p-value (nothing to compare) fail and count in m."""
    alpha = alpha_two_sided / 2
    m = len(checks)
    order = sorted(range(m), key=lambda i: (checks[i].p_value is None, checks[i].p_value or 0.0))
    judged, stopped = list(checks), False
    for rank, i in enumerate(order):
        check = checks[i]
        limit = alpha / (m - rank)
        passed = not stopped and check.p_value is not None and check.p_value <= limit
        stopped = stopped or not passed
        judged[i] = Check(check.name, check.value, check.threshold, passed,
                          f"{check.detail}; Holm: p {_fmt(check.p_value)} against {limit:.4g}", check.interval,
                          check.p_value)
    return judged


def reasons(checks: list[Check]) -> list[str]:
    """One line per failed check (or a single line saying all passed)."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        return [f"all {len(checks)} checks passed"]
    return [f"{c.name}: {_fmt(c.value)} against {_fmt(c.threshold)} ({c.detail})" for c in failed]


def _fmt(value) -> str:
    return "none" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
