"""The evaluation report: one self-contained HTML file (plots drawn as inline SVG) and the same
numbers as JSON beside it; a benchmark's report opens with the published numbers beside the
measured ones."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from synthwatch.heads.evaluation import Evaluation, GeneratorResult
from synthwatch.heads.metrics import roc_curve
from synthwatch.store.atomic import atomic_write_bytes

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f")
_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.ci{color:#777;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.note{color:#555}svg text{font:11px sans-serif}"""
_METRIC_NAMES = {"accuracy": "accuracy", "ap": "AP"}
_METRIC_COLUMNS = (("auroc", "AUROC"), ("ap", "AP"), ("tpr_at_1fpr", "TPR @ 1% FPR"),
                   ("tpr_at_5fpr", "TPR @ 5% FPR"), ("accuracy", "accuracy @ threshold"),
                   ("fpr", "FPR @ threshold"))


def write_report(path: Path, evaluation: Evaluation | None, context: dict, *, comparison: dict | None = None,
                 references: dict | None = None, learning_curves: list[dict] = ()) -> tuple[Path, Path]:
    """Write ``path`` (HTML) and ``path`` with suffix ``.json``; returns both paths. A benchmark
    passes its ``comparison`` (:func:`synthwatch.heads.references.compare`) and ``references``;
    ``learning_curves`` (``LearningCurve.as_dict()``) are plotted, alone when ``evaluation`` is None."""
    path = Path(path)
    payload = {**context, **(evaluation.as_dict() if evaluation is not None else {})}
    if comparison is not None:
        payload.update(comparison=comparison, references=references)
    if learning_curves:
        payload["learning_curves"] = list(learning_curves)
    json_path = path.with_suffix(".json")
    atomic_write_bytes(json_path, json.dumps(payload, indent=1, ensure_ascii=False, default=str).encode())
    page = (render(evaluation, context, comparison=comparison, references=references, learning_curves=learning_curves)
            if evaluation is not None else _render_curves(learning_curves, context))
    atomic_write_bytes(path, page.encode())
    return path, json_path


def _render_curves(curves: list[dict], context: dict) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>synthwatch learning curve</title>"
            f"<style>{_STYLE}</style></head><body><h1>synthwatch learning curve</h1>{_key_values(context)}"
            f"{_curves_section(curves)}</body></html>")


