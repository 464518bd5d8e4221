"""Job locks: one writing process at a time, released by the OS if it dies.

POSIX record locks (``lockf``) belong to the process that took them and are not inherited by
children, so decoding workers that outlive a killed parent for a moment never keep a store
locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from store.errors import StoreBusy


@contextmanager
def write_lock(lock_path: Path, *, timeout_s: float = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the duration of the block.

    Waits up to ``timeout_s`` for another writer; a writer killed with SIGKILL releases
    the lock automatically, so a crash never leaves the store locked.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+")
    try:
        deadline = time.monotonic() + timeout_s
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
        yield
    finally:
        handle.close()


def job_lock(layout, job: str, *, timeout_s: float = 60.0):
    """The lock of one kind of job in a store (``embed-<backbone id>``, ``index-<backbone id>``...)."""
    return write_lock(layout.lock_for(job), timeout_s=timeout_s)
