"""Unknown-generator discovery: groups of recent traffic that look synthetic but like no known
generator, for a person to name and ingest (`synthwatch discover`).

1. Candidates: the window's images not in the catalog (each once, its last answer) scored at
   least ``threshold - near``: flagged, or just under the line.
2. They are clustered with HDBSCAN on their logged embeddings (unit vectors), together with a
   sample of the indexed known fakes as anchors, so that a new generator's images stand apart
   as a cluster even when nothing else in the window is suspicious. A cluster holding at least
   ``min_group`` candidates is a group (its anchors are not members). Candidates of no cluster
   are counted, not listed.
3. A group is unfamiliar when its images lie farther from the fakes of the generator they are
   nearest to than that generator's own fakes do: the generator's indexed fakes are split at
   random into a reference half and a held-out half, and the members' distances to the nearest
   reference fake are tested against the held-out fakes' (one-sided Mann-Whitney U test,
   Bonferroni over the groups at ``alpha``). New images of a known generator sit as close to its
   reference as its held-out fakes do; a new generator's sit farther, even when it resembles a
   known one. Without an index nothing can be compared:
   groups are listed untested (``unfamiliar`` None) and the answer says why.

``groups`` lists the unfamiliar (and untested) groups, ``familiar_groups`` the others. A group
keeps its name while it keeps most of its members (``store.discoveries``) and is kept for
``ingest --from-discovery``; an unfamiliar group found for the first time is logged as a
``synthwatch.traffic.discovered`` event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from synthwatch.store.catalog import TRAFFIC_DISCOVERED, Catalog
from synthwatch.store.discoveries import name_groups, prune_groups, save_group
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.predictions import most_common_backbone, prediction_rows, read_predictions

HELD_OUT = 500  # fakes of a generator whose distance to its reference half is its spread
REFERENCE_MAX = 5000  # fakes of a generator the groups and the held-out ones are measured against
PERMUTATIONS = 2000  # of the novelty test: its smallest p-value is 1/2001
ANCHORS = 1000  # indexed known fakes clustered with the candidates


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


class KnownFakes:
    """The indexed fakes of one backbone: how far images lie from the nearest of them, a sample of
    them as clustering anchors, and each generator's reference and held-out halves. The sampled
    vectors are read in one pass over the vector shards, on first use."""

    def __init__(self, layout: StoreLayout, backbone_id: str, *, seed: int = 0) -> None:
        from synthwatch.store.neighbors import NeighborIndex

        self.layout, self.backbone_id, self.seed = layout, backbone_id, seed
        self.neighbors = NeighborIndex(layout, backbone_id)
        self._anchors: np.ndarray | None = None
        self._references: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def nearest(self, vectors: np.ndarray) -> tuple[list[float | None], list[str | None]]:
        """Each vector's distance (1 - cosine) to its nearest indexed fake, and that fake's generator."""
        found, _ = self.neighbors.search(np.asarray(vectors, np.float32), 1, label="synthetic")
        return ([1.0 - f[0].score if f else None for f in found], [f[0].generator if f else None for f in found])

    def anchors(self) -> np.ndarray:
        """The clean vectors of (at most ``ANCHORS``) indexed fakes, drawn at random."""
        self._sample()
        return self._anchors

    def reference(self, generator: str) -> tuple[np.ndarray, np.ndarray]:
        """``(reference, spread)`` of ``generator``: a random half of its indexed fakes (their
        clean vectors), and the distances of the other half to their nearest fake in it (see
        :func:`split_reference`); empty for a generator with fewer than two fakes."""
        self._sample()
        return self._references.get(generator, (np.empty((0, 0)), np.empty(0)))

    def _sample(self) -> None:
        """Draw the anchors and every generator's fakes, and read their vectors in one pass."""
        from synthwatch.store.index_inputs import clean_vector_batches
        from synthwatch.store.vectors import VectorStore

        if self._anchors is not None:
            return
        generators = sorted(set().union(*self.neighbors.catalog.generators_by_group().values()) - {""})
        drawn: dict[str | None, tuple[np.ndarray, np.random.Generator]] = {}
        for generator, count in [(None, ANCHORS)] + [(g, REFERENCE_MAX + HELD_OUT) for g in generators]:
            fakes, rng = self.neighbors.allowed_keys("synthetic", generator), np.random.default_rng(self.seed)
            if len(fakes) >= (1 if generator is None else 2):
                drawn[generator] = np.sort(rng.choice(fakes, min(count, len(fakes)), replace=False)), rng
        parts: dict[str | None, list[np.ndarray]] = {generator: [] for generator in drawn}
        wanted = np.concatenate([keys for keys, _ in drawn.values()]) if drawn else np.empty(0, np.int64)
        for keys, matrix in clean_vector_batches(VectorStore(self.layout, self.backbone_id), wanted):
            for generator, (chosen, _) in drawn.items():
                parts[generator].append(matrix[np.isin(keys, chosen)])
        anchors = parts.pop(None, [])
        self._anchors = np.vstack(anchors) if anchors else np.empty((0, 0))
        for generator, matrices in parts.items():
            if not matrices:
                continue
            reference, held = split_reference(np.vstack(matrices), drawn[generator][1])
            self._references[generator] = reference, 1.0 - (held @ reference.T).max(1)


