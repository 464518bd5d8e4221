"""Watched sources: the folders, manifests and object-store prefixes where new images land, and
how often to look at them (a cron expression or an interval)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from synthwatch.store.catalog import Catalog, utc_now
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.candidates import MANIFEST_SUFFIXES, check_label

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WatchedSource:
    """One place to ingest from on every cycle."""

    uri: str
    label: str | None = None
    generator: str | None = None
    source: str | None = None
    cron: str | None = None
    every_s: int | None = None

    @property
    def kind(self) -> str:
        if is_uri(self.uri):
            return "prefix"
        return "manifest" if Path(self.uri).suffix.lower() in MANIFEST_SUFFIXES else "folder"

    def as_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind}


def is_uri(text: str) -> bool:
    """Whether ``text`` names an object-store location (``s3://``, ``gs://``, ``file://``...)."""
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text) is not None


def parse_duration(text: str) -> int:
    """Seconds in ``30s``, ``15m``, ``6h`` or ``1d``."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise StoreError(f"Expected a duration such as 30s, 15m, 6h or 1d, but got {text!r}.")
    return int(match.group(1)) * _UNITS[match.group(2)]


_CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
                ("month", 1, 12, {m: i + 1 for i, m in enumerate(
                    "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
                ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}))


def check_cron(text: str) -> str:
    """A five-field cron expression with every value in its field's range (checked here, not at
    ``deploy``): numbers, names of months and days, ``*``, ``?``, lists, ranges and steps."""
    fields = text.split()
    if len(fields) != 5:
        raise StoreError(f"Expected a cron expression of five fields such as '0 * * * *', but got {text!r}.")
    for field, (name, low, high, names) in zip(fields, _CRON_FIELDS):
        for part in field.split(","):
            problem = _cron_part_problem(part.lower(), low, high, names)
            if problem:
                raise StoreError(f"Expected a cron expression such as '0 * * * *', but the {name} field of "
                                 f"{text!r} has {part!r}: {problem}.")
    return " ".join(fields)


def _cron_part_problem(part: str, low: int, high: int, names: dict) -> str | None:
    span, _, step = part.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return "a step must be a positive number"
    if span in ("*", "?"):
        return None
    ends = span.split("-")
    if len(ends) > 2 or not all(ends):
        return "expected a value or a range A-B"
    values = []
    for end in ends:
        if end in names:
            values.append(names[end])
        elif end.isdigit():
            values.append(int(end))
        else:
            return f"{end!r} is not a number" + (" or a name" if names else "")
    if not all(low <= value <= high for value in values):
        return f"values go from {low} to {high}"
    if len(values) == 2 and values[0] > values[1]:
        return "a range must go upwards"
    return None


def add_source(layout: StoreLayout, location: str, *, label: str | None = None, generator: str | None = None,
               source: str | None = None, cron: str | None = None, every: str | None = None) -> WatchedSource:
    """Register (or update) a watched source, checking that it can be read."""
    if cron and every:
        raise StoreError("Expected --schedule CRON or --every DURATION, but got both. Pick one.")
    if label is not None:
        try:
            label, generator = check_label(label, generator)
        except ValueError as error:
            raise StoreError(f"Expected --label real, or --label synthetic with --generator NAME, but {error}.") from None
    if is_uri(location):
        from synthwatch.store.remote import open_prefix

        open_prefix(location)  # raises StoreError naming the URI if it cannot be opened
        uri = location.rstrip("/")
    else:
        path = Path(location).expanduser()
        if not path.exists():
            raise StoreError(f"Expected an existing folder or manifest to watch, but {path} does not exist.")
        uri = str(path.resolve())
    watched = WatchedSource(uri, label, generator, source, check_cron(cron) if cron else None,
                            parse_duration(every) if every else None)
    catalog = Catalog(layout)
    catalog.create()
    with catalog.transaction() as con:
        con.execute("INSERT OR REPLACE INTO watched_sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [watched.uri, label, generator, source, watched.cron, watched.every_s, utc_now()])
    return watched


def remove_source(layout: StoreLayout, location: str) -> bool:
    """Stop watching ``location`` (named as it was added: a relative path is resolved the same way)."""
    uri = location.rstrip("/") if is_uri(location) else str(Path(location).expanduser().resolve())
    with Catalog(layout).transaction() as con:
        return bool(con.execute("DELETE FROM watched_sources WHERE uri = ? RETURNING uri", [uri]).fetchall())


def list_sources(layout: StoreLayout) -> list[WatchedSource]:
    if not layout.exists():
        return []
    try:
        rows = Catalog(layout).query(
            "SELECT uri, label, generator, source, cron, every_s FROM watched_sources ORDER BY added_at, uri")
    except duckdb.CatalogException:  # a store made before watched sources existed: none are watched
        return []
    return [WatchedSource(*row) for row in rows]


def ingest_watched(layout: StoreLayout, watched: WatchedSource, options=None) -> dict:
    """Ingest what is new in one watched source; returns the ingest report (as a dict) and where
    it looked. Object-store prefixes are staged first and only new objects are downloaded."""
    from dataclasses import replace

    from synthwatch.store.ingest import IngestOptions, ingest
    from synthwatch.store.sources import plan_sources

    options = options or IngestOptions()
    if watched.kind != "prefix":
        plan = plan_sources([watched.uri], label=watched.label, generator=watched.generator, source=watched.source)
        return {"source": watched.uri, **ingest(layout, plan, options).as_dict()}
    from synthwatch.store.remote import commit_staged, stage

    folder, staged, counts = stage(layout, watched.uri, limits=options.limits)
    index = counts.pop("index")
    if not staged:
        commit_staged(folder, index, staged)
        return {"source": watched.uri, "ingested": 0, "duplicates": 0, "rejected": 0, "conflicts": 0,
                "skipped": 0, "new_generators": [], "remote": counts}
    plan = plan_sources([folder], label=watched.label, generator=watched.generator, source=watched.source)
    plan.candidates = [replace(c, origin=staged.get(str(c.path))) for c in plan.candidates
                       if str(c.path) in staged]
    report = ingest(layout, plan, replace(options, copy=True)).as_dict()
    commit_staged(folder, index, staged)
    return {"source": watched.uri, **report, "remote": counts}
