"""Source groups' train / validation / test splits, stored in the catalog's ``splits`` table.

Images are split by group (their ``source``: the photo, shoot or site they came from), never one
by one, so near-identical pictures of one group cannot sit on both sides of a split. A group's
split is assigned once, in the transaction that commits its first image, with the store's split
seed (recorded on the row), and never changes as the store grows: a group the champion was
tested on stays a test group for every later candidate.

The rule (:func:`assign_splits`): a seeded hash of the group's name picks a split by the
fractions (60 / 20 / 20); with three groups or more, an empty split takes a group of the ones
arriving in the same batch (never an older one), so a first ingest of three groups fills all
three splits.

A dataset that ships its own split (GenImage's ``train/`` and ``val/``, ForenSynths' ``train/``,
``val/`` and ``test/``) keeps it, recorded with origin ``dataset`` (:func:`shipped_split`): its
test folders are tested on and its training folders trained on, as the papers did. Where a
dataset ships no validation split (GenImage), a seeded fifth of its training groups validates
(``TRAIN_WITH_VALIDATION``), since thresholds are set on validation real images.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import duckdb
import numpy as np

from synthwatch.store.layout import StoreLayout
from synthwatch.store.schema import utc_now

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
DEFAULT_SPLIT_SEED = 0
TRAIN_WITH_VALIDATION = "train+val"  # a dataset's training folder, a seeded fifth of whose groups validate
SHIPPED = (*SPLITS, TRAIN_WITH_VALIDATION)
VALIDATION_SHARE = 0.2


def assign_splits(groups: Iterable[str], *, seed: int = DEFAULT_SPLIT_SEED, existing: Mapping[str, str] | None = None,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, str]:
    """``{group: split}`` for ``existing`` (never changed) and each new one of ``groups``.

    A new group's split comes from a seeded hash of its name; then, with three groups or more,
    while a split is empty, the new group with the highest hash in the fullest split that has
    new groups moves into it.
    """
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"Expected three positive split fractions summing to 1, but got {fractions}.")
    chosen = dict(existing or {})
    position = {group: _unit_hash(seed, group) for group in groups if group not in chosen}
    bounds = np.cumsum(fractions)
    for group, u in position.items():
        chosen[group] = SPLITS[min(int(np.searchsorted(bounds, u, side="right")), len(SPLITS) - 1)]
    if len(chosen) >= 3:
        for empty in [split for split in ("test", "val", "train") if split not in chosen.values()]:
            members = {split: [g for g in chosen if chosen[g] == split] for split in SPLITS}
            movable = [split for split in SPLITS if any(g in position for g in members[split])]
            if not movable:
                break
            fullest = max(movable, key=lambda split: (len(members[split]), split == "train"))
            chosen[max((g for g in members[fullest] if g in position), key=lambda g: position[g])] = empty
    return chosen


def _unit_hash(seed: int, group: str) -> float:
    digest = hashlib.sha256(f"{seed}\0{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_seed(con: duckdb.DuckDBPyConnection) -> int:
    """The seed new groups are assigned with (meta ``split_seed``; 0 unless a migration kept another)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'split_seed'").fetchone()
    return int(row[0]) if row else DEFAULT_SPLIT_SEED


def shipped_split(group: str, shipped: str, *, seed: int) -> str:
    """The stored split of a group whose dataset ships it in ``shipped`` (one of ``SHIPPED``)."""
    if shipped not in SHIPPED:
        raise ValueError(f"Expected a shipped split in {', '.join(SHIPPED)}, but got {shipped!r}.")
    if shipped == TRAIN_WITH_VALIDATION:
        return "val" if _unit_hash(seed, group) < VALIDATION_SHARE else "train"
    return shipped


def assign_new_groups(con: duckdb.DuckDBPyConnection, *, shipped: Mapping[str, str] | None = None) -> int:
    """Give every source group of ``images`` without a split its split, inside the caller's
    transaction; ``shipped`` maps groups to the split their dataset ships them in (kept, origin
    ``dataset``). Returns how many were assigned."""
    new = [row[0] for row in con.execute(
        "SELECT DISTINCT source FROM images WHERE source NOT IN (SELECT source FROM splits) ORDER BY source").fetchall()]
    if not new:
        return 0
    seed = split_seed(con)
    shipped = {group: split for group, split in (shipped or {}).items() if group in set(new)}
    kept = {group: shipped_split(group, split, seed=seed) for group, split in shipped.items()}
    _validate_some_reals(con, kept, [g for g, split in shipped.items() if split == TRAIN_WITH_VALIDATION], seed)
    existing = {**dict(con.execute("SELECT source, split FROM splits").fetchall()), **kept}
    chosen = {**assign_splits([g for g in new if g not in shipped], seed=seed, existing=existing), **kept}
    now = utc_now()
    con.executemany("INSERT INTO splits (source, split, seed, assigned_at, origin) VALUES (?, ?, ?, ?, ?)",
                    [[group, chosen[group], seed, now, "dataset" if group in shipped else "hash"] for group in new])
    return len(new)


def _validate_some_reals(con: duckdb.DuckDBPyConnection, kept: dict[str, str], candidates: list[str], seed: int) -> None:
    """When a dataset's training folder brings two or more groups of real images and its seeded
    fifth validates none of them, the one with the lowest hash validates (thresholds need
    validation real images)."""
    if not candidates:
        return
    real = {row[0] for row in con.execute("SELECT DISTINCT source FROM images WHERE label = 'real'").fetchall()}
    groups = sorted((g for g in candidates if g in real), key=lambda g: _unit_hash(seed, g))
    if len(groups) >= 2 and not any(kept[g] == "val" for g in groups):
        kept[groups[0]] = "val"


def adopt_legacy_splits(con: duckdb.DuckDBPyConnection, layout: StoreLayout) -> None:
    """Store the splits a store from before stored splits was using: those its champion was
    trained and tested on (then recomputed over all groups at once, which is what
    :func:`assign_splits` does with no ``existing``, with the champion's seed; its training groups
    kept in training); without a champion, seed 0. Later groups use the same seed."""
    from synthwatch.store.registry import HeadRegistry

    registry = HeadRegistry(layout)
    champion = registry.champion()
    record = registry.record(champion) if champion else {}
    seed = int(record.get("split_seed", DEFAULT_SPLIT_SEED))
    groups = [row[0] for row in con.execute("SELECT DISTINCT source FROM images ORDER BY source").fetchall()]
    chosen = assign_splits(groups, seed=seed)
    chosen.update({group: "train" for group in record.get("train_groups", []) if group in chosen})
    now = utc_now()
    con.execute("DELETE FROM splits")
    if groups:
        con.executemany("INSERT INTO splits (source, split, seed, assigned_at) VALUES (?, ?, ?, ?)",
                        [[g, chosen[g], seed, now] for g in groups])
    con.execute("INSERT OR REPLACE INTO meta VALUES ('split_seed', ?)", [str(seed)])
