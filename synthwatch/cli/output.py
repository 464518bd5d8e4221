"""Printing command results: one JSON object with --json, else lines of text for people."""

from __future__ import annotations

import json
import sys

from synthwatch.settings import Settings


def print_json(payload: dict) -> None:
    json.dump(payload, sys.stdout, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"synthwatch: {note}", file=sys.stderr)


def print_decision(payload: dict) -> None:
    print(f"decision: {payload['decision'].upper()}; champion: {payload['champion']}")
    for check in payload["checks"]:
        value = "-" if check["value"] is None else f"{check['value']:.4f}"
        threshold = "-" if check["threshold"] is None else f"{check['threshold']:.4f}"
        interval = f" [{check['interval'][0]:.4f}, {check['interval'][1]:.4f}]" if check.get("interval") else ""
        print(f"  {'pass' if check['passed'] else 'FAIL'}  {check['name']:<40} {value:>8}{interval} (threshold {threshold})")
    for reason in payload["reasons"]:
        print(f"  reason: {reason}")


def print_drift(drift: dict) -> None:
    if not drift.get("checked"):
        print(f"drift: not checked ({drift.get('reason')})")
        return
    print(f"drift: {'DETECTED' if drift['detected'] else 'none'} on {drift['new_synthetic']} new synthetic images "
          f"({', '.join(drift['generators'])}), alpha {drift['alpha']}")
    for check in drift["checks"]:
        print(f"  {check['name']:<22} statistic {check['statistic']:.4f}  p {check['p_value']:.4f}  "
              f"{'drift' if check['drift'] else 'no drift'}")


def print_evaluation(evaluation: dict) -> None:
    protocol = {"logo": "leave one generator out", "holdout": "held-out generators"}[evaluation["protocol"]]
    print(f"evaluation ({protocol}; 95% bootstrap intervals; FPR at the threshold on held-out real images):")
    for name, m in evaluation["per_generator"].items():
        kind = "held out" if m["held_out"] else "known"
        print(f"  {name:<18} {kind:<8} AUROC {m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}]  "
              f"TPR@1%FPR {m['tpr_at_1fpr']:.3f} [{m['tpr_at_1fpr_ci'][0]:.3f}, {m['tpr_at_1fpr_ci'][1]:.3f}]  "
              f"AP {m['ap']:.3f}  FPR {m['fpr']:.3f}  ({m['n_fake']} fakes, {m['n_real']} real)")
    for name, why in evaluation["skipped"].items():
        print(f"  {name:<18} not measured: {why}")
    for name, conditions in evaluation.get("robustness", {}).items():
        cells = ", ".join(f"{c} AUROC {m['auroc']:.3f} TPR@1%FPR {m['tpr_at_1fpr']:.3f}" for c, m in conditions.items())
        print(f"  robustness {name}: {cells}")


def print_comparison(comparison: dict, references: dict) -> None:
    """The benchmark table: measured here (%, 95% intervals) beside the paper's quoted numbers."""
    methods = [(r["method"], metric) for r in references["results"] for metric in r["metrics"]]
    print(f"measured here (synthwatch's protocol, %) beside quoted from {references['paper']}")
    print(f"  quoted numbers: {references['source']}; measured under the paper's own protocol")
    print(f"  {'generator':<22} {'':<9} {'AUROC':>20} {'bal. acc @0.5':>20}   quoted: "
          + ", ".join(f"{method} {metric}" for method, metric in methods))
    for row in comparison["rows"]:
        quoted = "  ".join(f"{row['quoted'].get(method, {}).get(metric, float('nan')):5.1f}" for method, metric in methods)
        measured = row["measured"]
        if measured is None:
            print(f"  {row['generator']:<22} {'-':<9} {row['why']:>41}   {quoted}")
            continue
        cells = "".join(f"{100 * measured[key]:6.1f} [{100 * measured[key + '_ci'][0]:5.1f},{100 * measured[key + '_ci'][1]:5.1f}]"
                        .rjust(21) for key in ("auroc", "balanced_accuracy"))
        print(f"  {row['generator']:<22} {'held out' if row['held_out'] else 'trained':<9}{cells}   {quoted}")
    mean = comparison["mean_held_out"]
    if mean:
        quoted = ", ".join(f"{method} {metric} {value:.1f}" for method, means in comparison["quoted_mean_held_out"].items()
                           for metric, value in means.items())
        print(f"  mean of the same {comparison['held_out_measured']} held-out generators: AUROC {100 * mean['auroc']:.1f}, "
              f"balanced accuracy {100 * mean['balanced_accuracy']:.1f}; quoted: {quoted or 'none'}")


def print_ingest(report: dict) -> None:
    rate = f" ({report['files_per_s']:.0f} files/s)" if report["files_per_s"] else ""
    print(
        f"ingest: {report['ingested']} new, {report['duplicates']} duplicates, "
        f"{report['rejected']} rejected, {report['conflicts']} conflicts, "
        f"{report['skipped']} skipped (not image files) in {report['elapsed_s']:.1f} s{rate}"
    )
    if report["new_generators"]:
        print("new generators: " + ", ".join(report["new_generators"]))
    for item in report["rejections"]:
        print(f"  rejected  {item['path']}: {item['reason']}")
    for item in report["conflict_details"]:
        print(f"  conflict  {item['path']}: {item['reason']}")


def print_status(status: dict, settings: Settings) -> None:
    if not settings.layout.exists():
        print(f"no store at {settings.store_root} yet: `synthwatch ingest PATH` creates it")
        return
    images = status["images"]
    print(f"store        {status['store']}")
    print(f"images       {images['real'] + images['synthetic']} "
          f"(real {images['real']}, synthetic {images['synthetic']})")
    print(f"generators   {len(status['generators'])}")
    width = max((len(name) for name in status["generators"]), default=0)
    for name, count in status["generators"].items():
        print(f"  {name:<{width}}  {count}")
    print(f"quarantined  {status['quarantined']} rejected, {status['conflicts']} conflicts")
    print(f"events       {status['events']}")
    for backbone_id, rows in status.get("embeddings", {}).items():
        print(f"embeddings   {backbone_id}: {rows} rows")
    last = status["last_run"]
    if last:
        print(f"last run     {last['command']} {last['status']} (started {last['started_at']})")
    for repair in status.get("repairs", []):
        print(f"repaired     {repair}")
    if "problems" in status:
        print(f"verify       {len(status['problems'])} problems")
        for problem in status["problems"]:
            print(f"  {problem}")


def print_corpus(summary: dict) -> None:
    fakes = sum(summary["synthetic"].values())
    print(f"corpus: {summary['real']} real, {fakes} synthetic from "
          f"{len(summary['synthetic'])} generators in {summary['elapsed_s']:.1f} s "
          f"(trained {len(summary['trained'])}, from cache {len(summary['cached'])})")
    for name, count in summary["synthetic"].items():
        print(f"  {name:<16} {count}")
    print(f"manifest: {summary['manifest']}")
