"""Children that die with us, whoever started them.

Prefect starts its temporary server (when no ``PREFECT_API_URL`` is set) as a child process of
ours that nothing ties to our life: after a SIGKILL it ran on at PPID 1. :func:`reap_children_on_exit`
starts a small reaper process holding the read end of a pipe whose write end only we hold; the
reaper notes our children twice a second, and when the pipe reports end of file (we exited, however)
it kills those still running (psutil checks each one is the same process it saw, not a reused pid).
"""

from __future__ import annotations

import os
import select
import subprocess
import sys

_WRITE_END: list[int] = []


def reap_children_on_exit() -> None:
    """Start the reaper for this process, once."""
    if _WRITE_END:
        return
    read, write = os.pipe()
    subprocess.Popen([sys.executable, "-m", "synthwatch.flows.reaper", str(os.getpid())], stdin=read,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(read)
    _WRITE_END.append(write)  # never closed by us: the OS closes it when we are gone


def _watch(parent_pid: int) -> None:
    import psutil

    try:
        parent = psutil.Process(parent_pid)
    except psutil.NoSuchProcess:
        return
    me, seen = os.getpid(), {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.5)
        if ready and not os.read(sys.stdin.fileno(), 1):
            break  # end of file: the parent has exited
        try:
            seen.update({child.pid: child for child in parent.children(recursive=True) if child.pid != me})
        except psutil.NoSuchProcess:
            break
    for child in seen.values():
        try:
            child.kill()
        except psutil.Error:
            pass  # gone already, or a different process now holds that pid


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
