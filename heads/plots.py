"""The report's figures: matplotlib figures rendered as SVG text to inline in one HTML page.

Text stays text (``svg.fonttype`` none: tick labels, axis labels and legends are ``<text>``), each
figure's root ``<svg>`` carries an id, and ids inside a figure are salted with that id so several
figures share a page. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import io
import math
import re
from functools import partial
from typing import Callable

import numpy as np

from synthwatch.heads.dataset import REAL
from synthwatch.heads.evaluation import GeneratorResult
from synthwatch.heads.metrics import roc_curve

__all__ = ["REAL_COLOUR", "calibration_svg", "curve_svg", "histograms_svg", "map_svg", "palette", "roc_svg",
           "tpr_svg"]

REAL_COLOUR = "#8c8c8c"
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
            "#393b79")
_TPR_KEYS = (("tpr_at_1fpr", 0.01), ("tpr_at_5fpr", 0.05))
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def palette(names) -> dict[str, str]:
    """One colour per generator name (sorted order), the same in every figure of a report."""
    return {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(sorted(set(names) - {REAL}))}


def roc_svg(results: list[GeneratorResult], *, target_fpr: float, colours: dict[str, str]) -> str:
    """ROC curves on a log false-positive-rate axis, each with the point its threshold gives and a
    vertical line at ``target_fpr``."""
    return _render(partial(_draw_roc, results, target_fpr, colours), size=(8.4, 4.4), name="roc")


def tpr_svg(results: list[GeneratorResult], *, target_fpr: float, colours: dict[str, str]) -> str:
    """TPR at 1% and 5% false-positive rate per generator, with 95% bootstrap intervals."""
    return _render(partial(_draw_tpr, results, target_fpr, colours), size=(7.2, 1.4 + 0.42 * len(results)),
                   name="tpr-at-fpr")


def calibration_svg(results: list[GeneratorResult], *, colours: dict[str, str], bins: int = 10) -> str:
    """Reliability plot: mean predicted P(synthetic) against the observed share of synthetic
    images, in ``bins`` equal-width bins of each generator's test images, with the diagonal."""
    return _render(partial(_draw_calibration, results, colours, bins), size=(7.2, 4.4), name="calibration")


def histograms_svg(results: list[GeneratorResult], *, colours: dict[str, str]) -> str:
    """One panel per generator: its scores against the real test images', with the threshold."""
    columns = min(3, len(results))
    rows = math.ceil(len(results) / columns)
    return _render(partial(_draw_histograms, results, colours, columns), size=(3.4 * columns, 0.6 + 2.3 * rows),
                   name="score-histograms")


def curve_svg(curve: dict, caption: str) -> str:
    """A learning curve (``LearningCurve.as_dict()``): AUROC and TPR at 1% FPR against the fakes
    trained on, with intervals and the gate's floors."""
    name = "learning-curve-" + re.sub(r"[^\w-]", "-", curve["generator"])
    return _render(partial(_draw_curve, curve, caption), size=(5.4, 3.2), name=name)


def map_svg(embedding_map: dict, *, colours: dict[str, str]) -> str:
    """The 2-D embedding map: real images in grey, each generator in its colour, the newest drawn
    larger and outlined and named "(newest)" in the legend."""
    return _render(partial(_draw_map, embedding_map, colours), size=(7.8, 5.2), name="embedding-map")


def traffic_history_svg(history: list[dict]) -> str:
    """Traffic drift over time (``heads.traffic.traffic_history``): the flag rate of each window,
    and each check's p-value against alpha (log scale), detections in red."""
    return _render(partial(_draw_traffic, history), size=(7.8, 5.4), name="traffic-history")


def _render(draw: Callable, *, size: tuple[float, float], name: str) -> str:
    """Draw a figure of ``size`` inches with ``draw(figure)`` and return its ``<svg>`` element."""
    import matplotlib
    from matplotlib.figure import Figure

    settings = {"svg.fonttype": "none", "svg.hashsalt": name, "svg.id": name, "font.size": 9,
                "font.sans-serif": ["DejaVu Sans"]}
    with matplotlib.rc_context(settings):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata=_NO_METADATA)
    text = out.getvalue()
    return text[text.index("<svg"):]


def _text(name: str) -> str:
    """A generator name as matplotlib shows it verbatim: ``$`` starts no formula, and a leading
    ``_`` does not hide it from the legend."""
    name = name.replace("$", r"\$")
    return "\u200b" + name if name.startswith("_") else name


def _percent(value: float, _position=None) -> str:
    """0.001 -> "0.1%", 0.01 -> "1%", 1 -> "100%"."""
    if value <= 0:
        return "0%"
    return f"{value:.{max(0, -math.floor(math.log10(value) + 1e-9) - 2)}%}"


