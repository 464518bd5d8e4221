"""Unknown-generator discovery end to end: a store that knows five of the proxy corpus's
generators, a real service answering traffic with a sixth mixed in (uploads kept), then
`discover` names the sixth's images as one unfamiliar group, and `ingest --from-discovery`
brings them in under the name a person gives them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from synthwatch.cli import main
from synthwatch.store.catalog import TRAFFIC_DISCOVERED, Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.predictions import read_predictions
from synthwatch.store.registry import HeadRegistry
from tests.synthwatch.serving import TOKEN, running_service

UNKNOWN = "ae-pixelshuffle"
TRAFFIC_GROUPS = {"coffee", "rocket", "camera"}  # source photos the store never saw


def _split(corpus: Path, folder: Path) -> tuple[Path, dict[str, list[Path]]]:
    """The corpus's images without the unknown generator and the traffic groups (to ingest), and
    the traffic by kind: photos and known fakes of the traffic groups, and every unknown fake."""
    known, traffic = folder / "known", {}
    for image in sorted(path for path in corpus.rglob("*") if path.suffix in (".png", ".jpg")):
        kind = image.relative_to(corpus).parts[1] if image.relative_to(corpus).parts[0] == "synthetic" else "real"
        if kind == UNKNOWN or image.parent.name in TRAFFIC_GROUPS:
            traffic.setdefault("unknown" if kind == UNKNOWN else kind, []).append(image)
        else:
            target = known / image.relative_to(corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(image, target)
    return known, traffic


def test_the_novelty_test_is_exact_when_groups_mix_generators_and_sees_a_shift():
    from synthwatch.heads.discovery import unfamiliar_p_value

    rng = np.random.default_rng(0)
    # two generators with different spreads; a group's members are nearest to one or the other (a
    # new generator: twice as far from each reference as its held-out fakes)
    null = [unfamiliar_p_value([(rng.gamma(2, 0.02, 12), rng.gamma(2, 0.02, 60)),
                                (rng.gamma(2, 0.1, 8), rng.gamma(2, 0.1, 60))], permutations=500)
            for _ in range(300)]
    assert abs(np.mean(np.asarray(null) < 0.05) - 0.05) <= 0.031 and min(null) >= 1 / 501
    shifted = [unfamiliar_p_value([(rng.gamma(2, 0.04, 12), rng.gamma(2, 0.02, 60)),
                                   (rng.gamma(2, 0.2, 8), rng.gamma(2, 0.1, 60))], permutations=500)
               for _ in range(100)]
    assert np.mean(np.asarray(shifted) < 0.05) >= 0.8
    assert unfamiliar_p_value([(np.empty(0), rng.random(5))]) is None


@pytest.fixture(scope="module")
def served_traffic(proxy_store_template, tmp_path_factory):
    """A store of the known part embedded with the training-free spectrum backbone, a champion,
    and the traffic sent to `serve --keep-uploads`; returns ``(store, traffic)``. The corpus is
    the session's with twice the fakes (its generators come from the session's cache)."""
    from synthwatch.corpus import build_corpus
    from synthwatch.corpus.build import CorpusSize

    _, session_corpus = proxy_store_template
    folder = tmp_path_factory.mktemp("discovery")
    corpus = build_corpus(folder / "corpus", seed=0, cache_dir=session_corpus.out.parent / "cache",
                          size=CorpusSize(side=64, real=72, fakes_per_generator=32, train_steps=20))
    assert not corpus.trained  # every generator from the cache
    known, traffic = _split(corpus.out, folder)
    store = folder / "store"
    for args in (["ingest", known, "--quiet"], ["embed", "--backbone", "spectrum", "--workers", "0", "--quiet"],
                 ["index"], ["train", "--n-boot", "50", "--auroc-floor", "0", "--tpr-floor", "0"]):
        assert main(["--store", str(store), *map(str, args), "--json"]) in (0, 3), args
    version = HeadRegistry(StoreLayout(store)).versions()[-1]["version"]
    # a small store's threshold cannot meet a 1 % false-positive rate; a person promotes it anyway
    assert main(["--store", str(store), "models", "promote", version, "--force", "--reason", "test traffic"]) == 0
    with running_service(store, "--keep-uploads") as base:
        for kind, images in traffic.items():
            for start in range(0, len(images), 8):
                answer = httpx.post(f"{base}/detect", params={"source": kind, "k": 3},
                                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120,
                                    files=[("file", (image.name, image.read_bytes())) for image in images[start:start + 8]])
                assert answer.status_code == 200, answer.text
    return store, traffic


def _ids(images: list[Path]) -> set[str]:
    import hashlib

    return {hashlib.sha256(image.read_bytes()).hexdigest() for image in images}


def test_discover_finds_the_planted_generator_as_one_unfamiliar_group(served_traffic, cli, tmp_path):
    store, traffic = served_traffic
    logged = read_predictions(StoreLayout(store), vectors=True)
    assert logged.num_rows == sum(map(len, traffic.values())) and logged["embedding"].null_count == 0

    code, out, _ = cli("--store", store, "discover", "--report", tmp_path / "discovery.html", "--json")
    assert code == 0 and out["groups"], out["familiar_groups"]
    unknown, known = _ids(traffic["unknown"]), {kind: _ids(images) for kind, images in traffic.items()
                                                 if kind not in ("unknown", "real")}
    for group in out["groups"]:  # every unfamiliar group is the planted generator's images
        assert {"size", "image_ids", "nearest_generator", "mean_distance"} <= set(group)
        assert group["size"] == len(group["image_ids"]) == group["kept_uploads"] and set(group["image_ids"]) <= unknown
        assert group["nearest_generator"] != UNKNOWN and group["reference_distance"] > group["generator_spread"]
    group = out["groups"][0]
    assert group["size"] >= 8
    # a known generator's new images form a group judged like its stored fakes: familiar
    own = [g for g in out["familiar_groups"] if any(len(set(g["image_ids"]) & ids) >= 0.9 * g["size"]
                                                    for ids in known.values())]
    assert own, [g["sources"] for g in out["familiar_groups"]]

    page = (tmp_path / "discovery.html").read_text()
    assert page.count("src='data:image/jpeg;base64,") >= 8 + 1  # the group's eight most typical, and familiar ones
    assert f"synthwatch ingest --from-discovery {group['group']} --generator NAME" in page

    code, again, _ = cli("--store", store, "discover", "--json")
    assert code == 0 and again["groups"][0]["group"] == group["group"]  # same members, same name
    # a group found for the first time is an event a deployment can act on; found again, it is not
    events = [e for e in Catalog(StoreLayout(store)).pending_events() if e["name"] == TRAFFIC_DISCOVERED]
    assert len(events) == 1 and [g["group"] for g in events[0]["payload"]["groups"]] == [g["group"] for g in out["groups"]]


def test_each_cycle_shows_traffic_drift_and_unfamiliar_groups(served_traffic, tmp_path):
    from synthwatch.flows.publish import traffic_markdown
    from synthwatch.heads.traffic import watch_traffic

    original, _ = served_traffic
    store = tmp_path / "store"
    shutil.copytree(original, store)
    traffic = watch_traffic(StoreLayout(store), alpha=0.01)
    assert traffic["checked"] and not traffic["drift"]["checked"]  # one burst of traffic: nothing before it
    group = traffic["discovery"]["groups"][0]
    page = traffic_markdown(str(store), traffic)
    assert "drift not checked" in page and "expected at least 20 images" in page
    assert f"## Unfamiliar groups: {len(traffic['discovery']['groups'])}" in page
    assert f"`synthwatch ingest --from-discovery {group['group']} --generator NAME`" in page
    quiet = tmp_path / "quiet"
    shutil.copytree(original, quiet, ignore=shutil.ignore_patterns("predictions"))
    assert watch_traffic(StoreLayout(quiet)) == {"checked": False, "reason": "no traffic logged yet (serve, or "
                                                                               "detect --log)"}


def test_a_discovered_group_is_ingested_under_the_name_a_person_gives_it(served_traffic, cli, tmp_path):
    original, _ = served_traffic
    store = tmp_path / "store"
    shutil.copytree(original, store)
    code, out, _ = cli("--store", store, "discover", "--json")
    group = out["groups"][0]

    code, _, err = cli("--store", store, "ingest", "--from-discovery", group["group"], "--json")
    assert code == 1 and "--generator NAME" in err
    code, _, err = cli("--store", store, "ingest", "--from-discovery", "g-000000000000", "--generator", "x", "--json")
    assert code == 1 and "Run `synthwatch discover`" in err
    code, _, err = cli("--store", store, "ingest", "--from-discovery", "../../etc", "--generator", "x", "--json")
    assert code == 1 and "Expected a group name" in err

    code, dry, _ = cli("--store", store, "ingest", "--from-discovery", group["group"], "--generator", "flux-like",
                       "--dry-run", "--json")
    assert code == 0 and dry["synthetic"] == {"flux-like": group["size"]} and dry["layout"] == "discovery"
    code, report, _ = cli("--store", store, "ingest", "--from-discovery", group["group"], "--generator", "flux-like",
                          "--json")
    assert code == 0 and report["ingested"] == group["size"] and report["new_generators"] == ["flux-like"]
    rows = Catalog(StoreLayout(store)).query("SELECT image_id, label, source FROM images WHERE generator = 'flux-like'")
    assert {row[0] for row in rows} == set(group["image_ids"])
    assert {(row[1], row[2]) for row in rows} == {("synthetic", f"discovery-{group['group']}")}
    # ingested, its images are known: the group is not offered again
    code, after, _ = cli("--store", store, "discover", "--json")
    assert code == 0 and after["already_ingested"] == group["size"]
    assert all(not set(g["image_ids"]) & set(group["image_ids"]) for g in after["groups"] + after["familiar_groups"])


def _announced(store: Path) -> int:
    """How many ``synthwatch.traffic.discovered`` events the store's catalog holds."""
    return len(Catalog(StoreLayout(store)).events(TRAFFIC_DISCOVERED))


