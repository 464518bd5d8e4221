"""Metrics against hand-computed cases, the FPR-controlled threshold, and interval coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthwatch.heads.metrics import evaluate_scores, roc_curve, threshold_at_fpr


def test_hand_computed_auroc_ap_and_rates():
    # Reals 0.1, 0.4; fakes 0.35, 0.8. Of the four (fake, real) pairs, 3 are ordered right: AUROC 0.75.
    # Ranked: 0.8 (fake, precision 1/1), 0.4 (real), 0.35 (fake, precision 2/3): AP = (1 + 2/3) / 2.
    m = evaluate_scores([0.1, 0.4], [0.35, 0.8], threshold=0.3, n_boot=50)
    assert m["auroc"] == pytest.approx(0.75)
    assert m["ap"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-6)
    # At 0.3: both fakes and the real 0.4 are called synthetic: 3 of 4 right, FPR 1/2.
    assert (m["accuracy"], m["fpr"]) == (pytest.approx(0.75), pytest.approx(0.5))
    # No real may pass at 1% FPR with two reals: the threshold sits above 0.4, catching only 0.8.
    assert m["tpr_at_1fpr"] == pytest.approx(0.5)


def test_ties_count_half():
    assert evaluate_scores([0.5, 0.5], [0.5, 0.5], threshold=0.5, n_boot=20)["auroc"] == pytest.approx(0.5)
    assert evaluate_scores([0.2, 0.5], [0.5, 0.9], threshold=0.5, n_boot=20)["auroc"] == pytest.approx(0.875)


def test_tpr_at_fpr_on_a_grid():
    real = np.arange(100) / 100  # 0.00 .. 0.99
    fake = np.array([0.985, 0.995, 0.5, 0.97, 0.999])
    m = evaluate_scores(real, fake, threshold=0.99, n_boot=20)
    # 1% FPR allows one real (0.99) at or above the threshold 0.99: fakes 0.995 and 0.999 pass.
    assert m["tpr_at_1fpr"] == pytest.approx(2 / 5)
    # 5% FPR: threshold 0.95 lets 0.95..0.99 through; fakes 0.985, 0.995, 0.97, 0.999 pass.
    assert m["tpr_at_5fpr"] == pytest.approx(4 / 5)


@pytest.mark.parametrize("target", [0.0, 0.01, 0.05, 0.2])
def test_threshold_controls_the_false_positive_rate(target):
    rng = np.random.default_rng(3)
    real = np.round(rng.normal(size=1000), 2)  # many ties
    threshold = threshold_at_fpr(real, target)
    rate = np.mean(real >= threshold)
    assert rate <= target + 1e-12
    # ... and it is the lowest such threshold: any real just below it would break the target.
    below = real[real < threshold]
    if len(below):
        assert np.mean(real >= below.max()) > target


def test_threshold_needs_real_scores_and_a_valid_rate():
    with pytest.raises(ValueError, match="Expected real scores"):
        threshold_at_fpr(np.array([]), 0.01)
    with pytest.raises(ValueError, match=r"in \[0, 1\), but got 1.5"):
        threshold_at_fpr(np.array([0.1]), 1.5)


def test_roc_curve_runs_from_origin_to_corner():
    fpr, tpr = roc_curve(np.array([0.1, 0.4]), np.array([0.35, 0.8]))
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]


def test_intervals_cover_the_true_auroc_about_95_percent_of_the_time():
    # Binormal scores: real ~ N(0, 1), fake ~ N(d, 1) have AUROC = Phi(d / sqrt 2).
    d = 1.0
    truth = 0.5 * (1 + math.erf(d / 2))
    rng = np.random.default_rng(0)
    covered, widths = 0, []
    trials = 200
    for trial in range(trials):
        m = evaluate_scores(rng.normal(size=150), rng.normal(d, size=100), threshold=0.5, n_boot=400, seed=trial)
        low, high = m["auroc_ci"]
        covered += low <= truth <= high
        widths.append(high - low)
    assert 0.90 <= covered / trials <= 0.99
    # Width close to 2 x 1.96 x the Hanley-McNeil standard error of an AUROC at these sizes.
    q1, q2 = truth / (2 - truth), 2 * truth**2 / (1 + truth)
    se = math.sqrt((truth * (1 - truth) + 99 * (q1 - truth**2) + 149 * (q2 - truth**2)) / (150 * 100))
    assert np.mean(widths) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_more_data_narrows_the_interval():
    rng = np.random.default_rng(1)
    small = evaluate_scores(rng.normal(size=50), rng.normal(1, size=50), threshold=0.5, n_boot=300)
    large = evaluate_scores(rng.normal(size=2000), rng.normal(1, size=2000), threshold=0.5, n_boot=300)
    width = lambda m: m["auroc_ci"][1] - m["auroc_ci"][0]  # noqa: E731
    assert width(large) < width(small) / 4


def test_balanced_accuracy_weighs_real_and_fake_equally_whatever_their_counts():
    from synthwatch.heads.metrics import balanced_accuracy

    real = np.array([0.1, 0.2, 0.6, 0.3] * 25)  # 100 real, 75% below 0.5
    fake = np.array([0.9, 0.4])  # 2 fakes, 50% at or above 0.5
    result = balanced_accuracy(real, fake, n_boot=2000, seed=1)
    assert result["value"] == 0.625  # plain accuracy would be 76/102 = 0.745
    low, high = result["ci"]
    assert low < 0.625 < high and high - low > 0.3  # two fakes leave TPR wide open
    assert balanced_accuracy(np.zeros(5), np.ones(5), n_boot=100) == {"value": 1.0, "ci": [1.0, 1.0]}
    with pytest.raises(ValueError, match="Expected real and synthetic scores, but got 0 real"):
        balanced_accuracy(np.zeros(0), fake)


def test_a_paired_difference_is_that_of_the_metrics_and_its_interval_shrinks_with_what_the_heads_share():
    from synthwatch.heads.metrics import paired_difference

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=200), rng.normal(1.5, size=80)
    a = (real + 0.2 * rng.normal(size=200), fake + 0.2 * rng.normal(size=80))
    b = (real + 0.2 * rng.normal(size=200), fake + 0.2 * rng.normal(size=80))
    d = paired_difference(a, b, thresholds=(0.5, 0.5), n_boot=1000, seed=0)
    alone = [evaluate_scores(*head, threshold=0.5, n_boot=1)["auroc"] for head in (a, b)]
    assert d["auroc"].difference == pytest.approx(alone[0] - alone[1], abs=1e-6)
    low, high = d["auroc"].interval
    assert low <= d["auroc"].difference <= high
    unpaired = evaluate_scores(*a, threshold=0.5, n_boot=1000)["auroc_ci"]
    assert high - low < (unpaired[1] - unpaired[0]) / 2  # the shared difficulty cancels
    same = paired_difference(a, a, thresholds=(0.5, 0.5), n_boot=200)["auroc"]
    assert (same.difference, same.interval) == (0.0, (0.0, 0.0)) and same.p_at_most(-0.01) == 1 / 201
    with pytest.raises(ValueError, match="Expected both heads scored on the same images"):
        paired_difference(a, (b[0][:10], b[1]), thresholds=(0.5, 0.5))


def test_paired_results_match_the_heads_images_by_id_whatever_their_order():
    from synthwatch.heads.evaluation import GeneratorResult, paired_results

    rng = np.random.default_rng(4)
    real_ids = np.array([f"r{i}" for i in range(50)], object)
    fake_ids = np.array([f"f{i}" for i in range(30)], object)
    real, fake = rng.normal(size=50), rng.normal(2, size=30)

    def result(order_real, order_fake, shift=0.0):
        return GeneratorResult("g", False, 0.5, {}, real_scores=real[order_real], fake_scores=fake[order_fake] + shift,
                               real_ids=real_ids[order_real], fake_ids=fake_ids[order_fake])

    ordered = result(np.arange(50), np.arange(30))
    shuffled = result(rng.permutation(50), rng.permutation(30))
    same = paired_results(shuffled, ordered, metrics=("auroc",))["auroc"]
    assert same.difference == 0.0 and same.interval == (0.0, 0.0)  # the same scores, matched by id
    fewer = result(np.arange(3), np.arange(30))
    assert paired_results(fewer, ordered, metrics=("auroc",)) is None  # 3 shared reals: too few
