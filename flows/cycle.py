"""The flows: ingest, embed, index, retrain, and continual (one cycle of all of them).

Each reads like a table of contents; the work is in the tasks (``flows.tasks``), which call the
libraries. Flows pass a store path, ids and small dicts, never arrays or models.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from synthwatch.flows import tasks


@flow(name="synthwatch-ingest")
def ingest_flow(store: str, sources: list[str] | None = None) -> dict:
    """Ingest what is new in every watched source (or the ``sources`` named)."""
    reports = [tasks.ingest_source(store, uri) for uri in tasks.watched_sources(store, sources)]
    events = tasks.forward_events(store)
    return {"ingested": sum(r["ingested"] for r in reports),
            "new_generators": sorted({g for r in reports for g in r["new_generators"]}),
            "sources": reports, "events": events}


@flow(name="synthwatch-embed")
def embed_flow(store: str, backbone: str | None = None, allow_random_weights: bool = False,
               views: int | None = None, fan_out: bool = False, chunk_images: int = 1024,
               patches: int | None = None) -> dict:
    """Embed every image that lacks vectors (``views``, ``patches`` None: synthwatch.toml's);
    ``fan_out`` spreads chunks over the task runner's workers (a Dask cluster) while this flow
    holds the backbone's embedding lock."""
    description = tasks.pipeline_backbone(store, backbone, allow_random_weights)
    backbone_id = description["backbone_id"]
    views, patches = tasks.configured_views(store, description["name"], views, patches)
    if not fan_out:
        report = tasks.embed_missing(store, description, views, patches)
        return {"backbone_id": backbone_id, "embedded": report["embedded"], "failed": report["failed"], "chunks": 1}
    from synthwatch.store.layout import StoreLayout
    from synthwatch.store.lock import job_lock

    with job_lock(StoreLayout(Path(store)), f"embed-{backbone_id}"):
        chunks = tasks.plan_chunks(store, backbone_id, views, chunk_images, patches)
        futures = [tasks.embed_chunk.submit(store, description, ids, views, patches) for ids in chunks]
        reports = [future.result() for future in futures]
        tasks.record_fan_out(store, reports)
    return {"backbone_id": backbone_id, "embedded": sum(r["embedded"] for r in reports),
            "failed": sum(r["failed"] for r in reports), "chunks": len(chunks),
            "workers": sorted({r["worker"] for r in reports})}


@flow(name="synthwatch-index")
def index_flow(store: str, backbone_id: str | None = None) -> dict:
    """Bring the backbone's FAISS index up to date (default: the champion's backbone, else the
    only one with vectors)."""
    return tasks.update_index(store, backbone_id)


@flow(name="synthwatch-retrain")
def retrain_flow(store: str, reason: str = "", head: str = "logreg", gate: dict | None = None,
                 alpha: float | None = None, force: bool = False) -> dict:
    """Check drift, train a candidate, gate it; skipped when nothing calls for it (unless ``force``),
    so several events arriving together retrain once. ``gate`` and ``alpha`` override the store's
    synthwatch.toml."""
    gate, alpha = tasks.policy_in_force(store, gate, alpha)
    drift = tasks.check_drift(store, alpha)
    needed = tasks.retrain_needed(store, drift)
    if not (needed["retrain"] or force):
        tasks.forward_events(store)
        return {"retrained": False, "why": needed["why"], "drift": drift, "decision": "none"}
    why = "; ".join(filter(None, [reason, *needed["why"]])) or "asked"
    result = tasks.retrain(store, why, head, gate, alpha, drift)
    tasks.publish_decision(store, result)
    tasks.forward_events(store)
    return {"retrained": True, "why": needed["why"], **result}


@flow(name="synthwatch-continual")
def continual_flow(store: str, sources: list[str] | None = None, backbone: str | None = None,
                   allow_random_weights: bool = False, views: int | None = None, dask_address: str | None = None,
                   retrain_inline: bool = True, head: str = "logreg", gate: dict | None = None,
                   alpha: float | None = None) -> dict:
    """One cycle: ingest watched sources, embed, index, check drift (of new fakes, and of the
    prediction log's traffic, with its unfamiliar groups), and retrain and gate when a new
    generator or drift calls for it (``retrain_inline``; deployments leave that to the
    retrain deployment's event triggers). ``gate`` and ``alpha`` override the store's synthwatch.toml."""
    gate, alpha = tasks.policy_in_force(store, gate, alpha)
    ingested = ingest_flow(store, sources)
    embedder = embed_flow
    if dask_address:
        from prefect_dask import DaskTaskRunner

        embedder = embed_flow.with_options(task_runner=DaskTaskRunner(address=dask_address))
    embedded = embedder(store, backbone, allow_random_weights, views, fan_out=bool(dask_address))
    index_flow(store, embedded["backbone_id"])
    drift = tasks.check_drift(store, alpha)
    tasks.publish_drift(store, drift)
    needed = tasks.retrain_needed(store, drift)
    result = None
    if needed["retrain"] and retrain_inline:
        result = tasks.retrain(store, "; ".join(needed["why"]), head, gate, alpha, drift)
        tasks.publish_decision(store, result)
    traffic = tasks.watch_traffic(store, alpha)
    events = tasks.forward_events(store)
    champion = tasks.champion(store)
    return {
        "ingested": ingested["ingested"], "embedded": embedded["embedded"], "backbone_id": embedded["backbone_id"],
        "new_generators": ingested["new_generators"], "drift": drift, "retrained": result is not None,
        "retrain_wanted": needed["why"], "candidate": result["candidate"] if result else None,
        "decision": result["decision"] if result else "none", "reasons": result["reasons"] if result else [],
        "checks": result["checks"] if result else [], "champion": champion,
        "learning_curves": result["learning_curves"] if result else [],
        "learning_curve_lines": result["learning_curve_lines"] if result else [],
        "report": result["report"] if result else None,
        "traffic_drift": bool(traffic.get("drift", {}).get("drift")),
        "unfamiliar_groups": [g["group"] for g in traffic.get("discovery", {}).get("groups", [])],
        "events": ingested["events"] + events,
    }