def render(evaluation: Evaluation, context: dict, *, comparison: dict | None = None,
           references: dict | None = None, learning_curves: list[dict] = ()) -> str:
    """The report as one HTML document."""
    held = [r for r in evaluation.results if r.held_out]
    title = "synthwatch benchmark" if comparison is not None else "synthwatch evaluation"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>",
        _context_table(evaluation, context),
        *([_comparison_section(comparison, references)] if comparison is not None else []),
        *([_curves_section(learning_curves)] if learning_curves else []),
        "<h2>Held-out generators: ROC curves</h2>",
        _roc_svg(held) if held else "<p class='note'>No held-out generator could be measured.</p>",
        "<h2>Metrics (95% bootstrap intervals)</h2>",
        _metrics_table(evaluation.results),
        "<h2>Scores: held-out real images against each generator</h2><div class='grid'>",
        *(_histogram_svg(r, evaluation.threshold if evaluation.threshold is not None else r.threshold, i)
          for i, r in enumerate(evaluation.results)),
        "</div>",
        "<h2>Robustness</h2>", _robustness_table(evaluation.results),
    ]
    if evaluation.skipped:
        parts.append("<h2>Not measured</h2><ul>" + "".join(
            f"<li>{html.escape(name)}: {html.escape(why)}</li>" for name, why in evaluation.skipped.items()) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _context_table(evaluation: Evaluation, context: dict) -> str:
    rows = {
        "protocol": {"logo": "leave one generator out", "holdout": "held-out generator set"}[evaluation.protocol],
        "target false-positive rate": f"{evaluation.target_fpr:.2%} (threshold set on validation real images)",
        "threshold": "per fold" if evaluation.threshold is None else f"{evaluation.threshold:.6f}",
        "test images dropped as near-duplicates of training images": evaluation.dropped_near_duplicates,
        **{key.replace("_", " "): value for key, value in context.items() if not isinstance(value, (dict, list))},
    }
    return _key_values(rows)


def _key_values(rows: dict) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _comparison_section(comparison: dict, references: dict) -> str:
    methods = [(r["method"], metric) for r in references["results"] for metric in r["metrics"]]
    head = ("<tr><th>generator</th><th></th><th>AUROC</th><th>AP</th><th>balanced accuracy at 0.5</th>"
            + "".join(f"<th>{html.escape(method)}<br>{html.escape(_METRIC_NAMES.get(metric, metric))} (quoted)</th>"
                      for method, metric in methods) + "</tr>")
    rows = []
    for row in comparison["rows"]:
        measured = row["measured"]
        if measured:
            kind = "held out" if row["held_out"] else "trained on (test split)"
            cells = "".join(f"<td>{_percent_with_ci(measured, key)}</td>" for key in ("auroc", "ap", "balanced_accuracy"))
        else:
            kind, cells = html.escape(row["why"]), "<td>-</td>" * 3
        quoted = "".join(f"<td>{_quoted(row['quoted'].get(method, {}).get(metric))}</td>" for method, metric in methods)
        rows.append(f"<tr><td>{html.escape(row['generator'])}</td><td>{kind}</td>{cells}{quoted}</tr>")
    mean = comparison["mean_held_out"]
    same, averages = comparison["quoted_mean_held_out"], comparison["quoted_average"]
    rows.append(f"<tr><th>mean of the {comparison['held_out_measured']} measured held-out generators</th><th></th>"
                + "".join(f"<th>{100 * mean[key]:.1f}</th>" if key in mean else "<th>-</th>"
                          for key in ("auroc", "ap", "balanced_accuracy"))
                + "".join(f"<th>{_quoted(same.get(method, {}).get(metric))}</th>" for method, metric in methods)
                + "</tr>")
    if averages:
        rows.append("<tr><td>the paper's own average (all its generators, the trained-on one included)</td>"
                    "<td></td>" + "<td></td>" * 3
                    + "".join(f"<td>{_quoted(averages.get(method, {}).get(metric))}</td>" for method, metric in methods)
                    + "</tr>")
    return ("<h2>Against published numbers</h2>"
            f"<p class='note'><b>Quoted</b> columns: {html.escape(references['paper'])}, from "
            f"{html.escape(references['source'])}, measured under the paper's own protocol ("
            f"{html.escape(references['protocol'])}); they are not measured here. <b>Measured</b> columns: this "
            "store under synthwatch's protocol (source groups split into train, validation and test; every generator "
            "not trained on held out whole; balanced accuracy at P(synthetic) 0.5, as the papers' classifiers decide; "
            "95% bootstrap intervals). Different images, splits and thresholds: read them as where this detector "
            "stands, not as a reproduction.</p>"
            f"<table>{head}{''.join(rows)}</table>")


def _curves_section(curves: list[dict]) -> str:
    parts = ["<h2>How many fakes of a new generator it takes</h2><p class='note'>Trained with that many of the "
             "generator's training-split fakes (nested draws), tested on its test split; bars are 95% bootstrap "
             "intervals, dashed lines the gate's floors.</p><div class='grid'>"]
    for curve in curves:
        if curve.get("skipped"):
            parts.append(f"<p class='note'>{html.escape(curve['generator'])}: {html.escape(curve['skipped'])}</p>")
            continue
        needed = curve["fakes_needed"]
        parts.append(_curve_svg(curve, f"not caught with all {curve['available']} of its fakes" if needed is None
                                else "caught without any of its fakes" if needed == 0 else f"caught from {needed} fakes"))
    return "".join(parts) + "</div>"


def _curve_svg(curve: dict, caption: str, width: int = 460, height: int = 240) -> str:
    pad, points = 40, curve["curve"]
    step = (width - 2 * pad) / max(1, len(points) - 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return pad + i * step, height - pad - value * (height - 2 * pad)

    marks = []
    for key, colour, floor in (("auroc", "#1f77b4", curve["floors"]["auroc"]),
                               ("tpr_at_1fpr", "#d62728", curve["floors"]["tpr_at_1fpr"])):
        line = " ".join("{:.1f},{:.1f}".format(*xy(i, p[key])) for i, p in enumerate(points))
        marks.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.6' points='{line}'/>")
        for i, p in enumerate(points):
            (x, low), (_, high) = xy(i, p[f"{key}_ci"][0]), xy(i, p[f"{key}_ci"][1])
            marks.append(f"<line x1='{x:.1f}' y1='{low:.1f}' x2='{x:.1f}' y2='{high:.1f}' stroke='{colour}'/>")
        _, y = xy(0, floor)
        marks.append(f"<line x1='{pad}' y1='{y:.1f}' x2='{width - pad}' y2='{y:.1f}' stroke='{colour}' "
                     "stroke-dasharray='4' stroke-opacity='0.6'/>")
    ticks = "".join(f"<text x='{xy(i, 0)[0] - 6:.1f}' y='{height - pad + 16}'>{p['fakes']}</text>"
                    for i, p in enumerate(points))
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"
            f"<text x='{pad}' y='16'>{html.escape(curve['generator'])}: {html.escape(caption)}</text>"
            f"<rect x='{pad}' y='{pad}' width='{width - 2 * pad}' height='{height - 2 * pad}' fill='none' stroke='#999'/>"
            f"{''.join(marks)}{ticks}<text x='{width / 2 - 30}' y='{height - 6}'>fakes trained on</text>"
            f"<text x='{width - pad - 130}' y='{pad + 14}' fill='#1f77b4'>AUROC</text>"
            f"<text x='{width - pad - 130}' y='{pad + 28}' fill='#d62728'>TPR at 1% FPR</text></svg>")


def _percent_with_ci(metrics: dict, key: str) -> str:
    low, high = metrics[f"{key}_ci"]
    return f"{100 * metrics[key]:.1f} <span class='ci'>[{100 * low:.1f}, {100 * high:.1f}]</span>"


def _quoted(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _metrics_table(results: list[GeneratorResult]) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in _METRIC_COLUMNS)
    rows = []
    for r in results:
        cells = "".join(f"<td>{_with_ci(r.metrics, key)}</td>" for key, _ in _METRIC_COLUMNS)
        kind = "held out" if r.held_out else "known (test split)"
        rows.append(f"<tr><td>{html.escape(r.generator)}</td><td>{kind}</td>"
                    f"<td>{r.metrics['n_real']} / {r.metrics['n_fake']}</td>{cells}</tr>")
    return f"<table><tr><th>generator</th><th></th><th>real / fake</th>{head}</tr>{''.join(rows)}</table>"


def _with_ci(metrics: dict, key: str) -> str:
    low, high = metrics[f"{key}_ci"]
    return f"{metrics[key]:.3f} <span class='ci'>[{low:.3f}, {high:.3f}]</span>"


def _robustness_table(results: list[GeneratorResult]) -> str:
    rows = []
    for r in results:
        for condition, metrics in [("clean", r.metrics), *r.robustness.items()]:
            cells = "".join(f"<td>{_with_ci(metrics, key)}</td>" for key in ("auroc", "tpr_at_1fpr", "accuracy", "fpr"))
            rows.append(f"<tr><td>{html.escape(r.generator)}</td><td>{condition}</td>{cells}</tr>")
    if not any(r.robustness for r in results):
        return "<p class='note'>No robustness views were embedded (run without --no-robustness).</p>"
    return ("<table><tr><th>generator</th><th>images</th><th>AUROC</th><th>TPR @ 1% FPR</th>"
            f"<th>accuracy</th><th>FPR</th></tr>{''.join(rows)}</table>")


def _roc_svg(results: list[GeneratorResult], size: int = 420) -> str:
    pad = 40
    plot = size - 2 * pad

    def point(x: float, y: float) -> str:
        return f"{pad + x * plot:.1f},{size - pad - y * plot:.1f}"

    lines, legend = [], []
    for i, r in enumerate(results):
        fpr, tpr = roc_curve(r.real_scores, r.fake_scores)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
        colour = _COLOURS[i % len(_COLOURS)]
        lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.6' "
                     f"points='{' '.join(point(fpr[j], tpr[j]) for j in keep)}'/>")
        legend.append(f"<text x='{size + 10}' y='{pad + 16 * i}' fill='{colour}'>"
                      f"{html.escape(r.generator)} (AUROC {r.metrics['auroc']:.3f})</text>")
    frame = (f"<rect x='{pad}' y='{pad}' width='{plot}' height='{plot}' fill='none' stroke='#999'/>"
             f"<line x1='{pad}' y1='{size - pad}' x2='{size - pad}' y2='{pad}' stroke='#ccc' stroke-dasharray='4'/>"
             f"<text x='{size / 2 - 40}' y='{size - 8}'>false-positive rate</text>"
             f"<text x='4' y='{pad - 10}'>true-positive rate</text>")
    return f"<svg width='{size + 260}' height='{size}' xmlns='http://www.w3.org/2000/svg'>{frame}{''.join(lines)}{''.join(legend)}</svg>"


