"""The head registry: versions written whole, champion alias moved through an append-only audit
log, rollback, and crashes between writing a head and moving the alias."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry

WRITER = """
import sys
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry
registry = HeadRegistry(StoreLayout(__import__("pathlib").Path(sys.argv[1])))
for number in range(100000):
    version = registry.new_version() + f"-{number}"
    registry.write_version(version, {"kind": "logreg", "metrics": {"summary": {}}}, {"head.safetensors": b"x" * 200_000})
    registry.promote(version, reason=f"loop {number}")
"""


def _version(registry: HeadRegistry, payload: bytes = b"weights") -> str:
    version = registry.new_version()
    registry.write_version(version, {"kind": "logreg", "metrics": {"summary": {}}}, {"head.safetensors": payload})
    return version


def test_promote_rollback_and_the_audit_log(store):
    registry = HeadRegistry(StoreLayout(store))
    first, second, third = (_version(registry) for _ in range(3))
    assert registry.champion() is None
    registry.promote(first, reason="first", who="alice")
    registry.promote(second, reason="better", who="bob")
    registry.promote(third, reason="forced for a demo", forced=True, who="carol")
    assert registry.rollback(reason="third misbehaves") == {"before": third, "after": second}
    assert registry.rollback(reason="second too") == {"before": second, "after": first}
    with pytest.raises(StoreError, match="only one"):
        registry.rollback(reason="nothing left")
    actions = [(e["action"], e["version"]) for e in registry.audit()]
    assert actions == [("create", first), ("create", second), ("create", third), ("promote", first),
                       ("promote", second), ("promote", third), ("rollback", second), ("rollback", first)]
    forced = [e for e in registry.audit() if e.get("forced")]
    assert len(forced) == 1 and forced[0]["who"] == "carol" and forced[0]["reason"] == "forced for a demo"
    assert all("at" in e for e in registry.audit())


def test_a_changed_head_file_is_refused(store):
    registry = HeadRegistry(StoreLayout(store))
    version = _version(registry)
    (registry.folder / version / "head.safetensors").write_bytes(b"tampered")
    with pytest.raises(StoreError, match="match its recorded sha256"):
        registry.read_file(version, "head.safetensors")


def test_a_crash_between_logging_and_moving_the_alias_is_repaired_from_the_log(store):
    registry = HeadRegistry(StoreLayout(store))
    first, second = _version(registry), _version(registry)
    registry.promote(first, reason="first")
    # What a process killed after appending the audit entry and before swapping the alias leaves:
    registry._append({"action": "promote", "version": second, "before": first, "reason": "r", "forced": False})
    assert registry.champion() == first
    assert registry.settle() == second and registry.champion() == second
    assert registry.audit()[-1]["action"] == "repair"


def test_sigkill_at_any_moment_leaves_whole_heads_and_an_alias_that_names_one(store):
    layout = StoreLayout(store)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for kill in range(6):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(store)], env=env)
        time.sleep(1.0 + 0.37 * kill)
        process.send_signal(signal.SIGKILL)
        process.wait()
        registry = HeadRegistry(layout)
        champion = registry.settle()
        records = {r["version"]: r for r in registry.versions()}
        assert champion in records  # the alias names a complete version
        for version in records:
            assert registry.read_file(version, "head.safetensors") == b"x" * 200_000  # whole, checksum intact
        promoted = [e["version"] for e in registry.audit() if e["action"] == "promote"]
        assert promoted[-1] == champion and set(promoted) <= set(records)
    assert len(records) >= 6


def test_a_torn_last_audit_line_is_skipped_and_cut_before_the_next_entry(store):
    registry = HeadRegistry(StoreLayout(store))
    first = _version(registry)
    with open(registry.audit_path, "ab") as handle:
        handle.write(b'{"at": "2026-01-01", "action": "prom')  # a write cut short by a crash
    assert [e["action"] for e in registry.audit()] == ["create"]
    registry.promote(first, reason="after the crash")
    assert [json.loads(line)["action"] for line in registry.audit_path.read_text().splitlines()] == ["create", "promote"]


@pytest.mark.parametrize("version", ["../../evil", "a/b", ".tmp-x", "", "/etc"])
def test_version_names_cannot_point_outside_the_registry(store, tmp_path, version):
    registry = HeadRegistry(StoreLayout(store))
    outside = tmp_path / "evil"
    outside.mkdir()
    (outside / "record.json").write_text('{"version": "evil", "files": {}}')
    for attempt in (lambda: registry.record(version), lambda: registry.promote(version, reason="x"),
                    lambda: registry.write_version(version, {}, {})):
        with pytest.raises(StoreError, match="Expected a head version"):
            attempt()
    assert registry.champion() is None and not (outside / "decision.json").exists()


def test_a_promotion_judged_against_an_old_champion_is_refused(store):
    from synthwatch.store.registry import ChampionChanged

    registry = HeadRegistry(StoreLayout(store))
    first, second, candidate = _version(registry), _version(registry), _version(registry)
    registry.promote(first, reason="first")
    judged_against = registry.champion()
    registry.promote(second, reason="an operator, while the gate ran")
    with pytest.raises(ChampionChanged, match=f"Expected the champion to still be {first}, but it is now {second}"):
        registry.promote(candidate, reason="passed the gate", expected_before=judged_against)
    assert registry.champion() == second
    assert registry.promote(candidate, reason="re-judged", expected_before=second) == {"before": second, "after": candidate}


def test_an_emptied_audit_log_never_drops_the_champion_silently(cli, store):
    registry = HeadRegistry(StoreLayout(store))
    first, second = _version(registry), _version(registry)
    registry.promote(first, reason="first")
    registry.audit_path.write_bytes(b"")  # emptied by hand, or a restore gone wrong
    with pytest.raises(StoreError, match=r"the log names no champion and the alias .*Nothing was changed.*--trust alias"):
        registry.promote(second, reason="next")
    assert registry.champion() == first and registry.audit() == []
    code, out, _ = cli("--store", store, "models", "repair", "--trust", "alias", "--reason", "log emptied", "--json")
    assert code == 0 and (out["champion"], out["log_named"], out["alias_named"]) == (first, None, first)
    entry = registry.audit()[-1]
    assert entry["action"] == "repair" and entry["version"] == first and entry["reason"].startswith("log emptied; repair")
    assert registry.promote(second, reason="next") == {"before": first, "after": second}
    assert registry.rollback(reason="back") == {"before": second, "after": first}


def test_a_damaged_audit_line_is_named_and_repair_keeps_the_readable_entries(cli, store):
    registry = HeadRegistry(StoreLayout(store))
    first, second = _version(registry), _version(registry)
    registry.promote(first, reason="first")
    registry.promote(second, reason="second")
    lines = registry.audit_path.read_bytes().split(b"\n")
    lines[2] = b"\xff\xfe garbage \x00"
    registry.audit_path.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError, match=rf"{registry.audit_path}, but line 3 is damaged \(not UTF-8 text at byte 0\)"):
        registry.audit()
    code, _, err = cli("--store", store, "models", "rollback", "--json")
    assert code == 1 and "line 3 is damaged" in err and "Traceback" not in err
    code, out, _ = cli("--store", store, "models", "repair", "--trust", "log", "--json")
    assert code == 0 and out["damaged_lines"] == [3] and out["champion"] == second
    assert (registry.folder / out["damaged_log_kept"].rsplit("/", 1)[1]).exists()  # the damaged log is kept
    assert [e["action"] for e in registry.audit()] == ["create", "create", "promote", "repair"]  # line 3 is gone
