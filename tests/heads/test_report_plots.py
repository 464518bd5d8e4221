"""The report's figures read as a reader reads them: a log false-positive-rate axis with its ticks
and labels, the threshold and the target marked where they belong, a reliability plot around its
diagonal, and a map with one point per sampled image and the newest generator flagged."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from synthwatch.heads import plots
from synthwatch.heads.dataset import REAL
from synthwatch.heads.detector import HeadSpec
from synthwatch.heads.embedding_map import embedding_map, embedding_map_of
from synthwatch.heads.evaluation import EvalOptions, GeneratorResult, evaluate_protocol
from synthwatch.heads.report import write_report
from tests.conftest import write_image
from tests.heads.test_evaluation import simulated

SVG = "{http://www.w3.org/2000/svg}"
GENERATORS = ("near-a", "near-b", "odd")
COLOURS = plots.palette(GENERATORS)


@pytest.fixture(scope="module")
def evaluation():
    """'odd' and 'near-a' held out, 'near-b' known (measured on its test split)."""
    return evaluate_protocol(HeadSpec(), simulated(), protocol="holdout", holdout=["odd", "near-a"],
                             options=EvalOptions(n_boot=200))


def _group(root: ET.Element, gid: str) -> ET.Element:
    found = root.find(f".//{SVG}g[@id='{gid}']")
    assert found is not None, f"no element {gid!r} in the figure"
    return found


def _texts(element: ET.Element) -> list[str]:
    return ["".join(text.itertext()).strip() for text in element.iter(f"{SVG}text")]


def _ticks(root: ET.Element, axis: str) -> dict[str, float]:
    """{label: position in the figure} of the labelled ticks of ``axis`` (``x`` or ``y``)."""
    out = {}
    for tick in root.iter(f"{SVG}g"):
        label = tick.find(f".//{SVG}text")
        if tick.get("id", "").startswith(f"{axis}tick_") and label is not None:
            out["".join(label.itertext()).strip()] = float(tick.find(f".//{SVG}use").get(axis))
    return out


def _points(path: ET.Element) -> np.ndarray:
    """(n, 2) vertices of an SVG path's ``d``."""
    return np.array(re.findall(r"(-?[\d.]+) (-?[\d.]+)", path.get("d")), float)


def _linear(ticks: dict[str, float], low: str, high: str):
    """Data value -> figure position on a linear axis through the ticks ``low`` and ``high``."""
    a, b = float(low), float(high)
    return lambda v: ticks[low] + (v - a) / (b - a) * (ticks[high] - ticks[low])


def test_the_roc_has_a_log_fpr_axis_labelled_with_the_threshold_and_the_target_marked(evaluation):
    held = [r for r in evaluation.results if r.held_out]
    root = ET.fromstring(plots.roc_svg(held, target_fpr=0.01, colours=COLOURS))
    x = _ticks(root, "x")
    assert {"0.1%", "1%", "10%", "100%"} <= set(x)
    assert x["10%"] - x["1%"] == pytest.approx(x["100%"] - x["10%"], abs=0.01)  # decades equally wide: log
    texts = _texts(root)
    assert "false-positive rate (held-out real images)" in texts and "true-positive rate" in texts
    assert {f"{r.generator} (AUROC {r.metrics['auroc']:.3f})" for r in held} <= set(texts)
    assert "target false-positive rate (1%)" in texts and "at the head's threshold" in texts
    target = _points(_group(root, "roc-target-fpr").find(f"{SVG}path"))
    assert target[:, 0] == pytest.approx(x["1%"], abs=0.01)  # a vertical line at 1%

    def fpr_at(v):
        return x["1%"] + (math.log10(max(v, 1e-3)) + 2) * (x["10%"] - x["1%"])

    tpr_at = _linear(_ticks(root, "y"), "0.0", "1.0")
    for i, r in enumerate(held):
        marker = _group(root, f"roc-threshold-{i}").find(f".//{SVG}use")
        fpr, tpr = np.mean(r.real_scores >= r.threshold), np.mean(r.fake_scores >= r.threshold)
        assert (float(marker.get("x")), float(marker.get("y"))) == pytest.approx((fpr_at(fpr), tpr_at(tpr)), abs=0.05)


def test_tpr_at_the_target_fpr_shows_every_generator_with_its_interval(evaluation):
    results = evaluation.results
    root = ET.fromstring(plots.tpr_svg(results, target_fpr=0.01, colours=COLOURS))
    texts = _texts(root)
    assert {"odd", "near-a", "near-b (known)"} <= set(texts)
    assert "at 1% FPR (the target)" in texts and "at 5% FPR" in texts
    assert "true-positive rate at a fixed false-positive rate (95% bootstrap interval)" in texts
    at = _linear(_ticks(root, "x"), "0.0", "1.0")
    bars = _group(root, "tpr-interval-tpr_at_1fpr").findall(f"{SVG}path")
    assert len(bars) == len(results)
    for bar, r in zip(bars, results):
        low, high = r.metrics["tpr_at_1fpr_ci"]
        assert sorted(_points(bar)[:, 0]) == pytest.approx([at(low), at(high)], abs=0.05)


