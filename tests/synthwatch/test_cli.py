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


def test_reading_records_does_not_load_the_model_stack(proxy_store):
    """`models list` and `status` only read records: torch (about 2 s and 700 MB) stays unloaded."""
    import subprocess
    import sys

    store, _ = proxy_store
    code = ("import sys; from synthwatch.cli import main; "
            f"[main(['--store', {str(store)!r}, *args, '--json']) for args in (['models', 'list'], ['status'])]; "
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded', file=sys.stderr)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().endswith("torch not loaded")


def test_sources_add_and_remove_print_sentences(store, tmp_path, capsys):
    from synthwatch.cli import main

    (tmp_path / "drop").mkdir()
    assert main(["--store", str(store), "sources", "add", str(tmp_path / "drop"), "--every", "15m"]) == 0
    assert capsys.readouterr().out.strip() == f"watching folder {tmp_path / 'drop'} (every 900 s)"
    assert main(["--store", str(store), "sources", "remove", str(tmp_path / "drop")]) == 0
    assert capsys.readouterr().out.strip() == f"no longer watching {tmp_path / 'drop'}"


def test_bash_completes_commands_subcommands_and_flags(tmp_path, capsys):
    from synthwatch.cli import main

    assert main(["completion", "bash"]) == 0
    script = tmp_path / "synthwatch.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in ("synthwatch", *words))
        run = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; "
                                            "_synthwatch; printf '%s\\n' \"${COMPREPLY[@]}\""],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0 and not run.stderr, run.stderr
        return run.stdout.split()

    assert complete("mo") == ["models"]
    assert complete("--store", "somewhere", "models", "pr") == ["promote"]  # a flag's value is not a command
    assert complete("evaluate", "--lea") == ["--learning-curve"]
    assert complete("models", "promote", "--f") == ["--force"]
    assert "--max-train" in complete("retrain", "--")
