"""The head registry read as JSON: what `synthwatch models list` / `models show` print and
`GET /models` serves."""

from __future__ import annotations

from synthwatch.store.registry import HeadRegistry


def list_models(registry: HeadRegistry) -> dict:
    """``{"models": [summary of each version, oldest first], "champion": version or None}``."""
    champion = registry.champion()
    models = [{"version": r["version"], "created_at": r["created_at"], "kind": r["kind"],
               "backbone_id": r.get("backbone_id"), "decision": r.get("gate", {}).get("decision"),
               "forced": r.get("gate", {}).get("forced", False), "champion": r["version"] == champion,
               "metrics": r["metrics"]["summary"], "reason": r.get("reason", ""),
               "report": report_of(registry, r["version"])} for r in registry.versions()]
    return {"models": models, "champion": champion}


def report_of(registry: HeadRegistry, version: str) -> str | None:
    """Where ``version``'s evaluation report is, relative to the store root, if one was written."""
    path = registry.layout.report_path(version)
    return str(path.relative_to(registry.layout.root)) if path.is_file() else None


def show_model(registry: HeadRegistry, version: str) -> dict:
    """The record of ``version`` with its gate decision (``gate``, when judged), its audit entries
    and whether it is the champion."""
    record = registry.record(version)
    record["audit"] = [e for e in registry.audit() if e.get("version") == version]
    record["champion"] = registry.champion() == version
    record["report"] = report_of(registry, version)
    return record
