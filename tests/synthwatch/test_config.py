"""The store's synthwatch.toml: written by `init` or the first writing command, read by every
command and flow, overridden by SYNTHWATCH_* variables and then by flags; the policy in force is
stored with each decision."""

from __future__ import annotations

import pytest

from synthwatch.cli.config_flags import apply_store_config
from synthwatch.cli.parser import build_parser
from synthwatch.heads.config import config_path, load_config
from synthwatch.heads.gate import GatePolicy
from synthwatch.settings import Settings

STRICT = "target_fpr = 0.02\nalpha = 0.05\nbackbone = \"spectrum\"\n[gate]\nauroc_floor = 0.9\ntpr_floor = 0.3\n"


def _resolved(store, *argv):
    args = build_parser().parse_args(["--store", str(store), *argv])
    apply_store_config(args, Settings.from_args(args.store))
    return args


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults(store, monkeypatch):
    store.mkdir()
    assert _resolved(store, "retrain").auroc_floor == GatePolicy.auroc_floor  # no file: the defaults
    config_path(store).write_text(STRICT)
    args = _resolved(store, "retrain")
    assert (args.auroc_floor, args.tpr_floor, args.target_fpr, args.alpha) == (0.9, 0.3, 0.02, 0.05)
    assert args.regression_tolerance == GatePolicy.regression_tolerance  # not in the file: the default
    monkeypatch.setenv("SYNTHWATCH_GATE__AUROC_FLOOR", "0.8")
    monkeypatch.setenv("SYNTHWATCH_ALPHA", "0.02")
    args = _resolved(store, "retrain")
    assert (args.auroc_floor, args.tpr_floor, args.alpha) == (0.8, 0.3, 0.02)
    args = _resolved(store, "retrain", "--auroc-floor", "0.6", "--alpha", "0.001", "--correction", "holm")
    assert (args.auroc_floor, args.tpr_floor, args.alpha, args.correction) == (0.6, 0.3, 0.001, "holm")


def test_the_backbone_to_embed_with_comes_from_the_file_where_something_embeds(store):
    from synthwatch import Store
    from synthwatch.flows.tasks import pipeline_backbone

    store.mkdir()
    assert Store(store).backbone_to_embed() == "dinov2-small"
    config_path(store).write_text(STRICT)
    assert Store(store).backbone_to_embed() == "spectrum" and _resolved(store, "benchmark", "--preset",
                                                                         "genimage-sdv14").backbone == "spectrum"
    assert Store(store).backbone_to_embed("test-tiny-dinov2") == "test-tiny-dinov2"
    assert pipeline_backbone.fn(str(store), None, False)["backbone_id"].startswith("spectrum@")  # a cycle embeds with it
    assert _resolved(store, "similar", "x.png").backbone is None  # which stored index: not a setting


def test_evaluate_takes_the_floors_only_for_a_learning_curve(store):
    store.mkdir()
    config_path(store).write_text(STRICT)
    assert _resolved(store, "evaluate").auroc_floor is None  # so `--auroc-floor` without a curve is still refused
    assert _resolved(store, "evaluate", "--learning-curve", "g").auroc_floor == 0.9


def test_a_bad_file_is_refused_naming_the_file_and_the_key(store, cli):
    store.mkdir()
    config_path(store).write_text("[gate]\nauroc_flor = 0.9\n")
    code, _, err = cli("--store", store, "retrain", "--json")
    assert code == 1 and str(config_path(store)) in err and "gate.auroc_flor" in err
    config_path(store).write_text("[schedule]\nevery = \"soon\"\n")
    with pytest.raises(ValueError, match="schedule.every.*soon"):
        load_config(store)
    config_path(store).write_text("[gate\n")
    code, _, err = cli("--store", store, "train", "--json")
    assert code == 1 and "does not parse" in err and str(config_path(store)) in err


