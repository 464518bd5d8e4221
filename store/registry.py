"""The head registry: head versions with their files and lineage, the ``champion`` alias, and an
append-only audit log of every change.

A version is a folder ``heads/<version>/`` written whole under a temporary name and renamed
into place, so it exists complete or not at all; its ``record.json`` lists the sha256 of each
file. The audit log (``heads/audit.jsonl``, one JSON object a line, fsynced) is the source of
truth for who the champion is: a promotion is logged first and the alias file
(``heads/champion.json``) is swapped second, so a crash between the two leaves a log that the
next write repairs the alias from. The alias only ever names a version folder that exists.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

from store.atomic import atomic_write_bytes, fsync_folder
from store.catalog import utc_now
from store.errors import StoreError
from store.layout import StoreLayout
from store.lock import write_lock

VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
RECORD = "record.json"
DECISION = "decision.json"
CHAMPION_CHANGES = ("promote", "rollback")


ANY_CHAMPION = object()


class ChampionChanged(StoreError):
    """The champion changed between a gate's judgement and its promotion."""


def default_actor() -> str:
    """Who is acting: ``$SYNTHWATCH_USER``, else user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return os.environ.get("SYNTHWATCH_USER") or f"{user}@{socket.gethostname()}"


class HeadRegistry:
    """Head versions of one store."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.folder = layout.root / "heads"
        self.alias_path = self.folder / "champion.json"
        self.audit_path = self.folder / "audit.jsonl"

    # -- versions ------------------------------------------------------------------------------

    @staticmethod
    def new_version() -> str:
        return f"h{utc_now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"

    def _version_folder(self, version: str) -> Path:
        """``heads/<version>``, refusing names that could point anywhere else (``../x``, ``a/b``)."""
        if not isinstance(version, str) or not VERSION_NAME.fullmatch(version):
            raise StoreError(f"Expected a head version such as h20261125-170031-82296f, but got {version!r}. "
                             "See `synthwatch models list`.")
        return self.folder / version

    def write_version(self, version: str, record: dict, files: dict[str, bytes], *, reason: str = "") -> dict:
        """Write a version folder atomically and log its creation; returns the stored record."""
        target = self._version_folder(version)
        if target.exists():
            raise StoreError(f"Expected a new head version, but {version} already exists in {self.folder}.")
        staging = self.folder / f".tmp-{version}-{os.getpid()}"
        staging.mkdir(parents=True)
        try:
            digests = {}
            for name, data in files.items():
                _write_synced(staging / name, data)
                digests[name] = hashlib.sha256(data).hexdigest()
            record = {**record, "version": version, "created_at": utc_now().isoformat(), "files": digests}
            _write_synced(staging / RECORD, json.dumps(record, indent=1, ensure_ascii=False).encode())
            fsync_folder(staging)
            os.rename(staging, target)
            fsync_folder(self.folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with write_lock(self.layout.lock_for("registry")):
            self._append({"action": "create", "version": version, "reason": reason, "who": default_actor()})
        return record

    def record(self, version: str) -> dict:
        """The record of ``version``, with its gate decision if one was made."""
        path = self._version_folder(version) / RECORD
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            have = ", ".join(r["version"] for r in self.versions()[-5:]) or "none"
            raise StoreError(f"Expected a head version in {self.folder}, but {version!r} is not one "
                             f"(latest: {have}). See `synthwatch models list`.") from None
        decision = self.folder / version / DECISION
        if decision.exists():
            record["gate"] = json.loads(decision.read_text())
        return record

    def read_file(self, version: str, name: str) -> bytes:
        """A file of ``version``, checked against the sha256 in its record."""
        expected = self.record(version)["files"].get(name)
        if expected is None:
            raise StoreError(f"Expected a file {name!r} in head {version}, but its record lists none.")
        data = (self._version_folder(version) / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise StoreError(f"Expected {self.folder / version / name} to match its recorded sha256, but it "
                             "does not: the file was changed or damaged. Retrain or restore it.")
        return data

    def versions(self) -> list[dict]:
        """Every complete version's record, oldest first."""
        if not self.folder.exists():
            return []
        records = [self.record(p.name) for p in self.folder.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and (p / RECORD).exists()]
        return sorted(records, key=lambda r: (r["created_at"], r["version"]))

    def set_decision(self, version: str, decision: dict, *, who: str | None = None) -> None:
        """Store the gate's decision beside a version (atomically) and log it."""
        self.record(version)
        with write_lock(self.layout.lock_for("registry")):
            atomic_write_bytes(self._version_folder(version) / DECISION,
                               json.dumps(decision, indent=1, ensure_ascii=False).encode())
            self._append({"action": "decide", "version": version, "decision": decision.get("decision"),
                          "forced": bool(decision.get("forced")), "reason": "; ".join(decision.get("reasons", [])),
                          "who": who or default_actor()})

    # -- champion ------------------------------------------------------------------------------

    def champion(self) -> str | None:
        """The version the alias names (one small file read: cheap enough for every request)."""
        try:
            version = json.loads(self.alias_path.read_text())["version"]
        except (FileNotFoundError, ValueError, KeyError):
            return None
        self._version_folder(version)  # an alias edited by hand to point elsewhere is refused
        return version

    def champion_backbone(self) -> str | None:
        """The backbone id of the champion head, the default backbone of lookups; None without one."""
        champion = self.champion()
        return self.record(champion)["backbone_id"] if champion else None

    def promote(self, version: str, *, reason: str, forced: bool = False, who: str | None = None,
                expected_before: str | None | object = ANY_CHAMPION) -> dict:
        """Make ``version`` the champion; returns ``{"before": ..., "after": ...}``.

        With ``expected_before``, refuses (``ChampionChanged``) when the champion is no longer that
        one: a gate that judged against one champion must not replace another (one promoted or
        rolled back by hand, or by a concurrent run, while it worked)."""
        self.record(version)
        with write_lock(self.layout.lock_for("registry")):
            before = self._repair()
            if expected_before is not ANY_CHAMPION and before != expected_before:
                raise ChampionChanged(
                    f"Expected the champion to still be {expected_before}, but it is now {before}: it changed "
                    f"while {version} was judged. Run `synthwatch retrain` again to judge against {before}.")
            entry = {"action": "promote", "version": version, "before": before, "reason": reason,
                     "forced": forced, "who": who or default_actor()}
            self._append(entry)
            self._write_alias(version)
        return {"before": before, "after": version}

    def rollback(self, *, reason: str, who: str | None = None) -> dict:
        """Return to the champion before the current one; returns ``{"before": ..., "after": ...}``."""
        with write_lock(self.layout.lock_for("registry")):
            before = self._repair()
            stack = self._champion_stack(self.audit())
            if len(stack) < 2:
                raise StoreError("Expected an earlier champion to roll back to, but there is "
                                 f"{'no champion' if not stack else 'only one'} in the audit log.")
            after = stack[-2]
            self._append({"action": "rollback", "version": after, "before": before, "reason": reason,
                          "forced": False, "who": who or default_actor()})
            self._write_alias(after)
        return {"before": before, "after": after}

    def audit(self) -> list[dict]:
        """Every audit entry, oldest first (a line torn by a crash is left out)."""
        try:
            lines = self.audit_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    def repair(self) -> str | None:
        """Bring the alias in line with the audit log (after a crash); returns the champion."""
        with write_lock(self.layout.lock_for("registry")):
            return self._repair()

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _champion_stack(entries: list[dict]) -> list[str]:
        """Champions in order: a promotion pushes, a rollback pops back to the one before."""
        stack: list[str] = []
        for entry in entries:
            if entry.get("action") == "promote":
                stack.append(entry["version"])
            elif entry.get("action") == "rollback" and stack:
                stack.pop()
                if not stack or stack[-1] != entry["version"]:
                    stack.append(entry["version"])
        return stack

    def _repair(self) -> str | None:
        stack = self._champion_stack(self.audit())
        logged = stack[-1] if stack else None
        current = self.champion()
        if logged != current:
            if logged is not None:
                self._write_alias(logged)
            else:
                self.alias_path.unlink(missing_ok=True)
            self._append({"action": "repair", "version": logged, "before": current,
                          "reason": "the alias disagreed with the audit log (a crash between the two writes)",
                          "who": default_actor()})
        return logged

    def _write_alias(self, version: str) -> None:
        atomic_write_bytes(self.alias_path, json.dumps({"version": version, "since": utc_now().isoformat()}).encode())

    def _append(self, entry: dict) -> None:
        """Append one line to the audit log and fsync it; a torn last line is cut off first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"at": utc_now().isoformat(), **entry}, ensure_ascii=False) + "\n"
        with open(self.audit_path, "ab+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size:
                handle.seek(max(0, size - 1))
                if handle.read(1) != b"\n":
                    handle.seek(0)
                    content = handle.read()
                    handle.truncate(content.rfind(b"\n") + 1)
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
