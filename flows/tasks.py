"""Prefect tasks: each calls one library function with a store path and ids, and returns a small
JSON-able dict. Tasks that read or write files retry on transient errors; all of them are
idempotent, so a retried or re-run task skips what is already done."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prefect import task
from prefect.events import emit_event

from synthwatch.flows import publish
from synthwatch.flows.publish import store_key
from synthwatch.store.layout import StoreLayout

publish.send_library_logs_to_prefect()


def transient(task, task_run, state) -> bool:
    """Retry on I/O errors and busy locks; a wrong input fails the same way every time."""
    import duckdb

    from synthwatch.store.errors import StoreBusy

    try:
        state.result()
    except (OSError, TimeoutError, StoreBusy, duckdb.IOException):
        return True
    except Exception:
        return False
    return False


IO_RETRIES = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": transient}


def _layout(store: str) -> StoreLayout:
    return StoreLayout(Path(store))


def store_resource(store: str) -> dict[str, str]:
    """The Prefect resource events about one store are attached to."""
    return {"prefect.resource.id": f"synthwatch.store.{store_key(store)}",
            "prefect.resource.name": store}


@task(**IO_RETRIES)
def watched_sources(store: str, only: list[str] | None = None) -> list[str]:
    from synthwatch.store.watched import list_sources

    return [s.uri for s in list_sources(_layout(store)) if only is None or s.uri in only]


@task(**IO_RETRIES)
def ingest_source(store: str, uri: str) -> dict:
    from synthwatch.store.watched import ingest_watched, list_sources

    watched = next(s for s in list_sources(_layout(store)) if s.uri == uri)
    report = ingest_watched(_layout(store), watched)
    return {k: report[k] for k in ("source", "ingested", "duplicates", "rejected", "conflicts", "new_generators")}


@task
def forward_events(store: str) -> list[str]:
    """Emit the catalog's not yet forwarded events as Prefect events, then mark them forwarded."""
    from synthwatch.store.catalog import Catalog

    catalog = Catalog(_layout(store))
    pending = catalog.pending_events()
    for event in pending:
        emit_event(event["name"], resource=store_resource(store), payload=event["payload"])
    catalog.mark_forwarded([event["event_id"] for event in pending])
    return [event["name"] for event in pending]


@task(**IO_RETRIES)
def pipeline_backbone(store: str, backbone: str | None, allow_random_weights: bool) -> dict:
    """The description of the backbone this cycle embeds with: ``backbone``, else synthwatch.toml's,
    else ``resolve_pipeline_backbone``'s choice."""
    from synthwatch.embeddings.job import resolve_pipeline_backbone
    from synthwatch.heads.config import load_config

    layout = _layout(store)
    chosen = backbone or load_config(layout.root).backbone
    return resolve_pipeline_backbone(layout, chosen, allow_random_weights=allow_random_weights).describe()


@task
def configured_views(store: str, backbone: str, views: int | None, patches: int | None) -> tuple[int, int]:
    """``views`` and ``patches``, else synthwatch.toml's for ``backbone``, the name of the one
    embedded with (``heads.config.embedding_views``)."""
    from synthwatch.heads.config import embedding_views, load_config

    return embedding_views(load_config(_layout(store).root), backbone, views, patches)


@task(**IO_RETRIES)
def embed_missing(store: str, description: dict, views: int = 0, patches: int = 0) -> dict:
    from synthwatch.embeddings.engine import EngineOptions
    from synthwatch.embeddings.job import embed_store

    report = embed_store(_layout(store), _backbone(description), views=views, patches=patches, options=EngineOptions())
    return {k: v for k, v in report.as_dict().items() if k != "failures"}


@task
def plan_chunks(store: str, backbone_id: str, views: int, chunk_images: int, patches: int = 0) -> list[list[str]]:
    from synthwatch.embeddings.job import plan_chunks as plan

    return plan(_layout(store), backbone_id, views=views, patches=patches, chunk_images=chunk_images)


