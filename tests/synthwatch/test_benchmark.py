"""`synthwatch benchmark`: a GenImage-shaped tree (the proxy corpus's images under GenImage's
folder names) run through the preset's protocol in one command, with the paper's numbers beside."""

from __future__ import annotations

import json
import pytest

from synthwatch.corpus.genimage import GENIMAGE_FOLDERS as GENIMAGE_NAMES, write_genimage_tree
from synthwatch.heads.references import REFERENCES_FILE, load_references

TINY = ("--backbone", "test-tiny-dinov2", "--workers", "0", "--n-boot", "50")


@pytest.fixture(scope="module")
def genimage_tree(proxy_store_template, tmp_path_factory):
    _, corpus = proxy_store_template
    root = tmp_path_factory.mktemp("genimage") / "GenImage"
    write_genimage_tree(corpus.out, root)
    (root / "ADM" / "imagenet_ai_3" / "train" / "ai" / "metadata.json").write_text("{}")  # skipped, counted
    return root


def test_benchmark_ingests_trains_on_the_preset_and_sets_the_papers_numbers_beside(cli, genimage_tree, tmp_path):
    store, report = tmp_path / "store", tmp_path / "out" / "genimage.html"
    code, out, err = cli("--store", store, "benchmark", genimage_tree, "--preset", "genimage-sdv14", *TINY,
                         "--no-robustness", "--report", report, "--json")
    assert code == 0, err
    assert out["ingest"]["ingested"] == 72 + 6 * 16 and out["ingest"]["skipped"] == 1
    assert out["train_on"] == ["stable_diffusion_v_1_4"] and out["head"] == "logreg"
    assert out["embed"]["embedded"] == 72 + 6 * 16
    per_generator = out["per_generator"]
    assert {g for g, m in per_generator.items() if not m["held_out"]} <= {"stable_diffusion_v_1_4"}
    assert len([g for g, m in per_generator.items() if m["held_out"]]) >= 3
    assert set(per_generator) | set(out["skipped"]) == set(GENIMAGE_NAMES)

    rows = {row["generator"]: row for row in out["comparison"]["rows"]}
    published = json.loads(REFERENCES_FILE.read_text())["presets"]["genimage-sdv14"]
    assert list(rows) == [g["name"] for g in published["generators"]]  # the paper's order, its names
    assert rows["Stable Diffusion V1.4"]["stored_as"] == "stable_diffusion_v_1_4"
    assert rows["GLIDE"]["stored_as"] == "glide" and rows["GLIDE"]["quoted"]["ResNet-50"] == {"accuracy": 61.9}
    for missing in ("VQDM", "BigGAN"):
        assert rows[missing]["measured"] is None and rows[missing]["why"] == "not in the store"
        assert rows[missing]["quoted"]["CNNSpot"]["accuracy"] == published["results"][3]["metrics"]["accuracy"][missing]
    measured = [row for row in rows.values() if row["measured"]]
    assert measured and all(row["measured"]["auroc"] == per_generator[row["stored_as"]]["auroc"] for row in measured)
    for row in measured:
        low, high = row["measured"]["balanced_accuracy_ci"]
        assert 0 <= low <= row["measured"]["balanced_accuracy"] <= high <= 1
    assert out["comparison"]["quoted_average"]["Swin-T"] == {"accuracy": 74.8}  # the paper's, all eight
    held = [row for row in rows.values() if row["measured"] and row["held_out"]]
    same = sum(row["quoted"]["ResNet-50"]["accuracy"] for row in held) / len(held)  # over what was measured
    assert out["comparison"]["quoted_mean_held_out"]["ResNet-50"]["accuracy"] == round(same, 2)
    assert out["references"]["source"].startswith("https://github.com/GenImage-Dataset/GenImage")

    page = report.read_text()
    assert "Against published numbers" in page and "https://github.com/GenImage-Dataset/GenImage" in page
    assert "not measured here" in page and "<td>61.9</td>" in page  # ResNet-50 on GLIDE, quoted
    assert json.loads(report.with_suffix(".json").read_text())["comparison"] == out["comparison"]

    code, again, err = cli("--store", store, "benchmark", genimage_tree, "--preset", "genimage-sdv14", *TINY,
                           "--no-robustness", "--head", "knn", "--json")
    assert code == 0, err
    assert (again["ingest"]["ingested"], again["ingest"]["duplicates"], again["embed"]["embedded"]) == (0, 168, 0)
    assert again["head"] == "knn" and again["report"] == str((store / "benchmarks" / "genimage-sdv14.html").resolve())


def test_benchmark_without_the_dataset_says_how_to_give_it(cli, proxy_store):
    store, _ = proxy_store
    code, _, err = cli("--store", store, "benchmark", "--preset", "forensynths-progan", *TINY)
    assert code == 1
    assert "Expected the store to hold progan for the forensynths-progan protocol" in err
    assert "synthwatch benchmark PATH --preset forensynths-progan" in err


def test_the_benchmark_prints_the_table_for_people(cli, genimage_tree, tmp_path, capsys):
    from synthwatch.cli import main

    store = tmp_path / "store"
    assert main(["--store", str(store), "benchmark", str(genimage_tree), "--preset", "genimage-sdv14", *TINY,
                 "--no-robustness"]) == 0
    text = capsys.readouterr().out
    assert "quoted from Zhu et al., GenImage" in text
    assert "VQDM" in text and "not in the store" in text
    assert "report: " in text and (store / "benchmarks" / "genimage-sdv14.html").exists()


def test_every_shipped_reference_names_its_source_and_covers_its_generators():
    table = json.loads(REFERENCES_FILE.read_text())
    for preset, entry in table["presets"].items():
        references = load_references(preset)
        assert references.source.startswith("https://github.com/") and "commit" in references.source
        for result in references.results:
            for metric, values in result.metrics.items():
                assert set(values) == set(references.generators), (preset, result.method, metric)
                assert all(0 <= v <= 100 for v in values.values())
    assert load_references("no-such-preset") is None
