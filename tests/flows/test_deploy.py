"""What `synthwatch deploy` serves: each watched source's schedule, the retrain trigger on both
events, and the options given on the command line."""

from __future__ import annotations

from synthwatch.flows.deploy import RETRAIN_EVENTS, build_deployments
from synthwatch.flows.tasks import store_resource
from synthwatch.store.layout import StoreLayout
from synthwatch.store.watched import add_source


def test_each_watched_source_schedules_a_cycle_over_itself(tmp_path):
    (tmp_path / "drop").mkdir()
    (tmp_path / "by-hand").mkdir()
    (tmp_path / "m.csv").write_text("path,label,generator\n")
    store = tmp_path / "store"
    add_source(StoreLayout(store), str(tmp_path / "drop"), every="15m")
    add_source(StoreLayout(store), str(tmp_path / "m.csv"), cron="0 * * * *")
    add_source(StoreLayout(store), str(tmp_path / "by-hand"))  # no schedule: cycles run by hand only
    deployments = {d.name: d for d in build_deployments(str(store), alpha=0.05, gate={"auroc_floor": 0.5})}
    assert set(deployments) == {"continual", "retrain", "ingest", "embed", "index"}

    schedules = deployments["continual"].schedules
    assert len(schedules) == 2
    interval, cron = schedules
    assert interval.schedule.interval.total_seconds() == 900
    assert interval.parameters == {"sources": [str(tmp_path / "drop")]}
    assert cron.schedule.cron == "0 * * * *" and cron.parameters == {"sources": [str(tmp_path / "m.csv")]}

    (trigger,) = deployments["retrain"].triggers
    assert trigger.expect == set(RETRAIN_EVENTS) == {"synthwatch.generator.new", "synthwatch.drift.detected"}
    assert trigger.match.root == {"prefect.resource.id": store_resource(str(store))["prefect.resource.id"]}
    for name in ("continual", "retrain"):
        assert deployments[name].parameters["alpha"] == 0.05
        assert deployments[name].parameters["gate"] == {"auroc_floor": 0.5}
    assert deployments["continual"].parameters["retrain_inline"] is False  # retraining is the trigger's


def test_the_stores_schedule_cycles_over_every_source_and_the_gate_comes_from_its_file(tmp_path):
    from synthwatch.flows.tasks import policy_in_force
    from synthwatch.heads.config import config_path

    store = tmp_path / "store"
    (tmp_path / "drop").mkdir()
    add_source(StoreLayout(store), str(tmp_path / "drop"), every="15m")
    config_path(store).write_text('[schedule]\ncron = "30 2 * * *"\n[gate]\nauroc_floor = 0.85\n')
    deployments = {d.name: d for d in build_deployments(str(store))}
    whole, own = deployments["continual"].schedules
    assert whole.schedule.cron == "30 2 * * *" and not whole.parameters  # no `sources`: every source
    assert own.parameters == {"sources": [str(tmp_path / "drop")]}
    # Deployments started without a gate leave it to the store's file, read when each run starts.
    assert deployments["retrain"].parameters.get("gate") is None
    assert policy_in_force(str(store), deployments["retrain"].parameters.get("gate"), None)[0]["auroc_floor"] == 0.85
