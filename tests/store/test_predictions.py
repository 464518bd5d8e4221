"""The prediction log: batches written atomically as Parquet, read back exactly (also with plain
DuckDB), kept within its byte budget, safe under concurrent writers."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from synthwatch.store.layout import StoreLayout
from synthwatch.store.predictions import PeriodicFlush, PredictionLog, log_files, read_predictions


def _row(number: int, **overrides) -> dict:
    return {"image_id": f"{number:064x}", "score": number / 1000, "synthetic": number % 2 == 0, "threshold": 0.5,
            "head_version": "h1", "backbone_id": "b1", "attribution": "gen-a", "attribution_probability": 0.9,
            "nearest_fake_distance": 0.25, "nearest_fake_generator": "gen-a", "source": "test", "channel": "http",
            **overrides}


def test_rows_are_written_in_batches_and_read_back_exactly(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    log = PredictionLog(layout, batch_rows=10)
    log.append([_row(n) for n in range(9)])
    assert log_files(layout.predictions_dir) == []  # a batch waits until it is full, or flushed
    log.append([_row(9)])
    assert len(log_files(layout.predictions_dir)) == 1
    log.append([_row(10)])
    log.flush()
    table = read_predictions(layout)
    assert table.column("image_id").to_pylist() == [f"{n:064x}" for n in range(11)]
    assert table.column("score").to_pylist() == [n / 1000 for n in range(11)]
    query = f"SELECT count(*), sum(synthetic::INT) FROM read_parquet('{layout.predictions_dir}/*.parquet')"
    assert duckdb.connect().execute(query).fetchall() == [(11, 6)]  # plain DuckDB reads it


def test_since_keeps_only_recent_rows(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    log = PredictionLog(layout)
    old = datetime.now(timezone.utc) - timedelta(days=2)
    log.append([_row(1, at=old), _row(2)])
    log.flush()
    recent = read_predictions(layout, since=datetime.now(timezone.utc) - timedelta(hours=1))
    assert recent.column("image_id").to_pylist() == [f"{2:064x}"]


def test_the_log_keeps_to_its_budget_by_dropping_the_oldest_files(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    log = PredictionLog(layout, batch_rows=50)
    log.append([_row(n) for n in range(50)])
    one_file = log_files(layout.predictions_dir)[0].stat().st_size
    log.max_bytes = 3 * one_file
    for batch in range(1, 8):
        log.append([_row(50 * batch + n) for n in range(50)])
    files = log_files(layout.predictions_dir)
    assert sum(path.stat().st_size for path in files) <= 3 * one_file + one_file // 4 and 2 <= len(files) <= 3
    kept = read_predictions(layout).column("image_id").to_pylist()
    assert kept[-1] == f"{399:064x}" and f"{0:064x}" not in kept  # the newest kept, the oldest gone


def test_threads_writing_at_once_lose_nothing(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    logs = [PredictionLog(layout, batch_rows=7) for _ in range(2)]  # two writers, as two service processes

    def write(log, offset):
        for n in range(100):
            log.append([_row(offset + n)])

    threads = [threading.Thread(target=write, args=(logs[i % 2], 1000 * i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.flush()
    ids = read_predictions(layout).column("image_id").to_pylist()
    assert sorted(ids) == sorted(f"{1000 * i + n:064x}" for i in range(4) for n in range(100))


def test_a_periodic_flush_writes_what_a_quiet_service_answered(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    log = PredictionLog(layout, batch_rows=1000)
    flusher = PeriodicFlush(log, interval_s=0.05).start()
    log.append([_row(1)])
    try:
        while not log_files(layout.predictions_dir):  # pytest-timeout bounds this wait
            threading.Event().wait(0.02)
    finally:
        flusher.stop()
    log.append([_row(2)])
    assert read_predictions(layout).num_rows == 1  # stopped: no more periodic writes
    log.flush()
    assert read_predictions(layout).num_rows == 2


def test_a_writer_killed_mid_write_leaves_no_partial_file_for_readers(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    log = PredictionLog(layout)
    log.append([_row(1)])
    log.flush()
    (layout.predictions_dir / "part-20990101T000000000000-deadbeef.parquet.tmp-123-abcd").write_bytes(b"PAR1 torn")
    assert read_predictions(layout).num_rows == 1  # a temporary name is never read


def test_a_bad_budget_is_refused(tmp_path):
    with pytest.raises(ValueError, match="positive byte budget"):
        PredictionLog(StoreLayout(tmp_path), max_bytes=0)


def test_files_written_before_the_vector_columns_read_them_as_nulls(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthwatch.store.predictions import SCHEMA, VECTOR_COLUMNS, prediction_rows

    layout = StoreLayout(tmp_path / "store")
    old_schema = pa.schema([field for field in SCHEMA if field.name not in VECTOR_COLUMNS])
    layout.predictions_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{**_row(1), "at": datetime.now(timezone.utc)}], schema=old_schema),
                   layout.predictions_dir / "part-20260101T000000000000-00000000.parquet")
    log = PredictionLog(layout)
    log.append([_row(2, embedding=[0.6, 0.8], embedding_backbone="b1")])
    log.flush()
    assert read_predictions(layout).column_names == old_schema.names  # vectors only when asked
    rows = prediction_rows(read_predictions(layout, vectors=True))
    assert [r["embedding_backbone"] for r in rows] == [None, "b1"] and rows[0]["embedding"] is None
    assert rows[1]["embedding"].dtype == "float32" and rows[1]["embedding"].tolist() == pytest.approx([0.6, 0.8])

