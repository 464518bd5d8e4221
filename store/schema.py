"""The catalog's tables and schema version (migrations: ``Catalog.create``), and its clock."""

from __future__ import annotations

from datetime import datetime, timezone

SCHEMA_VERSION = 3  # 2: source groups' splits are stored (``splits``), never recomputed; 3: and their origin

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    image_id VARCHAR PRIMARY KEY,
    label VARCHAR NOT NULL CHECK (label IN ('real', 'synthetic')),
    generator VARCHAR,
    source VARCHAR NOT NULL,
    original_path VARCHAR NOT NULL,
    stored BOOLEAN NOT NULL,
    size_bytes BIGINT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format VARCHAR NOT NULL,
    mode VARCHAR NOT NULL,
    frames INTEGER NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    CHECK ((label = 'real') = (generator IS NULL))
);
CREATE TABLE IF NOT EXISTS generators (
    name VARCHAR PRIMARY KEY,
    first_seen TIMESTAMP NOT NULL,
    image_count BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    path VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    kind VARCHAR NOT NULL CHECK (kind IN ('rejected', 'conflict')),
    image_id VARCHAR,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (path, reason)
);
CREATE TABLE IF NOT EXISTS events (
    event_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    forwarded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS watched_sources (
    uri VARCHAR PRIMARY KEY,
    label VARCHAR,
    generator VARCHAR,
    source VARCHAR,
    cron VARCHAR,
    every_s BIGINT,
    added_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    command VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status VARCHAR NOT NULL,
    summary VARCHAR
);
CREATE TABLE IF NOT EXISTS splits (
    source VARCHAR PRIMARY KEY,
    split VARCHAR NOT NULL CHECK (split IN ('train', 'val', 'test')),
    seed BIGINT NOT NULL,
    assigned_at TIMESTAMP NOT NULL,
    origin VARCHAR DEFAULT 'hash'  -- 'hash': the store's seeded rule; 'dataset': the split the dataset ships
);
"""


def utc_now() -> datetime:
    """Naive UTC timestamp, as the catalog stores them."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
