"""Unknown-generator discovery: groups of recent traffic that look synthetic but like no known
generator, for a person to name and ingest (`synthwatch discover`).

1. Candidates: the window's images (each once, its last answer) scored at least
   ``threshold - near``: flagged, or just under the line.
2. They are clustered with HDBSCAN on their logged embeddings (unit vectors); a cluster of at
   least ``min_group`` images is a group. Images of no cluster are counted, not listed.
3. A group is unfamiliar when its images lie farther from the known fakes than the fakes of the
   generator they are nearest to lie from each other: its members' distances to their nearest
   known fake against that generator's fakes' distances to their nearest other fake of the same
   generator (one-sided Mann-Whitney U test, Bonferroni over the groups at ``alpha``). A
   cluster of a known generator's new images sits as close as its stored fakes sit to each other;
   a new generator's sits farther, even when it resembles a known one.

``groups`` lists the unfamiliar groups, ``familiar_groups`` the others. Each is named from its
members (``store.discoveries``) and kept for ``ingest --from-discovery``; an unfamiliar group
found for the first time is logged as a ``synthwatch.traffic.discovered`` event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from synthwatch.store.catalog import TRAFFIC_DISCOVERED, Catalog
from synthwatch.store.discoveries import group_name, save_group
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.predictions import prediction_rows, read_predictions

SPREAD_SAMPLE = 500  # fakes per known generator whose nearest other fake of it is measured


@dataclass(frozen=True)
class DiscoveryOptions:
    since: timedelta = timedelta(days=7)
    near: float = 0.1  # scores this far under the threshold count as suspicious
    min_group: int = 5
    alpha: float = 0.01  # over all groups (Bonferroni)
    max_images: int = 5000  # the most recent candidates clustered

    def __post_init__(self) -> None:
        if self.min_group < 2 or self.max_images < self.min_group:
            raise StoreError(f"Expected --min-group of at least 2 and at most the candidates clustered "
                             f"({self.max_images}), but got {self.min_group}. Pass a value in that range.")
        if self.near < 0 or not 0 < self.alpha < 1:
            raise StoreError(f"Expected --near >= 0 and --alpha between 0 and 1, but got {self.near} and "
                             f"{self.alpha}. Pass values in those ranges.")


def discover(layout: StoreLayout, options: DiscoveryOptions = DiscoveryOptions(), *,
             now: datetime | None = None) -> dict:
    """Candidate groups of the window ``[now - since, now]`` (`discover --json`): ``groups``
    (unfamiliar, largest first, each ``group``, ``size``, ``image_ids`` most typical first,
    ``nearest_generator``, ``mean_distance``, the test's ``p_value`` and more),
    ``familiar_groups``, the window and the candidate counts. Each group is saved for
    ``ingest --from-discovery``."""
    now = now or datetime.now(timezone.utc)
    start = now - options.since
    rows = [row for row in prediction_rows(read_predictions(layout, since=start, vectors=True)) if row["at"] <= now]
    latest = {row["image_id"]: row for row in rows if row["embedding"] is not None}  # each image once, last answer
    backbones = Counter(row["embedding_backbone"] for row in latest.values())
    result = {"window": {"from": start.isoformat(), "to": now.isoformat(), "images": len(rows)},
              "options": _shown(options), "groups": [], "familiar_groups": [], "candidates": 0, "unclustered": 0}
    if not backbones:
        return {**result, "reason": "no logged answer in the window has an embedding"}
    backbone_id = backbones.most_common(1)[0][0]
    candidates = [row for row in latest.values() if row["embedding_backbone"] == backbone_id
                  and row["score"] >= row["threshold"] - options.near]
    candidates = sorted(candidates, key=lambda row: row["at"])[-options.max_images:]
    result.update(backbone_id=backbone_id, candidates=len(candidates))
    if len(candidates) < options.min_group:
        return {**result, "unclustered": len(candidates)}
    vectors = np.stack([row["embedding"] for row in candidates]).astype(np.float64)
    labels = _clusters(vectors, options.min_group)
    clusters = sorted(set(labels.tolist()) - {-1})
    spreads = known_fake_spreads(layout, backbone_id) if clusters else {}
    groups = [_group(layout, [row for row, label in zip(candidates, labels) if label == cluster],
                     vectors[labels == cluster], spreads, options.alpha / len(clusters)) for cluster in clusters]
    groups.sort(key=lambda group: (-group["size"], group["group"]))
    first_seen = [group for group in groups if save_group(layout, group) and group["unfamiliar"]]
    if first_seen:
        Catalog(layout).log_event(TRAFFIC_DISCOVERED, {"backbone_id": backbone_id, "groups": [
            {key: group[key] for key in ("group", "size", "nearest_generator", "mean_distance", "p_value",
                                         "kept_uploads")} for group in first_seen]})
    return {**result, "groups": [g for g in groups if g["unfamiliar"]],
            "familiar_groups": [g for g in groups if not g["unfamiliar"]], "unclustered": int((labels == -1).sum())}


def known_fake_spreads(layout: StoreLayout, backbone_id: str, *, sample: int = SPREAD_SAMPLE,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """For each indexed generator, its fakes' distances (1 - cosine) to their nearest other fake
    of the same generator (at most ``sample`` fakes each, drawn at random)."""
    from synthwatch.store.index_inputs import clean_vector_batches
    from synthwatch.store.neighbors import NeighborIndex
    from synthwatch.store.vectors import VectorStore

    try:
        neighbors = NeighborIndex(layout, backbone_id)
    except StoreError as error:
        raise StoreError(f"Expected an index of {backbone_id} to compare groups with the known fakes, but it "
                         f"could not be opened ({error}). Run `synthwatch index`.") from None
    generators = [row[0] for row in neighbors.catalog.query(
        "SELECT DISTINCT generator FROM images WHERE label = 'synthetic' ORDER BY generator")]
    rng, spreads = np.random.default_rng(seed), {}
    for generator in generators:
        fakes = neighbors.allowed_keys("synthetic", generator)
        if len(fakes) < 2:
            continue
        chosen = np.sort(rng.choice(fakes, min(sample, len(fakes)), replace=False))
        distances = []
        for keys, matrix in clean_vector_batches(VectorStore(layout, backbone_id), chosen):
            own = neighbors.ids.ids_of(keys)
            found, _ = neighbors.search(matrix, 2, generator=generator)
            distances += [1.0 - other.score for key, nearest in zip(keys.tolist(), found)
                          for other in [n for n in nearest if n.image_id != own.get(key)][:1]]
        spreads[generator] = np.asarray(distances)
    return spreads


def _clusters(vectors: np.ndarray, min_group: int) -> np.ndarray:
    """HDBSCAN labels of the unit ``vectors`` (-1: in no cluster)."""
    from sklearn.cluster import HDBSCAN

    return HDBSCAN(min_cluster_size=min_group, metric="euclidean", copy=True).fit(vectors).labels_


def _group(layout: StoreLayout, rows: list[dict], vectors: np.ndarray, spreads: dict[str, np.ndarray],
           alpha: float) -> dict:
    """A cluster as `discover` reports it; members ordered most typical (nearest the centre) first."""
    from scipy.stats import mannwhitneyu

    centre = vectors.mean(0)
    order = np.argsort(((vectors - centre) ** 2).sum(1), kind="stable")
    ids = [rows[i]["image_id"] for i in order]
    distances = [row["nearest_fake_distance"] for row in rows if row["nearest_fake_distance"] is not None]
    nearest = Counter(row["nearest_fake_generator"] for row in rows if row["nearest_fake_generator"])
    nearest_generator = nearest.most_common(1)[0][0] if nearest else None
    spread = spreads.get(nearest_generator, np.empty(0))
    p_value = (float(mannwhitneyu(distances, spread, alternative="greater").pvalue)
               if len(distances) and len(spread) else None)
    attributed = Counter(row["attribution"] for row in rows if row["attribution"])
    return {
        "group": group_name(ids), "size": len(rows), "image_ids": ids,
        "nearest_generator": nearest_generator,
        "mean_distance": round(float(np.mean(distances)), 6) if distances else None,
        "generator_spread": round(float(np.median(spread)), 6) if len(spread) else None,
        "p_value": None if p_value is None else round(p_value, 6),
        # No known fake to compare with (no index, or a generator with one fake): unfamiliar.
        "unfamiliar": p_value is None or p_value < alpha,
        "mean_score": round(float(np.mean([row["score"] for row in rows])), 6),
        "flagged": sum(bool(row["synthetic"]) for row in rows),
        "attribution": attributed.most_common(1)[0][0] if attributed else None,
        "first_seen": min(row["at"] for row in rows).isoformat(),
        "last_seen": max(row["at"] for row in rows).isoformat(),
        "sources": dict(Counter(row["source"] or "-" for row in rows).most_common()),
        "kept_uploads": sum(layout.upload_path(image_id).is_file() for image_id in ids),
    }


def _shown(options: DiscoveryOptions) -> dict:
    shown = asdict(options)
    shown["since"] = options.since.total_seconds()
    return shown


def kept_thumbnails(layout: StoreLayout, image_ids: list[str], *, count: int = 8, side: int = 128):
    """``(image_id, JPEG bytes)`` of the first ``count`` of ``image_ids`` whose upload was kept
    (and decodes), for the report."""
    from synthwatch.embeddings.decode import DecodeLimits, ImageRejected, read_image_file
    from synthwatch.embeddings.thumbnails import thumbnail

    limits, shown = DecodeLimits(min_side=1), 0
    for image_id in image_ids:
        if shown == count:
            return
        path = layout.upload_path(image_id)
        if not path.is_file():
            continue
        try:
            jpeg = thumbnail(read_image_file(path, limits), side, limits)
        except (ImageRejected, OSError):
            continue
        shown += 1
        yield image_id, jpeg