def _keep_log_rows(store: Path, keep) -> None:
    """Rewrite the store's prediction log with only the rows ``keep(row)`` accepts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthwatch.store.predictions import SCHEMA

    layout = StoreLayout(store)
    table = read_predictions(layout, vectors=True)
    mask = pa.array([bool(keep(row)) for row in table.select(["source", "at", "image_id"]).to_pylist()])
    shutil.rmtree(layout.predictions_dir)
    layout.predictions_dir.mkdir()
    pq.write_table(table.filter(mask).cast(SCHEMA), layout.predictions_dir / "part-20260101T000000000000-00000000.parquet")


def test_a_new_generator_alone_in_the_window_is_found(served_traffic, cli, tmp_path):
    original, traffic = served_traffic
    store = tmp_path / "store"
    shutil.copytree(original, store, ignore=shutil.ignore_patterns("discoveries"))
    _keep_log_rows(store, lambda row: row["source"] == "unknown")  # nothing else suspicious to contrast with
    code, out, _ = cli("--store", store, "discover", "--json")
    assert code == 0 and out["candidates"] == len(traffic["unknown"]) and out["groups"]
    assert all(set(g["image_ids"]) <= _ids(traffic["unknown"]) and g["unfamiliar"] for g in out["groups"])


def test_a_group_keeps_its_name_as_traffic_comes_and_is_announced_once(served_traffic, cli, tmp_path):
    original, _ = served_traffic
    code, found, _ = cli("--store", original, "discover", "--json")
    members = found["groups"][0]["image_ids"]
    store = tmp_path / "store"
    shutil.copytree(original, store, ignore=shutil.ignore_patterns("discoveries"))
    full, announced = tmp_path / "full-log", _announced(store)
    shutil.copytree(store / "predictions", full)
    _keep_log_rows(store, lambda row: row["image_id"] not in members[-3:])  # before three of its images came
    code, early, _ = cli("--store", store, "discover", "--json")
    assert code == 0 and set(early["groups"][0]["image_ids"]) == set(members[:-3])
    shutil.rmtree(store / "predictions")
    shutil.copytree(full, store / "predictions")
    code, later, _ = cli("--store", store, "discover", "--json")
    assert code == 0 and set(later["groups"][0]["image_ids"]) == set(members)
    assert later["groups"][0]["group"] == early["groups"][0]["group"]  # the same group, grown
    assert _announced(store) == announced + 1


def test_without_an_index_groups_are_listed_untested_and_it_says_why(served_traffic, cli, tmp_path):
    original, _ = served_traffic
    store = tmp_path / "store"
    shutil.copytree(original, store, ignore=shutil.ignore_patterns("indexes", "discoveries"))
    announced = _announced(store)
    code, out, _ = cli("--store", store, "discover", "--json")
    assert code == 0 and "Run `synthwatch index`" in out["reason"] and not out["familiar_groups"]
    assert out["groups"] and all(g["unfamiliar"] is None and g["p_value"] is None for g in out["groups"])
    assert _announced(store) == announced  # nothing was compared: nothing to announce


def test_a_group_whose_uploads_were_not_kept_cannot_be_ingested(served_traffic, cli, tmp_path):
    original, _ = served_traffic
    store = tmp_path / "store"
    shutil.copytree(original, store, ignore=shutil.ignore_patterns("uploads"))
    code, out, _ = cli("--store", store, "discover", "--json")
    group = out["groups"][0]
    assert group["kept_uploads"] == 0
    code, _, err = cli("--store", store, "ingest", "--from-discovery", group["group"], "--generator", "x", "--json")
    assert code == 1 and "--keep-uploads" in err and re.search(rf"{group['size']} images", err)