def test_the_calibration_plot_bins_scores_against_the_observed_share_around_its_diagonal():
    real = np.r_[np.full(20, 0.05), np.full(10, 0.55)]
    fake = np.r_[np.full(10, 0.55), np.full(30, 0.95)]
    result = GeneratorResult("g", True, 0.5, {}, real_scores=real, fake_scores=fake)
    root = ET.fromstring(plots.calibration_svg([result], colours=plots.palette(["g"])))
    texts = _texts(root)
    assert "mean predicted P(synthetic) in the bin" in texts and "observed share synthetic in the bin" in texts
    assert "perfectly calibrated" in texts and "g (30 real, 40 synthetic)" in texts
    x, y = _linear(_ticks(root, "x"), "0.0", "1.0"), _linear(_ticks(root, "y"), "0.0", "1.0")
    diagonal = _points(_group(root, "calibration-diagonal").find(f"{SVG}path"))
    assert diagonal[[0, -1]] == pytest.approx(np.array([[x(0), y(0)], [x(1), y(1)]]), abs=0.05)
    line = _points(_group(root, "calibration-0").find(f"{SVG}path"))
    expected = [(0.05, 0.0), (0.55, 0.5), (0.95, 1.0)]  # (mean score, share synthetic) of each filled bin
    assert line == pytest.approx(np.array([[x(a), y(b)] for a, b in expected]), abs=0.05)


def test_the_map_has_one_point_per_sampled_image_and_flags_the_newest_generator():
    data = simulated()
    arrivals = {i: 2.0 if g == "odd" else 1.0 for i, g in zip(data.image_ids.tolist(), data.generators.tolist())}
    points = embedding_map(data, arrivals, max_points=120, seed=3)
    assert points["newest"] == "odd"
    counts = {g: points["generator"].count(g) for g in {REAL, *GENERATORS}}
    assert counts == {REAL: 30, "near-a": 30, "near-b": 30, "odd": 30}  # shared evenly, every group in
    assert len(points["x"]) == len(points["y"]) == len(set(points["image_id"])) == 120
    assert points["label"] == ["real" if g == REAL else "synthetic" for g in points["generator"]]
    assert embedding_map(data, arrivals, max_points=120, seed=3) == points  # seeded

    root = ET.fromstring(plots.map_svg(points, colours=COLOURS))
    groups = [g for g in root.iter(f"{SVG}g") if g.get("id", "").startswith("map-points-")]
    assert sum(len(g.findall(f".//{SVG}use")) for g in groups) == 120
    legend = _texts(_group(root, "legend_1"))
    assert legend == ["real (30)", "near-a (30)", "near-b (30)", "odd (newest) (30)"]
    newest = groups[-1].findall(f".//{SVG}use")
    assert all("stroke: #000000" in use.get("style") for use in newest)  # outlined
    with pytest.raises(ValueError, match="Expected max_points >= 3, but got 2"):
        embedding_map(data, arrivals, max_points=2)


def test_the_report_inlines_every_figure_and_keeps_the_map_in_its_numbers(evaluation, tmp_path):
    data = simulated()
    points = embedding_map(data, {}, max_points=60)
    html_path, json_path = write_report(tmp_path / "report.html", evaluation, {"backbone_id": "sim"},
                                        embedding_map=points)
    page = html_path.read_text()
    for figure in ("roc", "tpr-at-fpr", "calibration", "score-histograms", "embedding-map"):
        assert f'id="{figure}"' in page
    assert "<?xml" not in page and re.findall(r"""(?:src|href)=["'](?!#)""", page) == []  # nothing fetched
    assert json.loads(json_path.read_text())["embedding_map"] == json.loads(json.dumps(points))
    without = write_report(tmp_path / "plain.html", evaluation, {})[0].read_text()
    assert 'id="roc"' in without and 'id="embedding-map"' not in without


def test_the_stores_newest_generator_is_the_one_ingested_last(cli, proxy_store, tmp_path):
    from synthwatch.store.backbones import resolve_backbone
    from synthwatch.store.layout import StoreLayout

    store, corpus = proxy_store
    for i in range(6):
        write_image(tmp_path / "new" / "synthetic" / "brand-new" / f"{i}.png", seed=100 + i)
    assert cli("--store", store, "ingest", tmp_path / "new", "--quiet", "--json")[0] == 0
    embed = ("embed", "--backbone", "test-tiny-dinov2", "--workers", "0", "--quiet", "--json")
    assert cli("--store", store, *embed)[0] == 0
    layout = StoreLayout(store)
    points = embedding_map_of(layout, resolve_backbone(layout))
    assert points["newest"] == "brand-new"
    assert set(points["generator"]) == {REAL, "brand-new", *corpus.synthetic}
    assert len(points["x"]) == points["of"] == corpus.real + sum(corpus.synthetic.values()) + 6  # all, under the cap
