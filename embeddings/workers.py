"""Worker processes that die with their parent.

A DataLoader worker notices a vanished parent only when it next looks (up to several seconds,
and not at all while blocked); a parent killed with SIGKILL used to leave them running at PPID 1,
hundreds of MB each. On Linux each worker asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``), and checks it did not already miss that moment.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def dying_with_this_process():
    """A DataLoader ``worker_init_fn`` that makes each worker die with the process calling this."""
    return functools.partial(_die_with_parent, parent=os.getpid())


def _die_with_parent(_worker_id: int, *, parent: int) -> None:
    """Make this process receive SIGKILL when ``parent`` exits (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # not allowed here (some sandboxes): the loader's own watchdog remains
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)