def _histogram_svg(result: GeneratorResult, threshold: float, number: int, width: int = 340, height: int = 180) -> str:
    pad = 24
    edges = np.linspace(0.0, 1.0, 31)
    real, _ = np.histogram(np.clip(result.real_scores, 0, 1), edges)
    fake, _ = np.histogram(np.clip(result.fake_scores, 0, 1), edges)
    real = real / max(1, real.sum())
    fake = fake / max(1, fake.sum())
    top = max(real.max(), fake.max(), 1e-9)
    bar = (width - 2 * pad) / 30
    bars = []
    for values, colour in ((real, "#1f77b4"), (fake, _COLOURS[(number + 1) % len(_COLOURS)])):
        for j, value in enumerate(values):
            h = value / top * (height - 2 * pad)
            bars.append(f"<rect x='{pad + j * bar:.1f}' y='{height - pad - h:.1f}' width='{bar:.1f}' "
                        f"height='{h:.1f}' fill='{colour}' fill-opacity='0.5'/>")
    x = pad + min(max(threshold, 0), 1) * (width - 2 * pad)
    return (f"<svg width='{width}' height='{height}' xmlns='http://www.w3.org/2000/svg'>"
            f"<text x='{pad}' y='14'>{html.escape(result.generator)}: real (blue) vs synthetic</text>"
            f"{''.join(bars)}<line x1='{x:.1f}' y1='{pad}' x2='{x:.1f}' y2='{height - pad}' stroke='#000' "
            f"stroke-dasharray='3'/><text x='{pad}' y='{height - 6}'>0</text>"
            f"<text x='{width - pad - 6}' y='{height - 6}'>1</text></svg>")