def discover(layout: StoreLayout, options: DiscoveryOptions = DiscoveryOptions(), *,
             now: datetime | None = None, rows: list[dict] | None = None) -> dict:
    """Candidate groups of the window ``[now - since, now]`` (`discover --json`): ``groups``
    (unfamiliar, largest first, each ``group``, ``size``, ``image_ids`` most typical first,
    ``nearest_generator``, ``mean_distance``, the test's ``p_value`` and more),
    ``familiar_groups``, the window and the candidate counts. Each group is saved for
    ``ingest --from-discovery``. ``rows``: the prediction log's, when already read."""
    now = now or datetime.now(timezone.utc)
    start = now - options.since
    if rows is None:
        rows = prediction_rows(read_predictions(layout, since=start, vectors=True))
    rows = [row for row in rows if start <= row["at"] <= now]
    result = {"window": {"from": start.isoformat(), "to": now.isoformat(), "images": len(rows)},
              "options": _shown(options), "groups": [], "familiar_groups": [], "candidates": 0, "unclustered": 0}
    backbone_id = most_common_backbone(rows)
    if backbone_id is None:
        return {**result, "reason": "no logged answer in the window has an embedding"}
    first_seen, latest = {}, {}
    for row in rows:
        if row["embedding"] is not None and row["embedding_backbone"] == backbone_id:
            first_seen.setdefault(row["image_id"], row["at"])
            latest[row["image_id"]] = row  # each image once, its last answer
    known = Catalog(layout).lookup(list(latest)) if layout.exists() else {}
    candidates = sorted((row for image_id, row in latest.items() if image_id not in known
                         and row["score"] >= row["threshold"] - options.near), key=lambda row: row["at"])
    candidates = candidates[-options.max_images:]
    result.update(backbone_id=backbone_id, candidates=len(candidates), already_ingested=len(known))
    try:
        fakes = KnownFakes(layout, backbone_id)
    except StoreError as error:
        fakes, result["reason"] = None, (f"groups are not compared with known fakes: {error}")
    if len(candidates) < options.min_group:
        return {**result, "unclustered": len(candidates)}
    vectors = np.stack([row["embedding"] for row in candidates]).astype(np.float64)
    anchors = fakes.anchors() if fakes is not None else np.empty((0, 0))
    labels = _clusters(np.vstack([vectors, anchors]) if len(anchors) else vectors, options.min_group)[:len(vectors)]
    clusters = [c for c, n in Counter(labels.tolist()).items() if c >= 0 and n >= options.min_group]
    members = [[row for row, label in zip(candidates, labels) if label == cluster] for cluster in clusters]
    groups = [_group(layout, rows_of, vectors[labels == cluster], fakes, options.alpha / len(clusters), first_seen)
              for cluster, rows_of in zip(clusters, members)]
    new = set()
    for group, (name, first) in zip(groups, name_groups(layout, [g["image_ids"] for g in groups])):
        group["group"] = name
        if first and group["unfamiliar"]:
            new.add(name)
    groups.sort(key=lambda group: (-group["size"], group["group"]))
    for group in groups:
        save_group(layout, group)
    prune_groups(layout)
    if new:
        Catalog(layout).log_event(TRAFFIC_DISCOVERED, {"backbone_id": backbone_id, "groups": [
            {key: group[key] for key in ("group", "size", "nearest_generator", "mean_distance", "p_value",
                                         "kept_uploads")} for group in groups if group["group"] in new]})
    grouped = sum(group["size"] for group in groups)
    return {**result, "groups": [g for g in groups if g["unfamiliar"] is not False],
            "familiar_groups": [g for g in groups if g["unfamiliar"] is False], "unclustered": len(candidates) - grouped}


