"""Drift of production traffic, read from the prediction log: has the recent window moved away
from the traffic the same champion answered before it?

Traffic is unlabelled and its mix of real and fake is unknown, so a window is compared with
earlier traffic of the same head, not with the head's validation set. Three checks, each a test
whose p-value is valid when the window and the baseline come from one distribution:

- ``flag_rate``: the share flagged synthetic (Fisher's exact test, two-sided);
- ``score_distribution``: the scores as a whole, also below the threshold (two-sample
  Kolmogorov-Smirnov test);
- ``nearest_fake_distance``: images farther from every known fake than before, how an unknown
  generator shows (one-sided Mann-Whitney U test; rows logged with ``k=0`` have no distance);
- ``embedding_mmd``: the images' content as a whole, in the logged embeddings (squared maximum
  mean discrepancy with a Gaussian kernel, p-value by permutation; rows logged without vectors
  are left out, and only vectors of one backbone are compared).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from scipy.stats import fisher_exact, ks_2samp, mannwhitneyu

from synthwatch.heads.defaults import DEFAULT_ALPHA
from synthwatch.store.catalog import TRAFFIC_DRIFT, Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.predictions import most_common_backbone, prediction_rows, read_predictions

MIN_IMAGES = 20  # fewer in the window or the baseline: not checked
MMD_MAX_IMAGES = 400  # vectors per side in the MMD test, drawn at random (seeded) beyond this
MMD_PERMUTATIONS = 500  # the smallest p-value it can give is 1/501


def traffic_drift(rows: list[dict], *, since: timedelta, alpha: float = DEFAULT_ALPHA,
                  now: datetime | None = None, head_version: str | None = None) -> dict:
    """The checks of the window ``[now - since, now]`` against the earlier rows of the same head
    (``head_version``, default: the head that answered the window's latest row)."""
    now = now or datetime.now(timezone.utc)
    start = now - since
    window = [r for r in rows if start <= r["at"] <= now]
    head_version = head_version or (window[-1]["head_version"] if window else None)
    window = [r for r in window if r["head_version"] == head_version]
    baseline = [r for r in rows if r["at"] < start and r["head_version"] == head_version]
    result = {"window": _span(window, start, now), "baseline": _span(baseline, None, start), "alpha": alpha,
              "head_version": head_version, "checks": [], "drift": False, "checked": False}
    if len(window) < MIN_IMAGES or len(baseline) < MIN_IMAGES:
        result["reason"] = (f"expected at least {MIN_IMAGES} images of head {head_version} in the window and before "
                            f"it, but got {len(window)} and {len(baseline)}")
        return result
    checks = [flag_rate(window, baseline, alpha), score_distribution(window, baseline, alpha)]
    checks += [check for check in (nearest_fake_distance(window, baseline, alpha),
                                   embedding_mmd(window, baseline, alpha)) if check is not None]
    result.update(checks=checks, checked=True, drift=any(c["drift"] for c in checks))
    return result


def flag_rate(window: list[dict], baseline: list[dict], alpha: float) -> dict:
    flagged = [sum(r["synthetic"] for r in rows) for rows in (window, baseline)]
    table = [[flagged[0], len(window) - flagged[0]], [flagged[1], len(baseline) - flagged[1]]]
    p_value = float(fisher_exact(table).pvalue)
    change = flagged[0] / len(window) - flagged[1] / len(baseline)
    return _check("flag_rate", change, p_value, alpha,
                  f"{flagged[0]}/{len(window)} flagged in the window against {flagged[1]}/{len(baseline)} before")


def score_distribution(window: list[dict], baseline: list[dict], alpha: float) -> dict:
    test = ks_2samp([r["score"] for r in window], [r["score"] for r in baseline])
    return _check("score_distribution", float(test.statistic), float(test.pvalue), alpha,
                  "largest gap between the two score distributions (Kolmogorov-Smirnov)")


def nearest_fake_distance(window: list[dict], baseline: list[dict], alpha: float) -> dict | None:
    ours, theirs = ([r["nearest_fake_distance"] for r in rows if r["nearest_fake_distance"] is not None]
                    for rows in (window, baseline))
    if len(ours) < MIN_IMAGES or len(theirs) < MIN_IMAGES:
        return None
    test = mannwhitneyu(ours, theirs, alternative="greater")
    far = float(np.mean(np.asarray(ours) > np.quantile(theirs, 0.95)))
    return _check("nearest_fake_distance", far, float(test.pvalue), alpha,
                  "share of the window farther from every known fake than 95% of the baseline")


def embedding_mmd(window: list[dict], baseline: list[dict], alpha: float, *, seed: int = 0) -> dict | None:
    """Two-sample test on the embeddings: the biased squared MMD with a Gaussian kernel (bandwidth:
    the median squared distance of the pooled vectors), its p-value the share of
    ``MMD_PERMUTATIONS`` relabellings at least as large (counting the observed one, so it is valid
    at any sample size)."""
    backbone = most_common_backbone(window)
    if backbone is None:
        return None
    ours, theirs = ([r["embedding"] for r in rows if r.get("embedding") is not None
                     and r.get("embedding_backbone") == backbone] for rows in (window, baseline))
    if len(ours) < MIN_IMAGES or len(theirs) < MIN_IMAGES:
        return None
    rng = np.random.default_rng(seed)
    x, y = (_at_most(np.asarray(vectors, np.float64), MMD_MAX_IMAGES, rng) for vectors in (ours, theirs))
    pooled = np.vstack([x, y])
    norms = (pooled ** 2).sum(1)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2 * pooled @ pooled.T, 0.0)
    bandwidth = float(np.median(squared[np.triu_indices(len(pooled), 1)])) or 1.0
    kernel = np.exp(-squared / bandwidth).astype(np.float32)
    first = np.r_[np.ones(len(x), bool), np.zeros(len(y), bool)]
    labellings = np.vstack([first] + [rng.permutation(first) for _ in range(MMD_PERMUTATIONS)])
    weights = np.where(labellings, 1.0 / len(x), -1.0 / len(y)).astype(np.float32)
    statistics = ((weights @ kernel) * weights).sum(1)
    p_value = (1 + int((statistics[1:] >= statistics[0]).sum())) / (MMD_PERMUTATIONS + 1)
    return _check("embedding_mmd", float(statistics[0]), p_value, alpha,
                  f"squared MMD of {len(x)} window and {len(y)} earlier embeddings of {backbone} "
                  f"(Gaussian kernel, {MMD_PERMUTATIONS} permutations)")


