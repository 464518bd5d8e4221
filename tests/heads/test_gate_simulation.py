"""The backward-transfer check's error rates, by simulation through the gate's own code.

The score model: each image has a difficulty shared by both heads (real ~ N(0, 1), fake ~
N(3.3, 1)), and each head adds its own noise (sd 0.3, so the heads' scores correlate 0.92, as two
heads trained on mostly the same vectors do); AUROC 0.987. A candidate that forgot a generator has
its fakes' scores lowered. Sizes: a known generator's test split in the demo (39 real, 10 fakes)
and in a large store (1,000 and 1,000). The rates asserted are those measured here with these
seeds, rounded down; the README quotes them.
"""

from __future__ import annotations

import numpy as np
import pytest

from synthwatch.heads.gate import GatePolicy, backward_transfer
from synthwatch.heads.metrics import paired_difference

DEMO, LARGE = (39, 10), (1000, 1000)


def _pass_rate(size, *, lost: float, policy: GatePolicy, trials: int, n_boot: int, generators: int = 1) -> float:
    """Share of trials in which every one of ``generators`` backward-transfer checks passes."""
    rng = np.random.default_rng(size[0] * 7 + generators)
    n_real, n_fake = size
    passed = 0
    for trial in range(trials):
        paired = {}
        for g in range(generators):
            real, fake = rng.normal(size=n_real), rng.normal(3.3, size=n_fake)
            champion = (real + 0.3 * rng.normal(size=n_real), fake + 0.3 * rng.normal(size=n_fake))
            candidate = (real + 0.3 * rng.normal(size=n_real), fake - lost + 0.3 * rng.normal(size=n_fake))
            paired[f"g{g}"] = paired_difference(candidate, champion, thresholds=(0.0, 0.0), metrics=("auroc",),
                                                n_boot=n_boot, seed=trial * 31 + g, level=policy.confidence)
        passed += all(check.passed for check in backward_transfer(paired, policy))
    return passed / trials


def test_at_the_demos_size_an_equal_candidate_passes_and_one_that_forgot_is_caught():
    policy = GatePolicy()  # the default margin (0.06) and level (0.90)
    assert _pass_rate(DEMO, lost=0.0, policy=policy, trials=400, n_boot=400) >= 0.95
    # lowering its fakes by 1.5 sd takes the candidate's AUROC from 0.987 to about 0.89
    assert _pass_rate(DEMO, lost=1.5, policy=policy, trials=300, n_boot=400) <= 0.05
    # the old margin, 0.02, is finer than 10 fakes resolve: equal candidates are rejected often
    assert _pass_rate(DEMO, lost=0.0, policy=GatePolicy(regression_tolerance=0.02), trials=400, n_boot=400) < 0.85


@pytest.mark.slow
def test_in_a_large_store_a_margin_of_001_holds_both_ways():
    policy = GatePolicy(regression_tolerance=0.01)
    assert _pass_rate(LARGE, lost=0.0, policy=policy, trials=60, n_boot=200) >= 0.95
    # lowering by 0.5 sd: AUROC 0.987 -> 0.971, a loss of 0.016 (more than the margin)
    assert _pass_rate(LARGE, lost=0.5, policy=policy, trials=60, n_boot=200) <= 0.05


def test_over_many_generators_the_chances_of_rejecting_an_equal_candidate_add_up():
    """Every check must pass, so a candidate equal to the champion is rejected more often the more
    generators it is checked on; Holm's step-down, which guards the other error, makes it rarer
    still for it to pass."""
    policy = GatePolicy()
    one = _pass_rate(DEMO, lost=0.0, policy=policy, trials=150, n_boot=300, generators=1)
    eight = _pass_rate(DEMO, lost=0.0, policy=policy, trials=150, n_boot=300, generators=8)
    holm = _pass_rate(DEMO, lost=0.0, policy=GatePolicy(correction="holm"), trials=150, n_boot=300, generators=8)
    assert eight < one and holm <= eight
