"""The evaluation report: one self-contained HTML file (matplotlib figures inlined as SVG,
:mod:`synthwatch.heads.plots`) and the same numbers as JSON beside it; a benchmark's report opens
with the published numbers beside the measured ones."""

from __future__ import annotations

import html
import json
from pathlib import Path

from synthwatch.heads import plots
from synthwatch.heads.evaluation import Evaluation, GeneratorResult
from synthwatch.store.atomic import atomic_write_bytes

_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.ci{color:#777;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.note{color:#555}svg{max-width:100%;height:auto}"""
_METRIC_NAMES = {"accuracy": "accuracy", "ap": "AP"}
_METRIC_COLUMNS = (("auroc", "AUROC"), ("ap", "AP"), ("tpr_at_1fpr", "TPR @ 1% FPR"),
                   ("tpr_at_5fpr", "TPR @ 5% FPR"), ("accuracy", "accuracy @ threshold"),
                   ("fpr", "FPR @ threshold"))


def write_report(path: Path, evaluation: Evaluation | None, context: dict, *, comparison: dict | None = None,
                 references: dict | None = None, learning_curves: list[dict] = (),
                 embedding_map: dict | None = None) -> tuple[Path, Path]:
    """Write ``path`` (HTML) and ``path`` with suffix ``.json``; returns both paths. A benchmark
    passes its ``comparison`` (:func:`synthwatch.heads.references.compare`) and ``references``;
    ``learning_curves`` (``LearningCurve.as_dict()``) are plotted, alone when ``evaluation`` is None;
    ``embedding_map`` (:func:`synthwatch.heads.embedding_map.embedding_map`) is drawn and kept in the JSON."""
    path = Path(path)
    payload = {**context, **(evaluation.as_dict() if evaluation is not None else {})}
    if comparison is not None:
        payload.update(comparison=comparison, references=references)
    if learning_curves:
        payload["learning_curves"] = list(learning_curves)
    if embedding_map is not None:
        payload["embedding_map"] = embedding_map
    json_path = path.with_suffix(".json")
    atomic_write_bytes(json_path, json.dumps(payload, indent=1, ensure_ascii=False, default=str).encode())
    page = (render(evaluation, context, comparison=comparison, references=references, learning_curves=learning_curves,
                   embedding_map=embedding_map)
            if evaluation is not None else _render_curves(learning_curves, context))
    atomic_write_bytes(path, page.encode())
    return path, json_path


def write_traffic_report(path: Path, history: list[dict], context: dict) -> tuple[Path, Path]:
    """The traffic drift report: the figures of each window over time (``heads.traffic.traffic_history``),
    as ``path`` (HTML) and ``path`` with suffix ``.json``."""
    path = Path(path)
    json_path = path.with_suffix(".json")
    atomic_write_bytes(json_path, json.dumps({**context, "history": history}, indent=1, default=str).encode())
    rows = "".join(
        f"<tr><td>{html.escape(r['window']['to'][:16])}</td><td>{r['window']['images']}</td>"
        f"<td>{r['window']['flagged']}</td><td>{'DRIFT' if r['drift'] else ('no' if r['checked'] else 'not checked')}</td>"
        f"<td>{html.escape('; '.join(c['name'] + ' p ' + format(c['p_value'], '.4f') for c in r['checks']))}</td></tr>"
        for r in history)
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>synthwatch traffic drift</title>"
            f"<style>{_STYLE}</style></head><body><h1>synthwatch traffic drift</h1>{_key_values(context)}"
            "<p class='note'>Each window is compared with the traffic the same champion answered before it.</p>"
            f"{plots.traffic_history_svg(history) if history else ''}"
            "<table><tr><th>window ending (UTC)</th><th>images</th><th>flagged</th><th>verdict</th><th>checks</th></tr>"
            f"{rows}</table></body></html>")
    atomic_write_bytes(path, page.encode())
    return path, json_path


