"""Published numbers of the presets' protocols (``references.json`` beside this module): quoted
from the papers' own repositories, never measured here, and set beside what synthwatch measured
under its own protocol by :func:`compare`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np

from synthwatch.heads.evaluation import Evaluation, GeneratorResult
from synthwatch.heads.metrics import balanced_accuracy
from synthwatch.heads.presets import match_names

REFERENCES_FILE = Path(__file__).with_name("references.json")
DECISION_SCORE = 0.5  # P(synthetic) at which the papers' classifiers call an image synthetic
MEASURED = ("auroc", "ap", "balanced_accuracy")


@dataclass(frozen=True)
class PublishedResult:
    """One method's row of a paper's table: metric -> generator (the paper's name) -> value in %."""

    method: str
    backbone: str
    metrics: dict[str, dict[str, float]]
    average: dict[str, float]


@dataclass(frozen=True)
class References:
    """A preset's published table: where it comes from, the protocol it was measured under, the
    generators in the paper's order (with the other spellings of their folders) and the rows."""

    preset: str
    dataset: str
    paper: str
    source: str
    protocol: str
    generators: dict[str, tuple[str, ...]]
    results: tuple[PublishedResult, ...]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["generators"] = list(self.generators)
        return out


@cache
def _table() -> dict:
    return json.loads(REFERENCES_FILE.read_text())


def load_references(preset: str) -> References | None:
    """The published table of ``preset`` (None when none is shipped)."""
    entry = _table()["presets"].get(preset)
    if entry is None:
        return None
    return References(preset, entry["dataset"], entry["paper"], entry["source"], entry["protocol"],
                      {g["name"]: tuple(g["aliases"]) for g in entry["generators"]},
                      tuple(PublishedResult(**result) for result in entry["results"]))


def compare(evaluation: Evaluation, references: References, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Rows of the paper's generators (then any other stored one) with what was measured here
    (AUROC, AP, balanced accuracy at P(synthetic) 0.5, each with its interval; 0-1) beside the
    quoted values (%). ``mean_held_out`` averages the measured held-out generators and
    ``quoted_mean_held_out`` each quoted column over those same generators; ``quoted_average`` is
    the paper's own average (over all its generators, the trained-on one included)."""
    measured = {r.generator: r for r in evaluation.results}
    matched = match_names(references.generators, sorted({*measured, *evaluation.skipped}))
    rows = []
    for name, stored in matched.items():
        quoted = {r.method: {metric: values[name] for metric, values in r.metrics.items() if name in values}
                  for r in references.results}
        rows.append(_row(name, stored, measured.get(stored), quoted, evaluation, n_boot, seed))
    for generator, result in measured.items():
        if generator not in matched.values():
            rows.append(_row(generator, generator, result, {}, evaluation, n_boot, seed))
    held = [row for row in rows if row["measured"] and row["held_out"]]
    mean = {key: round(float(np.mean([row["measured"][key] for row in held])), 6) for key in MEASURED} if held else {}
    same = {r.method: {metric: round(float(np.mean(values)), 2) for metric in r.metrics
                       if (values := [row["quoted"][r.method][metric] for row in held if metric in row["quoted"].get(r.method, {})])
                       and len(values) == len(held)}
            for r in references.results}
    return {"rows": rows, "mean_held_out": mean, "held_out_measured": len(held),
            "quoted_mean_held_out": {method: means for method, means in same.items() if means},
            "quoted_average": {r.method: r.average for r in references.results if r.average}}


def _row(name: str, stored: str | None, result: GeneratorResult | None, quoted: dict, evaluation: Evaluation,
         n_boot: int, seed: int) -> dict:
    row = {"generator": name, "stored_as": stored, "held_out": None, "measured": None, "quoted": quoted}
    if result is None:
        row["why"] = "not in the store" if stored is None else evaluation.skipped.get(stored, "not measured")
        return row
    accuracy = balanced_accuracy(result.real_scores, result.fake_scores, threshold=DECISION_SCORE, n_boot=n_boot,
                                 seed=seed)
    row["held_out"] = result.held_out
    row["measured"] = {"auroc": result.metrics["auroc"], "auroc_ci": result.metrics["auroc_ci"],
                       "ap": result.metrics["ap"], "ap_ci": result.metrics["ap_ci"],
                       "balanced_accuracy": accuracy["value"], "balanced_accuracy_ci": accuracy["ci"],
                       "n_real": result.metrics["n_real"], "n_fake": result.metrics["n_fake"]}
    return row
