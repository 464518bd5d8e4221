"""What a cycle shows in Prefect's UI besides task states: the libraries' log lines (the
``synthwatch`` logger) in the run's log, and artifacts keyed per store: the gate's checks (a
table), drift and traffic (markdown) and the candidate's report (a link)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler


class RunLogHandler(APILogHandler):
    """Records of the ``synthwatch`` logger, sent to Prefect only from inside a flow or task run
    (library calls made outside one stay off the API)."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
            super().emit(record)


def send_library_logs_to_prefect() -> None:
    """Let Prefect capture what each library step did (INFO and above), once per process. The
    ``synthwatch`` logger then stops passing records up to the root logger, whose console handler
    (Prefect's) would print every INFO line, and warnings twice: the command line prints the
    warnings through its own handler on this logger."""
    logger = logging.getLogger("synthwatch")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(handler, RunLogHandler) for handler in logger.handlers):
        logger.addHandler(RunLogHandler())


def store_key(store: str) -> str:
    """A short, stable name of a store for resource ids and artifact keys."""
    return hashlib.sha256(store.encode()).hexdigest()[:12]


def artifact_key(kind: str, store: str) -> str:
    """``synthwatch-<kind>-<store key>``: the same key each cycle, so the UI shows its history."""
    return f"synthwatch-{kind}-{store_key(store)}"


def drift_markdown(store: str, drift: dict) -> str:
    if not drift.get("checked"):
        return f"# Drift in `{store}`\n\nNot checked: {drift.get('reason', 'no reason given')}.\n"
    lines = [f"# Drift in `{store}`: {'**DETECTED**' if drift['detected'] else 'none'}", "",
             f"{drift['new_synthetic']} new synthetic images ({', '.join(drift['generators'])}) against champion "
             f"`{drift['champion']}`, each check at alpha {drift['alpha']}.", "",
             "| check | statistic | p-value | drift |", "|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['statistic']:.4f} | {c['p_value']:.4f} | {'yes' if c['drift'] else 'no'} |"
              for c in drift["checks"]]
    return "\n".join(lines) + "\n"


def traffic_markdown(store: str, traffic: dict) -> str:
    """The traffic checks of the last day and the unfamiliar groups of the last week, each with
    the command that ingests it."""
    if not traffic.get("checked"):
        return f"# Traffic of `{store}`\n\nNot checked: {traffic.get('reason', 'no reason given')}.\n"
    drift, found = traffic["drift"], traffic["discovery"]
    verdict = "**DRIFT**" if drift["drift"] else ("none" if drift["checked"] else "not checked")
    lines = [f"# Traffic of `{store}`: drift {verdict}", "",
             f"{drift['window']['images']} answers of head `{drift['head_version']}` in the window against "
             f"{drift['baseline']['images']} before, each check at alpha {drift['alpha']}."
             + (f" {drift['reason']}." if drift.get("reason") else ""), ""]
    if drift["checks"]:
        lines += ["| check | statistic | p-value | drift |", "|---|---|---|---|"]
        lines += [f"| {c['name']} | {c['statistic']:.4f} | {c['p_value']:.4f} | {'yes' if c['drift'] else 'no'} |"
                  for c in drift["checks"]]
    lines += ["", f"## Unfamiliar groups: {len(found['groups'])}", ""]
    if found.get("reason"):
        lines.append(f"Not searched: {found['reason']}.")
    for group in found["groups"]:
        lines.append(f"- `{group['group']}`: {group['size']} images, nearest known generator "
                     f"{group['nearest_generator']} at {group['reference_distance']} (its own held-out fakes: "
                     f"{group['generator_spread']}, p {group['p_value']}), {group['kept_uploads']} kept; "
                     f"`synthwatch ingest --from-discovery {group['group']} --generator NAME`")
    return "\n".join(lines) + "\n"


def publish_traffic(store: str, traffic: dict) -> None:
    create_markdown_artifact(traffic_markdown(store, traffic), key=artifact_key("traffic", store),
                             description=f"traffic drift and unfamiliar groups of {store}")


def checks_table(result: dict) -> list[dict]:
    """One row per gate check: name, verdict, value, interval and threshold."""
    def number(value):
        return None if value is None else round(value, 4)

    return [{"check": c["name"], "verdict": "pass" if c["passed"] else "FAIL", "value": number(c["value"]),
             "interval": "" if not c.get("interval") else f"[{c['interval'][0]:.4f}, {c['interval'][1]:.4f}]",
             "threshold": number(c["threshold"])} for c in result["checks"]]


def publish_drift(store: str, drift: dict) -> None:
    create_markdown_artifact(drift_markdown(store, drift), key=artifact_key("drift", store),
                             description=f"drift checks of {store}")


def publish_decision(store: str, result: dict) -> None:
    """The gate's checks on the candidate, and a link to its report when one was written."""
    create_table_artifact(checks_table(result), key=artifact_key("gate-checks", store),
                          description=f"{result['decision']}: candidate {result['candidate']} of {store}; "
                                      + "; ".join(result["reasons"]))
    if result.get("report"):
        create_link_artifact(Path(result["report"]).as_uri(), link_text=f"report of {result['candidate']}",
                             key=artifact_key("report", store), description=f"evaluation report, {store}")
