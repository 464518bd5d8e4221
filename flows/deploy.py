"""Deployments of the flows for one store, with their schedules and event triggers, served from one
process (`synthwatch deploy`); ``infra/prefect.yaml`` declares the same for work pools."""

from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval

from synthwatch.flows.cycle import continual_flow, embed_flow, index_flow, ingest_flow, retrain_flow
from synthwatch.flows.tasks import store_resource
from synthwatch.store.layout import StoreLayout
from synthwatch.store.watched import list_sources

RETRAIN_EVENTS = ("synthwatch.generator.new", "synthwatch.drift.detected")


def schedules_of(layout: StoreLayout) -> list:
    """One Prefect schedule per watched source that has one, each cycling over that source, and
    the store's own (``[schedule]`` in synthwatch.toml) cycling over every source."""
    from synthwatch.heads.config import load_config

    whole = load_config(layout.root).schedule
    schedules = [Cron(whole.cron)] if whole.cron else [Interval(whole.every_s)] if whole.every else []
    for source in list_sources(layout):
        parameters = {"sources": [source.uri]}
        if source.cron:
            schedules.append(Cron(source.cron, parameters=parameters))
        elif source.every_s:
            schedules.append(Interval(source.every_s, parameters=parameters))
    return schedules


def retrain_trigger(store: str) -> DeploymentEventTrigger:
    """Start the retrain deployment when this store reports a new generator or drift."""
    return DeploymentEventTrigger(
        name="synthwatch-retrain-on-new-generator-or-drift",
        expect=set(RETRAIN_EVENTS),
        match={"prefect.resource.id": store_resource(store)["prefect.resource.id"]},
        parameters={"store": store, "reason": "event {{ event.event }}"},
    )


def build_deployments(store: str, *, backbone: str | None = None, allow_random_weights: bool = False,
                      dask_address: str | None = None, gate: dict | None = None, alpha: float | None = None) -> list:
    """The deployments of ``store``: continual (on the watched sources' schedules), retrain (on
    new-generator and drift events), and ingest, embed and index to run by hand."""
    layout = StoreLayout(Path(store))
    common = {"store": store}
    cycle = {**common, "backbone": backbone, "allow_random_weights": allow_random_weights,
             "dask_address": dask_address, "retrain_inline": False, "gate": gate, "alpha": alpha}
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    return [
        continual_flow.to_deployment("continual", parameters=cycle, schedules=schedules_of(layout),
                                     concurrency_limit=one_at_a_time,
                                     description="One cycle: ingest watched sources, embed, index, check drift."),
        retrain_flow.to_deployment("retrain", parameters={**common, "gate": gate, "alpha": alpha},
                                   triggers=[retrain_trigger(store)], concurrency_limit=one_at_a_time,
                                   description="Train a candidate, gate it, promote or reject it."),
        ingest_flow.to_deployment("ingest", parameters=common),
        embed_flow.to_deployment("embed", parameters={**common, "backbone": backbone,
                                                      "allow_random_weights": allow_random_weights}),
        index_flow.to_deployment("index", parameters=common),
    ]


def serve_store(store: str, **options) -> None:
    """Serve every deployment of ``store`` until interrupted."""
    serve(*build_deployments(store, **options), print_starting_message=True)