def test_init_writes_every_key_at_its_default_and_refuses_to_overwrite(store, cli):
    code, out, _ = cli("--store", store, "init", "--backbone", "spectrum", "--json")
    assert code == 0 and out["settings"]["backbone"] == "spectrum"
    assert out["settings"]["gate"] == GatePolicy().as_dict() and out["policy_sha256"] == GatePolicy().digest
    text = config_path(store).read_text()
    assert all(f"{key} =" in text for key in GatePolicy().as_dict())
    code, _, err = cli("--store", store, "init")
    assert code == 1 and "--force" in err


def test_the_first_writing_command_writes_the_file_and_reading_ones_do_not(store, cli, tmp_path):
    code, _, _ = cli("--store", store, "status", "--json")
    assert code == 0 and not config_path(store).exists()
    (tmp_path / "drop").mkdir()
    code, _, _ = cli("--store", store, "sources", "add", tmp_path / "drop", "--json")
    assert code == 0 and load_config(store).gate == GatePolicy()
    config_path(store).unlink()
    for reading in (["sources", "list"], ["ingest", tmp_path / "drop", "--label", "real", "--dry-run"]):
        assert cli("--store", store, *reading, "--json")[0] == 0 and not config_path(store).exists(), reading


def test_the_policy_in_force_and_its_hash_are_stored_with_the_decision(proxy_store, cli, monkeypatch):
    store, _ = proxy_store
    config_path(store).write_text("[gate]\nauroc_floor = 0.99\ntpr_floor = 0.98\n")
    monkeypatch.setenv("SYNTHWATCH_GATE__CONFIDENCE", "0.95")
    code, trained, err = cli("--store", store, "train", "--n-boot", "100", "--no-robustness", "--json")
    assert code == 3, err  # the file's floors are out of reach of this proxy: rejected, exit 3
    expected = GatePolicy(auroc_floor=0.99, tpr_floor=0.98, confidence=0.95)
    assert trained["policy"] == expected.as_dict() and trained["policy_sha256"] == expected.digest
    assert any(c["name"].startswith("held_out_auroc_floor") and c["threshold"] == 0.99 for c in trained["checks"])
    _, shown, _ = cli("--store", store, "models", "show", trained["version"], "--json")
    assert shown["gate"]["policy"] == expected.as_dict() and shown["gate"]["policy_sha256"] == expected.digest


def test_deploy_and_run_hand_the_flows_only_the_flags_given(store):
    """What `deploy` and `run` pass on (``given_settings``): the flows read the rest from the file
    when each run starts, so an edited file takes effect without redeploying."""
    store.mkdir()
    config_path(store).write_text(STRICT)
    for command in ("deploy", "run"):
        args = _resolved(store, command, "--tpr-floor", "0.2")
        assert args.given_settings == {"gate": {"tpr_floor": 0.2}} and args.backbone is None


def test_flows_read_the_file_and_a_partial_gate_given_to_them_overrides_only_its_keys(store):
    from synthwatch.flows.tasks import policy_in_force

    store.mkdir()
    config_path(store).write_text(STRICT)
    gate, alpha = policy_in_force(str(store), None, None)
    assert (gate["auroc_floor"], gate["tpr_floor"], alpha) == (0.9, 0.3, 0.05)
    gate, alpha = policy_in_force(str(store), {"auroc_floor": 0.0}, 0.2)
    assert (gate["auroc_floor"], gate["tpr_floor"], alpha) == (0.0, 0.3, 0.2)


def test_every_command_prints_its_help(capsys):
    """Help texts are %-formatted by argparse: one stray percent sign breaks a command's --help."""
    from synthwatch.cli import main

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 (argparse keeps them there only)
    paths = []
    for name, sub in commands.items():
        nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]  # noqa: SLF001
        paths += [[name, child] for child in nested[0].choices] if nested else [[name]]
    for path in paths:
        with pytest.raises(SystemExit) as done:
            main([*path, "--help"])
        assert done.value.code == 0, path
        assert "usage: synthwatch" in capsys.readouterr().out
