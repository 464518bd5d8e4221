"""The public benchmarks' layouts: small trees made here in each dataset's shape, with the odd
cases those datasets really have (upper-case extensions, nested class folders, files without an
extension, stray metadata), read into labels, generators and source groups."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from synthwatch.store.errors import StoreError
from synthwatch.store.layouts import plan_layout, summarise

def _image(path):
    """A small PNG of its own colour (files must differ: ingest keeps one copy of equal bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    colour = tuple(hashlib.sha256("/".join(path.parts[-4:]).encode()).digest()[:3])  # not of the temporary folder
    Image.new("RGB", (40, 40), colour).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())


def _stray(path, text="metadata"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _genimage(root):
    for generator, subset in (("ADM", "imagenet_ai_0508_adm"), ("stable_diffusion_v_1_4", None)):
        top = root / generator / subset if subset else root / generator
        for split in ("train", "val"):
            _image(top / split / "nature" / f"n01440764_{split}1.JPEG")
            _image(top / split / "nature" / f"n02102040_{split}2.JPEG")
            _image(top / split / "ai" / f"0_adm_{split}.PNG")
            _image(top / split / "ai" / f"217_sdv4_{split}")  # no extension
    _stray(root / "ADM" / "README.md")
    _stray(root / "ADM" / "imagenet_ai_0508_adm" / "train" / "ai" / "metadata.json", "{}")
    _stray(root / ".DS_Store")


def _forensynths(root):
    for cls in ("airplane", "cat"):  # progan with classes
        _image(root / "progan" / cls / "0_real" / f"{cls}1.png")
        _image(root / "progan" / cls / "1_fake" / f"{cls}1.png")
    _image(root / "biggan" / "0_real" / "a.PNG")  # a generator without classes
    _image(root / "biggan" / "1_fake" / "a.PNG")
    _image(root / "biggan" / "1_fake" / "b.png")
    _stray(root / "biggan" / "1_fake" / "Thumbs.db")


def _synthbuster(root):
    for stem in ("r0a1b2c3d", "r0f9e8d7c"):
        _image(root / "RAISE" / f"{stem}.TIF".replace(".TIF", ".tif"))
        _image(root / "dalle3" / f"{stem}.png")
        _image(root / "midjourney-v5" / f"{stem}.png")
    _stray(root / "prompts.csv", "name,prompt\n")


def _drct(root):
    for image_id in ("000000000009", "000000000025"):
        _image(root / "MSCOCO" / "train2017" / f"{image_id}.jpg")
        _image(root / "stable-diffusion-v1-4" / "train2017" / f"{image_id}.png")
        _image(root / "lcm-lora-sdxl" / "train2017" / f"{image_id}.png")


def _real_fake(root):
    _image(root / "real" / "street" / "1.jpg")
    _image(root / "real" / "portrait" / "2.JPG")
    _image(root / "fake" / "sdxl" / "street" / "1.png")
    _image(root / "fake" / "loose.png")  # a fake of no named generator: the dataset's name
    _stray(root / "fake" / "sdxl" / "labels.json", "{}")


CASES = {
    "genimage": (_genimage, {"real": 8, "synthetic": {"ADM": 4, "stable_diffusion_v_1_4": 4}, "skipped": 1},
                 {f"{split}/{group}" for split in ("train", "val") for group in
                  ("imagenet-n01440764", "imagenet-n02102040", "imagenet-class-0", "imagenet-class-217")}),
    "forensynths": (_forensynths, {"real": 3, "synthetic": {"biggan": 2, "progan": 2}, "skipped": 1},
                    {"airplane", "cat", "biggan"}),
    "synthbuster": (_synthbuster, {"real": 2, "synthetic": {"dalle3": 2, "midjourney-v5": 2}, "skipped": 0},
                    {"r0a1b2c3d", "r0f9e8d7c"}),
    "drct": (_drct, {"real": 2, "synthetic": {"lcm-lora-sdxl": 2, "stable-diffusion-v1-4": 2}, "skipped": 0},
             {"000000000009", "000000000025"}),
    "real-fake": (_real_fake, {"real": 2, "synthetic": {"chameleon": 1, "sdxl": 1}, "skipped": 1},
                  {"street", "portrait", "chameleon"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_layout_reads_labels_generators_and_groups_and_auto_recognises_it(name, tmp_path):
    build, counts, sources = CASES[name]
    root = tmp_path / "chameleon"
    build(root)
    found, plan = plan_layout(root, "auto")
    assert found == name
    summary = summarise(found, plan)
    assert {key: summary[key] for key in counts} == counts
    assert {c.source for c in plan.candidates} == sources and summary["sources"] == len(sources)
    assert summary["invalid"] == 0
    assert all((c.label == "real") == (c.generator is None) for c in plan.candidates)
    assert plan_layout(root, name)[1].candidates == plan.candidates


def test_genimage_keeps_its_own_split_its_train_folders_trained_on_and_its_val_folders_tested_on(tmp_path):
    _genimage(tmp_path / "g")
    _, plan = plan_layout(tmp_path / "g", "genimage")
    for candidate in plan.candidates:
        folder = candidate.path.parent.parent.name
        assert candidate.source.startswith(f"{folder}/")  # a class in both folders is two groups
        assert candidate.split == {"train": "train+val", "val": "test"}[folder]


def test_forensynths_train_val_and_test_folders_are_its_splits(tmp_path):
    for split in ("train", "val"):
        for cls in ("airplane", "cat"):
            _image(tmp_path / "f" / split / "progan" / cls / "0_real" / f"{split}-{cls}.png")
            _image(tmp_path / "f" / split / "progan" / cls / "1_fake" / f"{split}-{cls}.png")
    _forensynths(tmp_path / "f" / "test")
    found, plan = plan_layout(tmp_path / "f", "auto")
    assert found == "forensynths"
    splits = {(c.source, c.split) for c in plan.candidates}
    assert ("train/airplane", "train") in splits and ("val/cat", "val") in splits and ("test/biggan", "test") in splits
    assert {c.generator for c in plan.candidates if c.split == "test"} == {None, "biggan", "progan"}


def test_a_tree_of_no_known_layout_or_the_wrong_one_is_refused_naming_them(tmp_path):
    _image(tmp_path / "photos" / "a.png")
    with pytest.raises(StoreError, match=r"genimage: <generator>/.*but it is none of them"):
        plan_layout(tmp_path / "photos", "auto")
    _forensynths(tmp_path / "cnn")
    with pytest.raises(StoreError, match=r"laid out as genimage .* but it is not"):
        plan_layout(tmp_path / "cnn", "genimage")
    with pytest.raises(StoreError, match=r"Expected --layout in auto, genimage"):
        plan_layout(tmp_path / "cnn", "imagenet")


def test_ingest_dry_run_prints_the_mapping_and_writes_nothing(cli, tmp_path):
    _genimage(tmp_path / "GenImage")
    store = tmp_path / "store"
    code, out, err = cli("--store", store, "ingest", tmp_path / "GenImage", "--layout", "auto", "--dry-run", "--json")
    assert code == 0, err
    assert out == {"layout": "genimage", "real": 8, "synthetic": {"ADM": 4, "stable_diffusion_v_1_4": 4},
                   "sources": 8, "skipped": 1, "invalid": 0}  # each class twice: in train/ and in val/
    assert not store.exists()


def test_ingest_with_a_layout_gives_todays_keys_and_the_dataset_names(cli, tmp_path):
    _genimage(tmp_path / "GenImage")
    store = tmp_path / "store"
    code, plain, _ = cli("--store", tmp_path / "other", "ingest", tmp_path / "GenImage" / "ADM" / "imagenet_ai_0508_adm"
                         / "train" / "nature", "--label", "real", "--json")
    code, out, err = cli("--store", store, "ingest", tmp_path / "GenImage", "--layout", "genimage", "--json")
    assert code == 0, err
    assert set(out) == set(plain)
    assert (out["ingested"], out["rejected"], out["conflicts"]) == (16, 0, 0)  # files without an extension too
    code, status, _ = cli("--store", store, "status", "--json")
    assert set(status["generators"]) == {"ADM", "stable_diffusion_v_1_4"}
    with pytest.raises(SystemExit):
        cli("--store", store, "ingest", tmp_path / "GenImage", "--layout", "imagenet", "--json")
    code, _, err = cli("--store", store, "ingest", tmp_path / "GenImage", "--layout", "genimage", "--label", "real")
    assert code != 0 and "--layout alone" in err


def test_evaluate_train_on_holds_out_every_other_generator(cli, proxy_store):
    store, corpus = proxy_store
    code, out, err = cli("--store", store, "evaluate", "--train-on", "ae-tconv", "--n-boot", "100", "--no-robustness",
                         "--json")
    assert code == 0, err
    assert out["train_on"] == ["ae-tconv"]
    held = {name: metrics["held_out"] for name, metrics in out["per_generator"].items()}
    assert held.pop("ae-tconv") is False
    assert held and all(held.values()) and set(held) | {"ae-tconv"} | set(out["skipped"]) == set(corpus.synthetic)
    code, _, err = cli("--store", store, "evaluate", "--train-on", "flux", "--json")
    assert code != 0 and "Expected --train-on generators among those stored" in err


def test_a_single_cnndetection_test_generator_with_lsun_classes_is_one_generator(tmp_path):
    for cls in ("bedroom", "car", "cat"):
        _image(tmp_path / "stylegan" / cls / "0_real" / f"{cls}.png")
        _image(tmp_path / "stylegan" / cls / "1_fake" / f"{cls}.png")
    _, plan = plan_layout(tmp_path / "stylegan", "forensynths")
    assert {c.generator for c in plan.candidates} == {None, "stylegan"}
    assert {c.source for c in plan.candidates} == {"bedroom", "car", "cat"}


def test_genimage_images_of_no_known_class_are_each_their_own_group(tmp_path):
    for number in (1, 2):
        _image(tmp_path / "g" / "BigGAN" / "val" / "nature" / f"ILSVRC2012_val_{number:08d}.JPEG")
        _image(tmp_path / "g" / "BigGAN" / "val" / "ai" / f"sample_{number}.png")
    _, plan = plan_layout(tmp_path / "g", "genimage")
    assert len({c.source for c in plan.candidates}) == 4


def test_a_preset_names_the_papers_training_generator_however_the_release_spells_it():
    from synthwatch.heads.presets import preset_train_on

    assert preset_train_on("genimage-sdv14", ["ADM", "stable_diffusion_v_1_4", "wukong"]) == ("stable_diffusion_v_1_4",)
    assert preset_train_on("forensynths-progan", ["ProGAN", "biggan"]) == ("ProGAN",)
    with pytest.raises(ValueError, match=r"hold Stable Diffusion V1.4 .* Ingest the dataset with --layout genimage"):
        preset_train_on("genimage-sdv14", ["ADM"])


def _ingested_and_embedded(cli, tree, store):
    """``store`` with the GenImage-shaped ``tree`` ingested and embedded with the test backbone."""
    from tests.store.test_index import TINY

    for args in (["ingest", tree, "--layout", "genimage"], ["embed", *TINY]):
        assert cli("--store", store, *args, "--json")[0] == 0
    return store


def test_evaluate_with_a_preset_runs_its_protocol(cli, tmp_path):
    _genimage(tmp_path / "GenImage")
    store = _ingested_and_embedded(cli, tmp_path / "GenImage", tmp_path / "store")
    code, out, err = cli("--store", store, "evaluate", "--preset", "genimage-sdv14", "--n-boot", "50",
                         "--no-robustness", "--json")
    assert code == 0, err
    assert out["train_on"] == ["stable_diffusion_v_1_4"]
    assert all(m["held_out"] for g, m in out["per_generator"].items() if g != "stable_diffusion_v_1_4")
    assert "ADM" in out["per_generator"] or "ADM" in out["skipped"]


def _genimage_of_classes(root, classes=(("n01440764", 0), ("n02102040", 217)), per_folder=3,
                         generators=("ADM", "BigGAN", "stable_diffusion_v_1_4")):
    """Generators, each with train/ and val/ of ai/ and nature/, of a few ImageNet classes
    (synset, class index)."""
    for generator in generators:
        for split in ("train", "val"):
            for number in range(per_folder):
                for synset, index in classes:
                    _image(root / generator / split / "nature" / f"{synset}_{generator}_{split}_{number}.JPEG")
                    _image(root / generator / split / "ai" / f"{index}_{generator}_{split}_{number}.png")


def test_a_genimage_tree_of_two_classes_is_evaluated_as_the_paper_did(cli, tmp_path):
    from synthwatch.store.catalog import Catalog
    from synthwatch.store.layout import StoreLayout

    _genimage_of_classes(tmp_path / "GenImage")
    store = _ingested_and_embedded(cli, tmp_path / "GenImage", tmp_path / "store")
    splits = Catalog(StoreLayout(store)).group_splits()
    assert {g: s for g, s in splits.items() if g.startswith("val/")} == {
        g: "test" for g in splits if g.startswith("val/")}  # GenImage's val/ is its test set
    trained = {s for g, s in splits.items() if g.startswith("train/imagenet-n")}
    assert trained == {"train", "val"}  # of the two real classes in train/, one validates
    assert Catalog(StoreLayout(store)).shipped_groups() == set(splits)
    code, out, err = cli("--store", store, "evaluate", "--train-on", "stable_diffusion_v_1_4", "--n-boot", "50",
                         "--no-robustness", "--dedup-threshold", "1", "--json")  # flat test images are alike
    assert code == 0, err
    for generator in ("ADM", "BigGAN"):
        assert out["per_generator"][generator]["held_out"] is True
        assert out["per_generator"][generator]["n_fake"] == 6  # its val/ai images only, not train/
    assert out["per_generator"]["stable_diffusion_v_1_4"]["n_fake"] == 6
    assert any("tested on its test folders only" in note for note in out["notes"])


def test_a_tree_too_small_to_set_a_threshold_still_reports_auroc_and_says_what_is_missing(cli, tmp_path):
    _genimage_of_classes(tmp_path / "g", classes=(("n01440764", 0),), per_folder=5,  # one real class: nothing
                         generators=("ADM", "stable_diffusion_v_1_4"))  # left to validate on
    store = _ingested_and_embedded(cli, tmp_path / "g", tmp_path / "store")
    code, out, err = cli("--store", store, "evaluate", "--train-on", "stable_diffusion_v_1_4", "--n-boot", "50",
                         "--no-robustness", "--dedup-threshold", "1", "--json")  # flat test images are alike
    assert code == 0, err
    assert 0 <= out["per_generator"]["ADM"]["auroc"] <= 1
    assert out["per_generator"]["ADM"]["threshold"] == 0.5
    assert any("no validation real images" in note and "at least 100" in note for note in out["notes"])