def _fpr_axis_start(results: list[GeneratorResult], target_fpr: float) -> float:
    """The decade below the smallest measurable false-positive rate (one real image) and the target."""
    smallest = min(1 / max(len(r.real_scores) for r in results), target_fpr if target_fpr > 0 else 1.0)
    return 10.0 ** (math.ceil(math.log10(smallest) - 1e-9) - 1)


def _draw_roc(results: list[GeneratorResult], target_fpr: float, colours: dict[str, str], figure) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax = figure.add_subplot()
    start = _fpr_axis_start(results, target_fpr)
    for i, r in enumerate(results):
        fpr, tpr = roc_curve(r.real_scores, r.fake_scores)
        colour = colours.get(r.generator, _COLOURS[0])
        ax.plot(np.maximum(fpr, start), tpr, color=colour, lw=1.5,
                label=f"{_text(r.generator)} (AUROC {r.metrics['auroc']:.3f})")
        at_fpr, at_tpr = np.mean(r.real_scores >= r.threshold), np.mean(r.fake_scores >= r.threshold)
        ax.plot([max(at_fpr, start)], [at_tpr], "o", ms=7, mfc=colour, mec="black", mew=1.2, clip_on=False,
                gid=f"roc-threshold-{i}")
    ax.plot([], [], "o", ms=7, mfc="white", mec="black", mew=1.2, label="at the head's threshold")
    if target_fpr > 0:
        ax.axvline(target_fpr, color="black", ls="--", lw=0.9, gid="roc-target-fpr",
                   label=f"target false-positive rate ({_percent(target_fpr)})")
    ax.set_xscale("log")
    ax.set_xlim(start, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.xaxis.set_major_locator(LogLocator(base=10))
    ax.xaxis.set_major_formatter(FuncFormatter(_percent))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("false-positive rate (held-out real images)")
    ax.set_ylabel("true-positive rate")
    ax.grid(True, which="major", alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=8)


def _draw_tpr(results: list[GeneratorResult], target_fpr: float, colours: dict[str, str], figure) -> None:
    ax = figure.add_subplot()
    rows = np.arange(len(results))[::-1]
    for offset, (key, fpr) in zip((-0.15, 0.15), _TPR_KEYS):
        values = np.array([r.metrics[key] for r in results])
        low, high = np.array([r.metrics[f"{key}_ci"] for r in results]).T
        target = math.isclose(fpr, target_fpr)
        _, _, bars = ax.errorbar(values, rows + offset, xerr=[values - low, high - values], fmt="o" if target else "s",
                                 color="black" if target else "#999999", ms=5, capsize=3, lw=1.2,
                                 label=f"at {_percent(fpr)} FPR{' (the target)' if target else ''}")
        bars[0].set_gid(f"tpr-interval-{key}")
    ax.set_yticks(rows, [_text(r.generator) + ("" if r.held_out else " (known)") for r in results])
    for label, r in zip(ax.get_yticklabels(), results):
        label.set_color(colours.get(r.generator, "black"))
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.6, len(results) - 0.4)
    ax.set_xlabel("true-positive rate at a fixed false-positive rate (95% bootstrap interval)")
    ax.set_ylabel("generator")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def _calibration_bins(scores: np.ndarray, synthetic: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean score, share synthetic) of each non-empty bin of equal width on [0, 1]."""
    which = np.clip((np.clip(scores, 0, 1) * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    filled = counts > 0
    mean = np.bincount(which, scores, bins)[filled] / counts[filled]
    share = np.bincount(which, synthetic, bins)[filled] / counts[filled]
    return mean, share


def _draw_calibration(results: list[GeneratorResult], colours: dict[str, str], bins: int, figure) -> None:
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=0.9, gid="calibration-diagonal", label="perfectly calibrated")
    for i, r in enumerate(results):
        scores = np.concatenate([r.real_scores, r.fake_scores])
        synthetic = np.concatenate([np.zeros(len(r.real_scores)), np.ones(len(r.fake_scores))])
        mean, share = _calibration_bins(scores, synthetic, bins)
        ax.plot(mean, share, "o-", color=colours.get(r.generator, _COLOURS[0]), ms=4, lw=1.2, gid=f"calibration-{i}",
                label=f"{_text(r.generator)} ({len(r.real_scores)} real, {len(r.fake_scores)} synthetic)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("mean predicted P(synthetic) in the bin")
    ax.set_ylabel("observed share synthetic in the bin")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def _draw_histograms(results: list[GeneratorResult], colours: dict[str, str], columns: int, figure) -> None:
    axes = figure.subplots(math.ceil(len(results) / columns), columns, sharex=True, squeeze=False).ravel()
    edges = np.linspace(0.0, 1.0, 31)
    for i, (ax, r) in enumerate(zip(axes, results)):
        fakes = colours.get(r.generator, _COLOURS[0])
        for scores, colour, label in ((r.real_scores, REAL_COLOUR, "real"), (r.fake_scores, fakes, "synthetic")):
            ax.hist(np.clip(scores, 0, 1), edges, weights=np.full(len(scores), 1 / max(1, len(scores))),
                    color=colour, alpha=0.55, label=label)
        ax.axvline(r.threshold, color="black", ls="--", lw=0.9, gid=f"histogram-threshold-{i}", label="threshold")
        ax.set_title(_text(r.generator) + ("" if r.held_out else " (known)"), fontsize=9)
        ax.set_xlabel("P(synthetic)")
        ax.set_ylabel("share of images")
        ax.legend(fontsize=7)
    for ax in axes[len(results):]:
        ax.set_visible(False)


def _draw_curve(curve: dict, caption: str, figure) -> None:
    ax = figure.add_subplot()
    points = curve["curve"]
    where = np.arange(len(points))
    for key, colour, label in (("auroc", "#1f77b4", "AUROC"), ("tpr_at_1fpr", "#d62728", "TPR at 1% FPR")):
        values = np.array([p[key] for p in points])
        low, high = np.array([p[f"{key}_ci"] for p in points]).T
        ax.errorbar(where, values, yerr=[values - low, high - values], fmt="o-", color=colour, ms=4, capsize=3,
                    lw=1.4, label=label)
        ax.axhline(curve["floors"][key], color=colour, ls="--", lw=0.8, alpha=0.6, label=f"gate floor ({label})")
    ax.set_xticks(where, [str(p["fakes"]) for p in points])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("fakes of the generator trained on")
    ax.set_ylabel("AUROC and TPR on its test split")
    ax.set_title(f"{_text(curve['generator'])}: {caption}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def _draw_traffic(history: list[dict], figure) -> None:
    rates, checks = figure.subplots(2, 1, sharex=True)
    ends = [result["window"]["to"][:16].replace("T", " ") for result in history]
    where = np.arange(len(history))
    rate = [r["window"]["flagged"] / r["window"]["images"] if r["window"]["images"] else np.nan for r in history]
    rates.plot(where, rate, "o-", color="#444", ms=4)
    rates.set_ylabel("share flagged synthetic")
    rates.set_title("flag rate of each window", fontsize=9)
    rates.grid(True, alpha=0.3)
    names = sorted({c["name"] for r in history for c in r["checks"]})
    for name, colour in zip(names, ("#1f77b4", "#2ca02c", "#9467bd")):
        points = [(i, c["p_value"], c["drift"]) for i, r in enumerate(history) for c in r["checks"] if c["name"] == name]
        if points:
            at, p_values, drift = zip(*points)
            checks.plot(at, np.maximum(p_values, 1e-6), "o-", color=colour, ms=4, label=name)
            checks.scatter([a for a, d in zip(at, drift) if d], [max(p, 1e-6) for p, d in zip(p_values, drift) if d],
                           s=60, facecolors="none", edgecolors="#d62728", zorder=3)
    alpha = history[-1]["alpha"] if history else 0.01
    checks.axhline(alpha, color="#d62728", ls="--", lw=0.9, label=f"alpha {alpha} (red circles: drift)")
    checks.set_yscale("log")
    checks.set_ylabel("p-value (log scale)")
    checks.set_xlabel("window ending (UTC)")
    checks.set_xticks(where, ends, rotation=30, ha="right", fontsize=7)
    checks.grid(True, alpha=0.3)
    checks.legend(fontsize=7, loc="lower left")


def _draw_map(embedding_map: dict, colours: dict[str, str], figure) -> None:
    ax = figure.add_subplot()
    x, y = np.asarray(embedding_map["x"]), np.asarray(embedding_map["y"])
    generators = np.asarray(embedding_map["generator"], dtype=object)
    newest = embedding_map["newest"]
    names = [REAL, *sorted(set(generators.tolist()) - {REAL, newest}), *([newest] if newest is not None else [])]
    for i, name in enumerate(n for n in names if (generators == n).any()):
        rows = generators == name
        label = "real" if name == REAL else _text(name) + (" (newest)" if name == newest else "")
        style = ({"s": 36, "edgecolors": "black", "linewidths": 0.9, "zorder": 3} if name == newest
                 else {"s": 10 if name == REAL else 14, "alpha": 0.5 if name == REAL else 0.8, "linewidths": 0})
        ax.scatter(x[rows], y[rows], color=REAL_COLOUR if name == REAL else colours.get(name, _COLOURS[0]),
                   label=f"{label} ({int(rows.sum())})", gid=f"map-points-{i}", **style)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{embedding_map['method']} dimension 1")
    ax.set_ylabel(f"{embedding_map['method']} dimension 2")
    figure.legend(loc="outside right upper", fontsize=8, ncols=1 if len(names) <= 14 else 2)
