"""Bounded retraining, bounded in what it reads: which images a retrain reads is drawn from the
catalog (ids, generators, splits, arrival times, rows per image: SQL over the catalog and the
shards' id columns, no vector) before any vector is read, so reading, fitting and scoring cost
the same at ten million images as at one.

Training (``balanced-recent-v2``): at most ``max_train`` trainable rows (views below the
robustness views), half real and half synthetic, the synthetic half shared equally by the
generators; a class with fewer rows than its share gives all of them and its leftover goes to the
others (water-filling), so every generator is kept, with at least one image even when its share
is smaller than one image's rows. Within a class images are drawn without replacement with weights
rising linearly with their arrival time, from the class's first arrival to its last, the newest four
times as likely as the oldest (Efraimidis-Spirakis keys ``ln(u) / w``), whole images at a time.

Evaluation (``stable-sample-v1``): validation and test splits each read at most ``max_eval`` rows
(every view of an image counts, robustness views included), shared the same way between real
images and generators, taking in each class the images whose ``u`` is smallest: the sample
changes little as the store grows. A split that fits is read whole.

``u``, uniform in (0, 1) and independent between images, is read from the image id itself: ids are
sha256 digests, so their bits 61-120 (beside the 60 of the index key) are uniform already; they are
XORed with 60 bits of the seed's sha256, so each seed draws its own sample. (A seeded md5 of every
id cost 5.7 s of the draw's 20 at 12.5 M images; this costs 0.2 s.)

Images not drawn are not read at all; the records say how many of how many were.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import pyarrow as pa

from synthwatch.heads.dataset import REAL, ROBUSTNESS_FROM
from synthwatch.store.catalog import Catalog
from synthwatch.store.index import image_key_sql
from synthwatch.store.layout import StoreLayout
from synthwatch.store.training_data import shards_sql

RULE = "balanced-recent-v3"
EVALUATION_RULE = "stable-sample-v2"
DEFAULT_MAX_TRAIN = 200_000  # rows; benchmarks/heads.py --bounded: held-out AUROC flat from 25,000
DEFAULT_MAX_EVAL = 200_000  # rows of each of the validation and test splits
NEWEST_WEIGHT = 4.0  # the newest image of a class is this many times as likely as its oldest
DRAW_MEMORY = "1GB"  # DuckDB's working memory for the draw; more spills to a temporary file


@dataclass(frozen=True)
class ReadPlan:
    """The images a decision reads (``image_id``, ``generator``, ``source``, ``split``), and the
    records of the samples drawn (None where a split is read whole)."""

    images: pa.Table
    training_sample: dict | None
    evaluation_sample: dict | None

    @property
    def reads_everything(self) -> bool:
        return self.training_sample is None and self.evaluation_sample is None


def seed_bits(seed: int) -> int:
    """The 60 bits each image's ``u`` is XORed with under ``seed``."""
    return int(hashlib.sha256(f"replay:{seed}".encode()).hexdigest()[:15], 16)