def _clusters(vectors: np.ndarray, min_group: int) -> np.ndarray:
    """HDBSCAN labels of the unit ``vectors`` (-1: in no cluster)."""
    from sklearn.cluster import HDBSCAN

    if len(vectors) < min_group:
        return np.full(len(vectors), -1)
    return HDBSCAN(min_cluster_size=min_group, metric="euclidean", copy=True).fit(vectors).labels_


def split_reference(vectors: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A generator's fakes split at random into ``(reference, held out)``: at most ``REFERENCE_MAX``
    and ``HELD_OUT``. A group of its new images and its held-out fakes are then measured against
    the same reference, which neither is part of: if the group is of that generator, both are
    independent draws of one distribution, and the test's p-value is exact. (Measuring stored
    fakes against each other instead repeats values, for pairs nearest to each other, and the
    test called known generators' groups unfamiliar 4 % of the time at alpha 0.01.)"""
    order = rng.permutation(len(vectors))
    half = len(vectors) // 2
    return vectors[order[half:][:REFERENCE_MAX]], vectors[order[:half][:HELD_OUT]]


def unfamiliar_p_value(strata: list[tuple[np.ndarray, np.ndarray]], *, permutations: int = PERMUTATIONS,
                       seed: int = 0) -> float | None:
    """How unlikely a group's distances are if its images are fakes of the known generators they
    are nearest to. ``strata``: per generator, ``(distances of the members nearest it to its
    reference, its held-out fakes' distances to it)`` (see :func:`split_reference`). The
    statistic is the members' summed rank within their stratum; its p-value comes from
    ``permutations`` relabellings within each stratum (counting the observed one): exact however
    the group mixes generators. None when no stratum has both members and held-out fakes."""
    from scipy.stats import rankdata

    strata = [(np.asarray(ours), np.asarray(theirs)) for ours, theirs in strata if len(ours) and len(theirs)]
    if not strata:
        return None
    rng = np.random.default_rng(seed)
    observed, relabelled = 0.0, np.zeros(permutations)
    for ours, theirs in strata:
        ranks = rankdata(np.concatenate([ours, theirs])) / (len(ours) + len(theirs))
        observed += ranks[:len(ours)].sum()
        drawn = rng.permuted(np.tile(np.arange(len(ranks)), (permutations, 1)), axis=1)[:, :len(ours)]
        relabelled += ranks[drawn].sum(1)
    return (1 + int((relabelled >= observed - 1e-9).sum())) / (permutations + 1)


def _group(layout: StoreLayout, rows: list[dict], vectors: np.ndarray, fakes: KnownFakes | None, alpha: float,
           first_seen: dict) -> dict:
    """A cluster as `discover` reports it; members ordered most typical (nearest the centre) first."""
    centre = vectors.mean(0)
    order = np.argsort(((vectors - centre) ** 2).sum(1), kind="stable")
    ids = [rows[i]["image_id"] for i in order]
    distances, nearest_generator, spread, against, p_value = [], None, np.empty(0), [], None
    if fakes is not None:
        found, generators = fakes.nearest(vectors)
        distances = [d for d in found if d is not None]
        counted = Counter(g for g in generators if g)
        nearest_generator = counted.most_common(1)[0][0] if counted else None
        strata = []
        for generator in counted:  # each member against the reference of the generator it is nearest to
            reference, held_out = fakes.reference(generator)
            if len(reference):
                mine = np.asarray([g == generator for g in generators])
                ours = 1.0 - (vectors[mine] @ reference.T).max(1)
                strata.append((ours, held_out))
                against += ours.tolist()
        p_value = unfamiliar_p_value(strata)
        spread = fakes.reference(nearest_generator)[1] if nearest_generator else spread
    attributed = Counter(row["attribution"] for row in rows if row["attribution"])
    return {
        "group": None, "size": len(rows), "image_ids": ids,
        "nearest_generator": nearest_generator,
        "mean_distance": round(float(np.mean(distances)), 6) if distances else None,
        "reference_distance": round(float(np.median(against)), 6) if len(against) else None,
        "generator_spread": round(float(np.median(spread)), 6) if len(spread) else None,
        "p_value": None if p_value is None else round(p_value, 6),
        # None: untested (no index, or a nearest generator with a single indexed fake)
        "unfamiliar": None if p_value is None else p_value < alpha,
        "mean_score": round(float(np.mean([row["score"] for row in rows])), 6),
        "flagged": sum(bool(row["synthetic"]) for row in rows),
        "attribution": attributed.most_common(1)[0][0] if attributed else None,
        "first_seen": min(first_seen[image_id] for image_id in ids).isoformat(),
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
