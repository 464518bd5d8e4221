"""Several service processes on one port: `synthwatch serve --workers N`. uvicorn starts N
worker processes on one socket; each builds its application with :func:`worker_app` from the
parent's options (passed in the environment, never on a command line), keeps a prediction log
of its own (each flush is a file of its own), and /metrics adds up every worker's counts through
a folder of metric files (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from synthwatch.metrics import MULTIPROC_ENV
from synthwatch.service import create_app
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.predictions import PredictionLog

SERVE_OPTIONS_ENV = "SYNTHWATCH_SERVE_OPTIONS"  # the parent's options, as JSON, for its workers
TOKEN_ENV = "SYNTHWATCH_API_TOKEN"
WORKER_FAILED = "worker-failed.txt"  # in the metrics folder: why a worker could not start


def serve_workers(workers: int, options: dict, **uvicorn_options) -> None:
    """Run ``workers`` uvicorn worker processes on one socket until SIGINT or SIGTERM; each builds
    its application with :func:`worker_app`. ``options``: the keywords of :func:`create_app` that
    are plain values, plus ``store`` (the root), ``auth`` (whether to read the token from
    ``$SYNTHWATCH_API_TOKEN``) and ``log_max_bytes`` (None: no prediction log). They reach the
    workers through the environment (never a command line); /metrics counts for all of them
    through a fresh folder of metric files, removed once every worker has stopped. Raises
    ``StoreError`` with a worker's reason when one could not start (uvicorn then stops them all)."""
    metrics_dir = tempfile.mkdtemp(prefix="synthwatch-metrics-")
    saved = {name: os.environ.get(name) for name in (SERVE_OPTIONS_ENV, MULTIPROC_ENV)}
    os.environ.update({SERVE_OPTIONS_ENV: json.dumps(options), MULTIPROC_ENV: metrics_dir})
    try:
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, **uvicorn_options)
        failed = Path(metrics_dir, WORKER_FAILED)
        if failed.exists():
            raise StoreError(failed.read_text())
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(metrics_dir, ignore_errors=True)


def worker_app() -> FastAPI:
    """The application of one worker of :func:`serve_workers` (uvicorn calls it in each worker
    process): the parent's options from ``$SYNTHWATCH_SERVE_OPTIONS``, the token from
    ``$SYNTHWATCH_API_TOKEN``, a prediction log of its own (each flush is a file of its own), and
    /metrics over every worker's files in ``$PROMETHEUS_MULTIPROC_DIR``. A worker that cannot
    build it leaves the reason for the parent and exits as a startup failure, which uvicorn does
    not restart (any other exit would be restarted, and fail again, forever)."""
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    try:
        if SERVE_OPTIONS_ENV not in os.environ or metrics_dir is None:
            raise StoreError(f"Expected ${SERVE_OPTIONS_ENV} and ${MULTIPROC_ENV} to be set, but at least one is "
                             "not. Start workers with `synthwatch serve --workers N`.")
        options = json.loads(os.environ[SERVE_OPTIONS_ENV])
        layout = StoreLayout(Path(options.pop("store")))
        auth, log_max_bytes = options.pop("auth"), options.pop("log_max_bytes")
        token = (os.environ.get(TOKEN_ENV) or None) if auth else None
        if auth and token is None:
            raise StoreError(f"Expected {TOKEN_ENV} to be set in a worker, but it is not. Set it before "
                             "`synthwatch serve --workers N`.")
        log = None if log_max_bytes is None else PredictionLog(layout, max_bytes=log_max_bytes)
        return create_app(layout, token=token, prediction_log=log, metrics_dir=metrics_dir, **options)
    except Exception as error:
        reason = str(error) if isinstance(error, StoreError) else (
            f"Expected every worker to start, but one failed: {type(error).__name__}: {error}. "
            "Serve with --workers 1 to see it in one process.")
        if metrics_dir is not None and Path(metrics_dir).is_dir():
            Path(metrics_dir, WORKER_FAILED).write_text(reason)
        print(f"synthwatch: {reason}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