def water_fill(capacities: list[int], budget: int) -> list[int]:
    """Shares of ``budget`` as equal as the capacities allow: a capacity below its share is filled,
    and what it leaves is shared by the others."""
    shares = [0] * len(capacities)
    left, remaining = budget, len(capacities)
    for i in sorted(range(len(capacities)), key=lambda i: capacities[i]):
        shares[i] = min(capacities[i], left // remaining)
        left -= shares[i]
        remaining -= 1
    return shares


def class_shares(rows: dict[str, int], budget: int) -> dict[str, int]:
    """``{class: rows drawn}`` (``REAL`` and each generator): half the budget to real images and
    half to synthetic ones, the synthetic half shared by the generators, each water-filled."""
    names = sorted(set(rows) - {REAL})
    label_shares = water_fill([rows.get(REAL, 0), sum(rows[name] for name in names)], budget)
    return {REAL: label_shares[0], **dict(zip(names, water_fill([rows[name] for name in names], label_shares[1])))}


def plan_read(layout: StoreLayout, backbone_id: str, *, max_train: int | None, max_eval: int | None,
              seed: int) -> ReadPlan:
    """Draw what a decision of ``backbone_id`` reads within ``max_train`` training rows and
    ``max_eval`` rows of each evaluation split (None: unbounded)."""
    for name, value, default in (("--max-train", max_train, DEFAULT_MAX_TRAIN),
                                 ("--max-eval", max_eval, DEFAULT_MAX_EVAL)):
        if value is not None and value < 1:
            raise ValueError(f"Expected {name} of at least 1 row, but got {value}. Give a positive number "
                             f"(default {default:,}).")
    Catalog(layout).group_splits()  # groups written without a split get theirs first
    with Catalog(layout).connect(read_only=True) as con:
        con.execute(f"SET memory_limit = '{DRAW_MEMORY}'")
        con.execute(f"CREATE TEMP TABLE per_image AS {_per_image_sql(layout, backbone_id)}")
        totals = con.sql("SELECT split, generator, sum(rows)::BIGINT, count(*), epoch(min(arrived)), "
                         "epoch(max(arrived)) FROM per_image GROUP BY ALL").fetchall()
        budgets = {"train": max_train, "val": max_eval, "test": max_eval}
        by_split: dict[str, dict[str, tuple[int, int]]] = {}
        for split, generator, rows, images, *_ in totals:
            by_split.setdefault(split, {})[generator] = (rows, images)
        shares = {}
        for split, classes in by_split.items():
            budget = budgets.get(split)
            rows = {name: counts[0] for name, counts in classes.items()}
            bounded = budget is not None and sum(rows.values()) > budget
            shares.update({(split, name): share for name, share in (class_shares(rows, budget) if bounded
                                                                    else rows).items()})
        images = _draw(con, totals, shares, seed, narrowed=True)
        if images is None:  # a class ran out of candidates before its share: draw from all its images
            images = _draw(con, totals, shares, seed, narrowed=False)
    drawn = _counts(images)
    training = _record(drawn, by_split, "train")
    evaluation = {split: _record(drawn, by_split, split) for split in ("val", "test")}
    training_sample = None if training["rows"] == training["of_rows"] else {
        "rule": RULE, "max_train": max_train, "seed": seed, **training,
        "ids_sha256": _ids_digest(images, "train")}
    evaluation_sample = None if all(e["rows"] == e["of_rows"] for e in evaluation.values()) else {
        "rule": EVALUATION_RULE, "max_eval": max_eval, "seed": seed, **evaluation}
    return ReadPlan(images.select(["image_id", "generator", "source", "split"]), training_sample, evaluation_sample)


def _per_image_sql(layout: StoreLayout, backbone_id: str) -> str:
    """One row per image with vectors: its class, split, arrival and rows (a training image counts
    its trainable rows, an evaluation image all of them). The shards' rows are counted per index key
    before they meet the catalog, so the join's table holds integers, not ids: it stays in memory
    where a join on ids spilled to disk (15 s against 6 s at 12.5 M vectors). Two images sharing a key
    (refused by the index) would share their counts; reading matches exact ids."""
    return (f"WITH counted AS (SELECT {image_key_sql('image_id')} AS key, "
            f"count(*) FILTER (WHERE view < {ROBUSTNESS_FROM}) AS trainable, count(*) AS every_view "
            f"FROM {shards_sql(layout, backbone_id)} GROUP BY key) "
            f"SELECT i.image_id, coalesce(i.generator, '') AS generator, i.source, s.split, i.ingested_at AS arrived, "
            f"CASE WHEN s.split = 'train' THEN c.trainable ELSE c.every_view END AS rows "
            f"FROM images i JOIN splits s ON s.source = i.source JOIN counted c ON c.key = {image_key_sql('i.image_id')} "
            f"WHERE rows > 0")


# Each class's images in key order, kept while their rows fit its share (the first always):
# training keys lean to recent arrivals (weights rising linearly with arrival time from the class's
# first to its last), evaluation keys are the smallest seeded hashes. Only candidates above a
# class's floor are sorted: all images whose key can reach the share (see ``_floor``).
_DRAW_SQL = """
WITH keyed AS (
    SELECT p.image_id, p.generator, p.source, p.split, p.rows, q.share, q.floor, CASE WHEN p.split = 'train'
        THEN ln(p.u) / (1.0 + $weight * CASE WHEN q.t1 > q.t0 THEN (epoch(p.arrived) - q.t0) / (q.t1 - q.t0)
                                             ELSE 0 END)
        ELSE -p.u END AS key
    FROM (SELECT *, (xor(('0x' || substr(image_id, 16, 15))::BIGINT, $mix)::DOUBLE + 0.5)
                    / 1152921504606846976.0 AS u FROM per_image) p
    JOIN shares q USING (split, generator)
), placed AS (
    SELECT image_id, generator, source, split, rows, share, sum(rows) OVER w AS cumulative, row_number() OVER w AS place,
           count(*) OVER (PARTITION BY split, generator) AS candidates
    FROM keyed WHERE key > floor
    WINDOW w AS (PARTITION BY split, generator ORDER BY key DESC, image_id ROWS UNBOUNDED PRECEDING)
)
SELECT image_id, generator, source, split, rows, candidates, cumulative FROM placed
WHERE place = 1 OR cumulative <= share ORDER BY image_id
"""


def _floor(split: str, share: int, rows: int, images: int) -> float:
    """The key below which no image of a class can be drawn, with room to spare: candidates are
    expected to hold about twice the share (plus 50 images). Exact either way: when a class's
    candidates run out before its share, the draw is redone without floors."""
    if share >= rows:
        return -1e308
    wanted = min(1.0, (2 * share * images / max(rows, 1) + 50) / images)
    if wanted >= 1.0:
        return -1e308
    return -wanted if split != "train" else math.log1p(-wanted)  # P(ln(u) / w > floor) >= wanted for w >= 1


_SHARES_SCHEMA = pa.schema([("split", pa.string()), ("generator", pa.string()), ("share", pa.int64()),
                            ("t0", pa.float64()), ("t1", pa.float64()), ("floor", pa.float64())])


def _draw(con, totals: list[tuple], shares: dict, seed: int, *, narrowed: bool) -> pa.Table | None:
    """The drawn images, or None when ``narrowed`` floors left a class short of candidates."""
    rows_of = {(split, generator): rows for split, generator, rows, *_ in totals}
    con.register("shares", pa.Table.from_pylist([
        {"split": split, "generator": generator, "share": shares[split, generator], "t0": t0, "t1": t1,
         "floor": _floor(split, shares[split, generator], rows, images) if narrowed else -1e308}
        for split, generator, rows, images, t0, t1 in totals], _SHARES_SCHEMA))
    images = con.sql(_DRAW_SQL, params={"mix": seed_bits(seed), "weight": NEWEST_WEIGHT - 1.0}).to_arrow_table()
    if narrowed:
        drawn = images.group_by(["split", "generator"]).aggregate([("rows", "sum"), ("rows", "count"),
                                                                   ("candidates", "max")])
        for split, generator, rows, count, candidates in zip(*(drawn.column(c).to_pylist() for c in (
                "split", "generator", "rows_sum", "rows_count", "candidates_max"))):
            short = rows < min(shares[split, generator], rows_of[split, generator])
            if short and count == candidates:  # every candidate taken, and still short of the share
                return None
    return images.select(["image_id", "generator", "source", "split", "rows"])


def _counts(images: pa.Table) -> dict[tuple[str, str], tuple[int, int]]:
    grouped = images.group_by(["split", "generator"]).aggregate([("rows", "sum"), ("rows", "count")])
    return {(s, g): (rows, count) for s, g, rows, count in zip(
        grouped.column("split").to_pylist(), grouped.column("generator").to_pylist(),
        grouped.column("rows_sum").to_pylist(), grouped.column("rows_count").to_pylist())}


def _record(drawn: dict, by_split: dict, split: str) -> dict:
    classes = by_split.get(split, {})
    per_class = {("real" if name == REAL else name): {"images": drawn.get((split, name), (0, 0))[1],
                                                      "rows": drawn.get((split, name), (0, 0))[0], "of_images": images}
                 for name, (_, images) in sorted(classes.items())}
    return {"images": sum(c["images"] for c in per_class.values()), "rows": sum(c["rows"] for c in per_class.values()),
            "of_images": sum(images for _, images in classes.values()),
            "of_rows": sum(rows for rows, _ in classes.values()), "per_class": per_class}


def _ids_digest(images: pa.Table, split: str) -> str:
    ids = [i for i, s in zip(images.column("image_id").to_pylist(), images.column("split").to_pylist()) if s == split]
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
