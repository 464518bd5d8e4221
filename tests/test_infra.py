"""The deployment files parse and point at what exists: flows, events, GPUs, services."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import yaml

INFRA = Path(__file__).resolve().parents[1] / "infra"


def test_prefect_yaml_entrypoints_are_flows_and_the_trigger_listens_for_our_events():
    from prefect import Flow

    from synthwatch.flows.deploy import RETRAIN_EVENTS

    spec = yaml.safe_load((INFRA / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"continual", "retrain", "ingest", "embed", "index"}
    for deployment in deployments.values():
        path, name = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, name), Flow)
        parameters = getattr(module, name).parameters
        assert set(deployment["parameters"]) <= set(parameters.properties)
        assert set(parameters.required or []) <= set(deployment["parameters"]), deployment["name"]
    assert set(deployments["retrain"]["triggers"][0]["expect"]) == set(RETRAIN_EVENTS)


def test_gpu_job_template_requests_a_gpu_and_mounts_the_store():
    template = json.loads((INFRA / "k8s-gpu-job-template.json").read_text())
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpus }}"
    assert template["variables"]["properties"]["gpus"]["default"] == 1
    assert container["volumeMounts"][0]["mountPath"] == "/store"


def test_compose_runs_a_server_on_postgres_a_worker_and_the_service():
    compose = yaml.safe_load((INFRA / "docker-compose.yml").read_text())["services"]
    assert set(compose) == {"postgres", "prefect-server", "worker", "worker-gpu", "service"}
    assert "postgresql+asyncpg" in compose["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    pools = yaml.safe_load((INFRA / "prefect.yaml").read_text())["definitions"]
    polled = {compose[w]["command"].split("--pool ")[1].split()[0] for w in ("worker", "worker-gpu")}
    assert polled == {pools["cpu"]["name"], pools["gpu"]["name"]}  # every deployment's pool has a worker
    assert "SYNTHWATCH_API_TOKEN" in compose["service"]["environment"]
