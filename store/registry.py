"""The head registry: head versions with their files and lineage, the ``champion`` alias, and an
append-only audit log of every change.

A version is a folder ``heads/<version>/`` written whole under a temporary name and renamed
into place, so it exists complete or not at all; its ``record.json`` lists the sha256 of each
file. The audit log (``heads/audit.jsonl``, one JSON object a line, fsynced) is the source of
truth for who the champion is: a promotion is logged first and the alias file
(``heads/champion.json``) is swapped second, so a crash between the two leaves a log that the
next write completes the alias from. Any other disagreement (a log emptied, truncated or
edited) is refused, naming both files, and changes nothing: ``repair`` is its own command,
which records what it did. Every line is checked on read; a damaged one is named with its line
number. The alias only ever names a version folder that exists.
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

from synthwatch.store.atomic import atomic_write_bytes, fsync_folder
from synthwatch.store.schema import utc_now
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock

VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
RECORD = "record.json"
DECISION = "decision.json"
CHAMPION_CHANGES = ("promote", "rollback")


ANY_CHAMPION = object()


class ChampionChanged(StoreError):
    """The champion changed between a gate's judgement and its promotion."""


class AuditLogDamaged(StoreError):
    """A line of the audit log is not an audit entry."""


TRUSTS = ("alias", "log")


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
        """Every audit entry, oldest first. A last line without its newline (a write torn by a
        crash) is left out; any other line that is not an entry raises ``AuditLogDamaged``."""
        entries, damaged = self._read_audit()
        if damaged:
            number, reason = damaged[0]
            raise AuditLogDamaged(
                f"Expected one JSON audit entry per line in {self.audit_path}, but line {number} is damaged "
                f"({reason}){f' and {len(damaged) - 1} more' if len(damaged) > 1 else ''}. Nothing was changed. "
                "Run `synthwatch models repair --trust alias` to set the log aside and continue from its readable "
                "entries and the current champion.")
        return entries

    def settle(self) -> str | None:
        """Complete a champion change a crash interrupted (logged, alias not yet moved); returns
        the champion. Any other disagreement raises, changing nothing (see :meth:`repair`)."""
        with write_lock(self.layout.lock_for("registry")):
            return self._repair()

    def repair(self, *, trust: str, reason: str = "", who: str | None = None) -> dict:
        """Bring the audit log and the alias back into agreement, trusting one of them, and record
        it. A damaged log is kept beside (``audit.jsonl.damaged-<time>``) and continued from its
        readable entries. Returns what was done."""
        if trust not in TRUSTS:
            raise ValueError(f"Expected trust in {TRUSTS}, but got {trust!r}.")
        with write_lock(self.layout.lock_for("registry")):
            entries, damaged = self._read_audit()
            kept = None
            if damaged:
                kept = self.audit_path.with_name(f"{self.audit_path.name}.damaged-{utc_now().strftime('%Y%m%dT%H%M%S')}")
                os.replace(self.audit_path, kept)
                _write_synced(self.audit_path, "".join(_line(entry) for entry in entries).encode())
            stack = self._champion_stack(entries)
            logged, current = (stack[-1] if stack else None), self.champion()
            champion = current if trust == "alias" else logged
            if trust == "log":
                self._set_alias(logged)
            note = (f"repair trusting the {trust}: the log named {logged or 'no champion'}, the alias "
                    f"{current or 'none'}" + (f"; {len(damaged)} damaged lines, the old log kept as {kept.name}"
                                              if kept else ""))
            self._append({"action": "repair", "version": champion, "before": logged if trust == "alias" else current,
                          "reason": f"{reason + '; ' if reason else ''}{note}", "who": who or default_actor()})
        return {"champion": champion, "log_named": logged, "alias_named": current,
                "damaged_lines": [number for number, _ in damaged], "damaged_log_kept": str(kept) if kept else None}

    # -- internals -----------------------------------------------------------------------------

    def _read_audit(self) -> tuple[list[dict], list[tuple[int, str]]]:
        """``(entries, [(line number, what is wrong)])``; a torn last line counts as neither."""
        try:
            data = self.audit_path.read_bytes()
        except FileNotFoundError:
            return [], []
        lines = data.split(b"\n")[:-1]  # what follows the last newline is a torn write, if anything
        entries, damaged = [], []
        for number, raw in enumerate(lines, start=1):
            try:
                entry = json.loads(raw.decode("utf-8"))
                if not isinstance(entry, dict) or not isinstance(entry.get("action"), str):
                    raise ValueError("not an audit entry: no action")
            except UnicodeDecodeError as error:
                damaged.append((number, f"not UTF-8 text at byte {error.start}"))
            except ValueError as error:
                damaged.append((number, str(error).splitlines()[0]))
            else:
                entries.append(entry)
        return entries, damaged

    @staticmethod
    def _champion_stack(entries: list[dict]) -> list[str]:
        """Champions in order: a promotion pushes, a rollback pops back to the one before, a
        repair names the champion from then on."""
        stack: list[str] = []
        for entry in entries:
            if entry.get("action") == "promote":
                stack.append(entry["version"])
            elif entry.get("action") == "rollback" and stack:
                stack.pop()
                if not stack or stack[-1] != entry["version"]:
                    stack.append(entry["version"])
            elif entry.get("action") == "repair":
                if entry.get("version") is None:
                    stack.clear()
                elif not stack or stack[-1] != entry["version"]:
                    stack.append(entry["version"])
        return stack

    def _repair(self) -> str | None:
        """The champion, after completing a change a crash interrupted between the log append and
        the alias write. Any other disagreement is refused: nothing is changed silently."""
        entries = self.audit()
        stack = self._champion_stack(entries)
        logged = stack[-1] if stack else None
        current = self.champion()
        if logged == current:
            return logged
        changes = [e for e in entries if e.get("action") in (*CHAMPION_CHANGES, "repair")]
        interrupted = changes and changes[-1].get("version") == logged and changes[-1].get("before") == current
        if not interrupted:
            raise StoreError(
                f"Expected the audit log {self.audit_path} and the champion alias {self.alias_path} to agree, but "
                f"the log names {logged or 'no champion'} and the alias {current or 'none'}, and no interrupted "
                "change explains it (was the log emptied, truncated or edited?). Nothing was changed. Run "
                f"`synthwatch models repair --trust alias` to keep {current or 'no champion'}, or `--trust log` "
                f"to follow the log ({logged or 'no champion'}); the repair is recorded.")
        self._set_alias(logged)
        self._append({"action": "repair", "version": logged, "before": current,
                      "reason": "the alias disagreed with the audit log (a crash between the two writes)",
                      "who": default_actor()})
        return logged

    def _set_alias(self, version: str | None) -> None:
        """Point the alias at ``version``; None removes it (no champion)."""
        if version is None:
            self.alias_path.unlink(missing_ok=True)
        else:
            self._write_alias(version)

    def _write_alias(self, version: str) -> None:
        atomic_write_bytes(self.alias_path, json.dumps({"version": version, "since": utc_now().isoformat()}).encode())

    def _append(self, entry: dict) -> None:
        """Append one line to the audit log and fsync it; a torn last line is cut off first."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = _line({"at": utc_now().isoformat(), **entry})
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


def _line(entry: dict) -> str:
    return json.dumps(entry, ensure_ascii=False) + "\n"


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
