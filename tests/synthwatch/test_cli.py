"""The installed console script and the store-location rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_image


def _script() -> str:
    return str(Path(sys.executable).with_name("synthwatch"))


def test_console_script_store_from_environment_then_default(tmp_path):
    write_image(tmp_path / "in" / "a.png")
    env = {**os.environ, "SYNTHWATCH_STORE": str(tmp_path / "from-env")}
    subprocess.run([_script(), "ingest", str(tmp_path / "in"), "--label", "real", "--json"],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    assert (tmp_path / "from-env" / "catalog.duckdb").exists()
    env.pop("SYNTHWATCH_STORE")
    done = subprocess.run([_script(), "status", "--json"], check=True, env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert json.loads(done.stdout)["store"] == str(tmp_path / "synthwatch-store")
    done = subprocess.run([_script(), "status", "--store", str(tmp_path / "from-env"), "--json"],
                          check=True, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert json.loads(done.stdout)["images"]["real"] == 1  # --store after the command works too


def test_status_verify_finds_a_damaged_blob(cli, store, tmp_path):
    write_image(tmp_path / "in" / "a.png")
    cli("--store", store, "ingest", tmp_path / "in", "--label", "real", "--json")
    code, status, _ = cli("--store", store, "status", "--verify", "--json")
    assert code == 0 and status["problems"] == []
    blob = next(p for p in (store / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(b"bit rot")
    code, status, _ = cli("--store", store, "status", "--verify", "--json")
    assert code == 1 and "does not hash to its id" in status["problems"][0]
