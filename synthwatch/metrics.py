"""The service's Prometheus metrics: requests and their latency by route and status, verdicts
(the flag rate is their ratio), and the head answering. One registry per application, so
several applications in one process (tests) do not mix their counts."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Counters, histograms and gauges of one service, with an ASGI-level timer."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("synthwatch_requests", "HTTP requests answered", ("route", "status"),
                                registry=self.registry)
        self.latency = Histogram("synthwatch_request_seconds", "time to answer a request", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.verdicts = Counter("synthwatch_verdicts", "images scored by /detect", ("verdict",),
                                registry=self.registry)
        self.head = Gauge("synthwatch_head_info", "the head version answering /detect (1 for the current one)",
                          ("version",), registry=self.registry)
        self._head_version: str | None = None

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def verdict(self, synthetic: bool, head_version: str) -> None:
        self.verdicts.labels("synthetic" if synthetic else "real").inc()
        if head_version != self._head_version:
            if self._head_version is not None:
                self.head.remove(self._head_version)
            self.head.labels(head_version).set(1)
            self._head_version = head_version

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


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
