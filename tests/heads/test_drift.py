"""Drift checks alarm at the configured rate when nothing changed, and catch a planted shift."""

from __future__ import annotations

import numpy as np
import pytest

from synthwatch.heads.drift import mmd_test, score_drift

ALPHA = 0.05


def test_embedding_check_false_alarm_rate_matches_alpha():
    rng = np.random.default_rng(0)
    trials = 300
    alarms = sum(mmd_test(rng.normal(size=(40, 8)), rng.normal(size=(60, 8)), alpha=ALPHA, permutations=99,
                          seed=t).drift for t in range(trials))
    # Binomial(300, 0.05): mean 15, sd 3.8; the permutation p-value is exact, so the rate is alpha.
    assert 0.02 <= alarms / trials <= 0.085


def test_embedding_check_catches_a_new_generator():
    rng = np.random.default_rng(1)
    caught = 0
    for trial in range(40):
        new = rng.normal(size=(40, 8))
        new[:, 0] += 1.3  # a generator whose images sit elsewhere in embedding space
        result = mmd_test(new, rng.normal(size=(60, 8)), alpha=ALPHA, permutations=99, seed=trial)
        caught += result.drift
    assert caught / 40 >= 0.9
    assert result.as_dict()["name"] == "embedding_mmd" and result.threshold == ALPHA


def test_score_check_false_alarm_rate_is_at_most_alpha():
    rng = np.random.default_rng(2)
    trials = 1000
    alarms = sum(score_drift(rng.uniform(size=60), rng.uniform(size=90), 0.6, alpha=ALPHA).drift for _ in range(trials))
    assert alarms / trials <= ALPHA + 0.015  # exact conditional test: at most alpha, a little less (discrete)
    assert alarms / trials >= 0.02


def test_score_check_catches_fakes_the_champion_misses():
    rng = np.random.default_rng(3)
    result = score_drift(rng.uniform(0, 0.7, size=60), rng.uniform(0.3, 1.0, size=90), 0.6, alpha=ALPHA)
    assert result.drift and result.detail["detection_rate_new"] < result.detail["detection_rate_validation"]
    assert result.statistic == pytest.approx(result.detail["detection_rate_validation"] - result.detail["detection_rate_new"],
                                             abs=1e-6)
