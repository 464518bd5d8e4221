"""Job locks: one writer at a time, process or thread, released by the OS if its process dies.

POSIX record locks (``lockf``) belong to the process that took them and are not inherited by
children, so decoding workers that outlive a killed parent for a moment never keep a store
locked. Being per process, they do not keep two threads of one process apart (Prefect runs
tasks in threads), and closing any descriptor of the file would drop them: so each lock file
also has one in-process lock, which a thread may take again inside itself (nested jobs), and
only the outermost holder takes and drops the ``lockf`` lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from synthwatch.store.errors import StoreBusy


class _Held:
    """The in-process side of one lock file: which thread holds it, how deeply, and the file."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.depth = 0
        self.handle = None


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


@contextmanager
def write_lock(lock_path: Path, *, timeout_s: float = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the duration of the block.

    Waits up to ``timeout_s`` for another writer (another process, or another thread of this
    one); a writer killed with SIGKILL releases the lock automatically, so a crash never leaves
    the store locked. The same thread may nest the block.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _HELD_GUARD:
        held = _HELD.setdefault(str(lock_path.resolve()), _Held())
    deadline = time.monotonic() + timeout_s
    if not held.lock.acquire(timeout=timeout_s):
        raise StoreBusy(f"Expected to be the only writer of {lock_path.parent}, but another thread of this "
                        f"process has held its write lock for over {timeout_s:.0f} s. Wait for it to finish, "
                        "then run again.")
    try:
        if held.depth == 0:
            held.handle = _take_file_lock(lock_path, deadline, timeout_s)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                held.handle.close()
                held.handle = None
    finally:
        held.lock.release()


def _take_file_lock(lock_path: Path, deadline: float, timeout_s: float):
    handle = open(lock_path, "a+")
    try:
        while True:
            try:
                fcntl.lockf(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (BlockingIOError, PermissionError):
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise StoreBusy(
                        f"Expected to be the only writer of {lock_path.parent}, but process "
                        f"{holder} has held its write lock for over {timeout_s:.0f} s. "
                        "Wait for it to finish, then run again."
                    ) from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle
    except BaseException:
        handle.close()
        raise


def job_lock(layout, job: str, *, timeout_s: float = 60.0):
    """The lock of one kind of job in a store (``embed-<backbone id>``, ``index-<backbone id>``...)."""
    return write_lock(layout.lock_for(job), timeout_s=timeout_s)
