"""The service's Prometheus metrics: requests and their latency by route and status, verdicts
(the flag rate is their ratio), and the head answering. One registry per application, so
several applications in one process (tests) do not mix their counts; under `serve --workers N`
each worker writes its own files to one folder and /metrics adds them up (prometheus_client's
multiprocess mode), so every worker answers for the whole fleet."""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from synthwatch.store.errors import StoreError

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is first imported


class ServiceMetrics:
    """Counters, histograms and gauges of one service, with an ASGI-level timer.

    With ``multiprocess_dir`` (one worker of several; ``$PROMETHEUS_MULTIPROC_DIR`` must name that
    folder before prometheus_client is imported) the values live in this process's files there,
    :meth:`exposition` merges every process's files, and ``synthwatch_worker_requests`` says how
    many requests each live worker answered, by route (labels ``pid``, ``route``).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        if multiprocess_dir is not None and not (getattr(values.ValueClass, "_multiprocess", False)
                                                 and os.environ.get(MULTIPROC_ENV) == str(multiprocess_dir)):
            raise StoreError(f"Expected ${MULTIPROC_ENV} to be {multiprocess_dir} when prometheus_client was "
                             f"imported, but got {os.environ.get(MULTIPROC_ENV)!r}. Start workers with "
                             "`synthwatch serve --workers N`, which sets it.")
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter("synthwatch_requests", "HTTP requests answered", ("route", "status"),
                                registry=self.registry)
        self.latency = Histogram("synthwatch_request_seconds", "time to answer a request", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.verdicts = Counter("synthwatch_verdicts", "images scored by /detect", ("verdict",),
                                registry=self.registry)
        # Several workers: a version is 1 while any live worker answers with it (labels cannot be
        # removed from the files, so a worker that moves on sets its old version to 0).
        self.head = Gauge("synthwatch_head_info", "the head version answering /detect (1 for the current one)",
                          ("version",), registry=self.registry, multiprocess_mode="livemax")
        self.worker_requests = None if multiprocess_dir is None else Gauge(
            "synthwatch_worker_requests", "HTTP requests answered by each live worker process", ("route",),
            registry=self.registry, multiprocess_mode="liveall")
        self._head_version: str | None = None

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if self.worker_requests is not None:
            self.worker_requests.labels(route).inc()

    def verdict(self, synthetic: bool, head_version: str) -> None:
        self.verdicts.labels("synthetic" if synthetic else "real").inc()
        if head_version != self._head_version:
            if self._head_version is not None:
                if self.multiprocess_dir is None:
                    self.head.remove(self._head_version)
                else:
                    self.head.labels(self._head_version).set(0)
            self.head.labels(head_version).set(1)
            self._head_version = head_version

    def exposition(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        forget_dead_workers(self.multiprocess_dir)
        fleet = CollectorRegistry()  # only the merged files: this process's values are among them
        multiprocess.MultiProcessCollector(fleet, path=self.multiprocess_dir)
        return generate_latest(fleet)

    def close(self) -> None:
        """A worker stopping: its live gauges leave /metrics (its counts stay in the totals)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)


class TimedRoutes:
    """ASGI middleware recording each HTTP request's route template (not its raw path, so ids do
    not become labels), status and time in ``metrics``."""

    def __init__(self, app, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def recording_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            self.metrics.observe(getattr(route, "path", "unmatched"), status[0], time.perf_counter() - started)


def forget_dead_workers(folder: str) -> list[int]:
    """Drop the live gauges of worker processes that no longer exist (killed, not stopped: they
    could not do it themselves), so /metrics stops showing them; their counts stay. Returns their pids."""
    import re
    from pathlib import Path

    pids = {int(match.group(1)) for path in Path(folder).glob("gauge_live*_*.db")
            if (match := re.search(r"_(\d+)\.db$", path.name))}
    dead = []
    for pid in sorted(pids):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, folder)
            dead.append(pid)
        except PermissionError:  # alive, someone else's
            continue
    return dead