def write_discovery_report(path: Path, result: dict, context: dict, thumbnails) -> tuple[Path, Path]:
    """The discovery report (`discover --report`): each group's figures, the thumbnails of its
    most typical kept uploads (``thumbnails(image_ids)`` gives ``(image_id, JPEG bytes)`` pairs),
    and the command that ingests it; as ``path`` (HTML) and ``path`` with suffix ``.json``."""
    import base64

    path = Path(path)
    json_path = path.with_suffix(".json")
    atomic_write_bytes(json_path, json.dumps({**context, **result}, indent=1, default=str).encode())
    sections = []
    for title, groups in (("Unfamiliar groups: candidate new generators", result["groups"]),
                          ("Familiar groups: like a known generator", result["familiar_groups"])):
        sections.append(f"<h2>{title}</h2>" + ("" if groups else "<p class='note'>None.</p>"))
        for group in groups:
            images = "".join(f"<img alt='{image_id[:12]}' title='{image_id}' "
                             f"src='data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}'>"
                             for image_id, jpeg in thumbnails(group["image_ids"]))
            kept = (images or "<p class='note'>No upload of this group was kept (serve with --keep-uploads).</p>")
            figures = {key: group[key] for key in ("size", "nearest_generator", "mean_distance", "reference_distance",
                                                   "generator_spread", "p_value", "mean_score", "flagged", "attribution", "first_seen",
                                                   "last_seen", "kept_uploads")}
            sections.append(
                f"<h3>{html.escape(group['group'])}</h3>{_key_values({**figures, 'sources': group['sources']})}"
                f"<div class='grid'>{kept}</div><p>Name it and ingest it: <code>synthwatch ingest --from-discovery "
                f"{html.escape(group['group'])} --generator NAME</code></p>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>synthwatch discovery</title>"
            f"<style>{_STYLE}</style></head><body><h1>synthwatch discovery</h1>{_key_values(context)}"
            f"<p class='note'>{result['candidates']} images scored synthetic or near the threshold in the window; "
            f"{result['unclustered']} in no group. A group is unfamiliar when its images lie farther from the "
            "reference fakes of the generators they are nearest to than those generators' held-out fakes do.</p>"
            f"{''.join(sections)}</body></html>")
    atomic_write_bytes(path, page.encode())
    return path, json_path


def _render_curves(curves: list[dict], context: dict) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>synthwatch learning curve</title>"
            f"<style>{_STYLE}</style></head><body><h1>synthwatch learning curve</h1>{_key_values(context)}"
            f"{_curves_section(curves)}</body></html>")


def render(evaluation: Evaluation, context: dict, *, comparison: dict | None = None,
           references: dict | None = None, learning_curves: list[dict] = (), embedding_map: dict | None = None) -> str:
    """The report as one HTML document."""
    results, held = evaluation.results, [r for r in evaluation.results if r.held_out]
    colours = plots.palette([r.generator for r in results] + list(embedding_map["generator"] if embedding_map else []))
    title = "synthwatch benchmark" if comparison is not None else "synthwatch evaluation"
    none_held = "<p class='note'>No held-out generator could be measured.</p>"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>",
        _context_table(evaluation, context),
        *([_comparison_section(comparison, references)] if comparison is not None else []),
        *([_curves_section(learning_curves)] if learning_curves else []),
        "<h2>Held-out generators: ROC curves</h2><p class='note'>False-positive rate on a log axis: the region a "
        "detector is run in (a rate of 0 is drawn at its left edge). A dot marks where the head's own threshold (set on validation real images) puts each "
        "generator; the dashed line is the target false-positive rate.</p>",
        plots.roc_svg(held, target_fpr=evaluation.target_fpr, colours=colours) if held else none_held,
        "<h2>True-positive rate at a fixed false-positive rate</h2><p class='note'>Each generator's share caught "
        "at the threshold that lets through 1% (or 5%) of its test real images (set on those images, unlike the "
        "head's own threshold); bars are 95% bootstrap intervals.</p>",
        plots.tpr_svg(results, target_fpr=evaluation.target_fpr, colours=colours) if results else none_held,
        "<h2>Metrics (95% bootstrap intervals)</h2>",
        _metrics_table(results),
        "<h2>Calibration of held-out generators</h2><p class='note'>Test images binned by predicted P(synthetic) "
        "(ten equal bins): on the diagonal, a score means what it says. The observed share also depends on the "
        "mix of real and synthetic test images, given in the legend.</p>",
        plots.calibration_svg(held, colours=colours) if held else none_held,
        "<h2>Scores: held-out real images against each generator</h2>",
        *([plots.histograms_svg(results, colours=colours)] if results else []),
        *([_map_section(embedding_map, colours)] if embedding_map is not None else []),
        "<h2>Robustness</h2>", _robustness_table(results),
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
        caption = (f"not caught with all {curve['available']} of its fakes" if needed is None
                   else "caught without any of its fakes" if needed == 0 else f"caught from {needed} fakes")
        parts.append(plots.curve_svg(curve, caption))
    return "".join(parts) + "</div>"


def _map_section(embedding_map: dict, colours: dict[str, str]) -> str:
    newest = embedding_map["newest"]
    return ("<h2>Map of the embeddings</h2>"
            f"<p class='note'>{html.escape(embedding_map['method'])} of {len(embedding_map['x'])} of the "
            f"{embedding_map['of']} stored images (clean views), sampled evenly over real images and each generator "
            f"(seed {embedding_map['seed']}). Nearby points have similar embeddings; distances between clusters and "
            "the axes carry no meaning."
            + (f" The newest generator, {html.escape(newest)}, is drawn larger and outlined." if newest else "")
            + f"</p>{plots.map_svg(embedding_map, colours=colours)}")


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