@task(**IO_RETRIES)
def embed_chunk(store: str, description: dict, image_ids: list[str], views: int = 0, patches: int = 0) -> dict:
    """Embed some images; for workers of a fan-out whose flow holds the embedding lock."""
    from synthwatch.embeddings.engine import EngineOptions
    from synthwatch.embeddings.job import embed_store

    report = embed_store(_layout(store), _backbone(description), views=views, patches=patches, only=set(image_ids),
                         options=EngineOptions(workers=0), lock=False)
    return {**report.as_dict(), "worker": f"{socket.gethostname()}:{os.getpid()}"}  # failures: the flow commits them


@task(**IO_RETRIES)
def record_fan_out(store: str, reports: list[dict]) -> str:
    """Commit what a fan-out's workers reported, from the flow's process (the catalog's one writer)."""
    from synthwatch.embeddings.job import record_fan_out as record

    return record(_layout(store), reports)


@task(**IO_RETRIES)
def update_index(store: str, backbone_id: str | None = None) -> dict:
    """Bring the index of ``backbone_id`` (default: the champion's backbone, else the only one
    with vectors) up to date."""
    from synthwatch.store.backbones import resolve_backbone
    from synthwatch.store.indexing import sync_index

    layout = _layout(store)
    return sync_index(layout, resolve_backbone(layout, backbone_id))


@task
def check_drift(store: str, alpha: float) -> dict:
    from synthwatch.heads.promotion import check_drift as check

    return check(_layout(store), alpha=alpha)


@task
def retrain_needed(store: str, drift: dict) -> dict:
    from synthwatch.heads.promotion import retrain_needed as needed

    wanted, why = needed(_layout(store), drift)
    return {"retrain": wanted, "why": why}


def policy_in_force(store: str, gate: dict | None, alpha: float | None) -> tuple[dict, float]:
    """The gate policy and drift alpha a flow runs with: the store's synthwatch.toml (and
    ``SYNTHWATCH_*`` variables), overridden by what the flow was given (a partial ``gate`` too)."""
    from synthwatch.heads.config import load_config

    given = {key: value for key, value in (("gate", gate), ("alpha", alpha)) if value is not None}
    config = load_config(_layout(store).root, given)
    return config.gate.as_dict(), config.alpha


@task
def retrain(store: str, reason: str, head: str, gate: dict, alpha: float, drift: dict | None = None) -> dict:
    from synthwatch.heads.config import load_config
    from synthwatch.heads.detector import HeadSpec
    from synthwatch.heads.evaluation import EvalOptions
    from synthwatch.heads.training import TrainOptions
    from synthwatch.heads.promotion import retrain as run

    layout = _layout(store)
    config = load_config(layout.root, {"gate": gate, "alpha": alpha})
    options = TrainOptions(reason=reason, max_train=config.max_train, max_eval=config.max_eval,
                           evaluation=EvalOptions(target_fpr=config.target_fpr))
    result = run(layout, spec=HeadSpec(head), options=options, policy=config.gate, alpha=config.alpha, drift=drift,
                 write_report_file=True)
    return {k: v for k, v in result.items() if k != "metrics"} | {"summary": result["metrics"]["summary"]}


@task
def publish_drift(store: str, drift: dict) -> None:
    publish.publish_drift(store, drift)


@task
def watch_traffic(store: str, alpha: float) -> dict:
    """Traffic drift of the last day and unfamiliar groups of the last week, shown in the UI. An
    extra the cycle does not depend on: a failure is reported in its artifact and the log, and
    the cycle goes on."""
    import logging

    from synthwatch.heads.traffic import watch_traffic as watch

    try:
        traffic = watch(_layout(store), alpha=alpha)
    except Exception as error:  # noqa: BLE001 (any failure of an optional step)
        logging.getLogger("synthwatch").warning(f"traffic: not checked: {type(error).__name__}: {error}")
        traffic = {"checked": False, "reason": f"the check failed: {type(error).__name__}: {error}"}
    publish.publish_traffic(store, traffic)
    return traffic


@task
def publish_decision(store: str, result: dict) -> None:
    publish.publish_decision(store, result)


@task
def champion(store: str) -> str | None:
    from synthwatch.store.registry import HeadRegistry

    return HeadRegistry(_layout(store)).champion()


_BACKBONES: dict[str, object] = {}


def _backbone(description: dict):
    """One model per backbone id and process (tasks on one worker share it)."""
    from synthwatch.embeddings.backbone import cached_backbone

    return cached_backbone(description, _BACKBONES)
