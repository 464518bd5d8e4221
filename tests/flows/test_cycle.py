"""The continual cycle under Prefect: first champion, a new generator, then nothing to do."""

from __future__ import annotations

import shutil

from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.watched import add_source

NO_FLOORS = {"auroc_floor": 0.0, "tpr_floor": 0.0, "regression_tolerance": 0.02}
TINY = {"backbone": "test-tiny-dinov2", "gate": NO_FLOORS, "alpha": 0.05}
RUN_KEYS = {"ingested", "embedded", "new_generators", "drift", "retrained", "candidate", "decision", "reasons",
            "champion"}


def test_a_full_cycle_then_a_new_generator_then_nothing_new(prefect_server, inbox):
    from synthwatch.flows.cycle import continual_flow

    store, folder, corpus = inbox
    layout = StoreLayout(store)
    add_source(layout, str(folder))
    first = continual_flow(str(store), **TINY)
    assert RUN_KEYS <= set(first)
    assert first["ingested"] == first["embedded"] == 72 + 2 * 16
    assert first["new_generators"] == ["ae-nearest", "ae-tconv"]
    assert first["retrained"] and first["decision"] == "promoted" and first["champion"] == first["candidate"]
    assert "synthwatch.generator.new" in first["events"] and "synthwatch.head.promoted" in first["events"]

    shutil.copytree(corpus.out / "synthetic" / "ae-noise", folder / "synthetic" / "ae-noise")
    state = continual_flow(str(store), **TINY, return_state=True)
    second = state.result()
    assert second["ingested"] == 16 and second["new_generators"] == ["ae-noise"]
    assert second["drift"]["checked"] and second["drift"]["generators"] == ["ae-noise"]
    assert second["retrained"] and second["decision"] in ("promoted", "rejected") and second["reasons"]
    assert any("new generator: ae-noise" in why for why in second["retrain_wanted"])
    _the_ui_shows_what_the_cycle_decided(str(store), second, state.state_details.flow_run_id)

    third = continual_flow(str(store), **TINY)
    assert (third["ingested"], third["embedded"], third["retrained"], third["decision"]) == (0, 0, False, "none")
    assert third["champion"] == second["champion"]
    assert not Catalog(layout).pending_events()  # every event went to Prefect


def _the_ui_shows_what_the_cycle_decided(store: str, cycle: dict, flow_run_id) -> None:
    """Read back from the server: the gate's checks, drift, traffic and the report as artifacts keyed by
    store, and the libraries' log lines in the run's log."""
    from pathlib import Path

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from synthwatch.flows.publish import artifact_key

    APILogHandler().flush()  # send what is queued, then read
    keys = {kind: artifact_key(kind, store) for kind in ("gate-checks", "drift", "report", "traffic")}
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys.values()))))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        everything = client.read_logs()  # ingest and embed log in their own subflow runs
    latest = {a.key: a for a in sorted(found, key=lambda a: a.created)}  # each cycle adds a version per key
    assert set(latest) == set(keys.values())
    table = latest[keys["gate-checks"]]
    assert table.type == "table" and table.flow_run_id == flow_run_id
    rows = table.data if isinstance(table.data, list) else __import__("json").loads(table.data)
    assert [row["check"] for row in rows] == [check["name"] for check in cycle["checks"]]
    assert cycle["decision"] in table.description and cycle["candidate"] in table.description
    drift = latest[keys["drift"]]
    assert drift.type == "markdown" and "ae-noise" in drift.data and "embedding_mmd" in drift.data
    traffic = latest[keys["traffic"]]  # nothing served from this store yet: it says so
    assert traffic.type == "markdown" and "no traffic logged yet" in traffic.data and not cycle["unfamiliar_groups"]
    report = latest[keys["report"]]
    assert Path(cycle["report"]).exists() and Path(cycle["report"]).as_uri() in report.data  # a link (as markdown)
    messages = [log.message for log in logs if log.name.startswith("synthwatch")]
    assert any(m.startswith("drift: DETECTED on 16 new synthetic images (ae-noise)") for m in messages), messages
    assert any(m.startswith(f"gate: {cycle['decision']} {cycle['candidate']}") for m in messages)
    assert any(log.message.startswith(f"ingested 16 new images into {store} ") and log.flow_run_id for log in everything)