def _at_most(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return vectors if len(vectors) <= count else vectors[np.sort(rng.choice(len(vectors), count, replace=False))]


def _check(name: str, statistic: float, p_value: float, alpha: float, detail: str) -> dict:
    return {"name": name, "statistic": round(statistic, 6), "p_value": round(p_value, 6), "threshold": alpha,
            "drift": p_value < alpha, "detail": detail}


def _span(rows: list[dict], start: datetime | None, end: datetime) -> dict:
    begin = start if start is not None else (rows[0]["at"] if rows else end)
    return {"from": begin.isoformat(), "to": end.isoformat(), "images": len(rows),
            "flagged": sum(bool(r["synthetic"]) for r in rows)}


def traffic_history(rows: list[dict], *, since: timedelta, windows: int, alpha: float = DEFAULT_ALPHA,
                    now: datetime | None = None) -> list[dict]:
    """:func:`traffic_drift` of each of the last ``windows`` windows of length ``since``, oldest
    first, each against the traffic before it: how the figures moved over time."""
    now = now or datetime.now(timezone.utc)
    return [traffic_drift(rows, since=since, alpha=alpha, now=now - since * back) for back in range(windows - 1, -1, -1)]


def logged_rows(layout: StoreLayout) -> list[dict]:
    """Every row of the prediction log, with its embedding, oldest first."""
    return prediction_rows(read_predictions(layout, vectors=True))


def check_traffic(layout: StoreLayout, *, since: timedelta, alpha: float = DEFAULT_ALPHA,
                  now: datetime | None = None, windows: int = 1, rows: list[dict] | None = None) -> list[dict]:
    """:func:`traffic_history` of the store's prediction log (read once, unless its ``rows`` are
    given), oldest window first: the last is the window ending now. A detection in it is logged as
    a ``synthwatch.traffic.drift`` event (sent to Prefect by the next cycle, for a deployment to act on)."""
    rows = logged_rows(layout) if rows is None else rows
    history = traffic_history(rows, since=since, windows=windows, alpha=alpha, now=now)
    result = history[-1]
    if result["drift"]:
        Catalog(layout).log_event(TRAFFIC_DRIFT, {key: result[key] for key in ("window", "head_version", "checks")})
    return history


def watch_traffic(layout: StoreLayout, *, alpha: float = DEFAULT_ALPHA, since: timedelta = timedelta(days=1),
                  discover_since: timedelta = timedelta(days=7)) -> dict:
    """What a cycle checks of the prediction log: drift of the last ``since`` (:func:`check_traffic`)
    and groups of unfamiliar fakes of the last ``discover_since`` (``heads.discovery``); a store
    without a log, or without an index to compare groups with, says so instead."""
    from synthwatch.heads.discovery import DiscoveryOptions, discover
    from synthwatch.store.errors import StoreError
    from synthwatch.store.predictions import log_files

    if not log_files(layout.predictions_dir):
        return {"checked": False, "reason": "no traffic logged yet (serve, or detect --log)"}
    rows, now = logged_rows(layout), datetime.now(timezone.utc)  # one read for both
    drift = check_traffic(layout, since=since, alpha=alpha, now=now, rows=rows)[-1]
    try:
        found = discover(layout, DiscoveryOptions(since=discover_since, alpha=alpha), now=now, rows=rows)
    except StoreError as error:
        found = {"groups": [], "familiar_groups": [], "reason": str(error)}
    return {"checked": True, "drift": drift, "discovery": found}

