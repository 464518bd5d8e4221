"""The store's synthwatch.toml on the command line: `init` writes it, and every flag it holds
that a command was not given is filled from it (flags > SYNTHWATCH_* variables > file > defaults)."""

from __future__ import annotations

import argparse

from synthwatch.store.errors import StoreError
from synthwatch.cli.output import print_json
from synthwatch.settings import Settings

# argparse dest -> key in synthwatch.toml (a table and its key for the gate)
CONFIG_FLAGS = {
    "target_fpr": ("target_fpr",), "alpha": ("alpha",), "max_train": ("max_train",), "max_eval": ("max_eval",),
    **{name: ("gate", name) for name in ("auroc_floor", "tpr_floor", "regression_tolerance", "tpr_tolerance",
                                         "confidence", "correction", "fpr_bound")},
}
WRITING_COMMANDS = ("ingest", "embed", "index", "train", "retrain", "run", "deploy", "benchmark", "demo", "sources")


def apply_store_config(args: argparse.Namespace, settings: Settings) -> None:
    """Fill each settings flag of this command that was not given from the settings in force;
    ``args.given_settings`` keeps what was given (the flows, which read the file when each run
    starts, get only that)."""
    dests = [dest for dest in CONFIG_FLAGS if hasattr(args, dest)]
    if args.command == "evaluate" and not args.learning_curve:
        dests = [dest for dest in dests if CONFIG_FLAGS[dest][0] != "gate"]  # floors only mean something there
    given: dict = {}
    for dest in dests:
        if getattr(args, dest) is not None:
            *tables, key = CONFIG_FLAGS[dest]
            target = given
            for table in tables:
                target = target.setdefault(table, {})
            target[key] = getattr(args, dest)
    args.given_settings = given
    fills_backbone = args.command == "benchmark" and not args.backbone  # the flows and `embed` read it themselves
    if not dests and not fills_backbone:
        return
    from synthwatch.heads.config import load_config

    config = load_config(settings.store_root, given)
    for dest in dests:
        value = config
        for part in CONFIG_FLAGS[dest]:
            value = getattr(value, part)
        setattr(args, dest, value)
    if fills_backbone:
        args.backbone = config.backbone


def write_config_after(args: argparse.Namespace, settings: Settings) -> None:
    """After a command that wrote to the store, give the store its synthwatch.toml if it has none."""
    reads_only = getattr(args, "dry_run", False) or getattr(args, "sources_command", None) == "list"
    if args.command not in WRITING_COMMANDS or reads_only or not settings.layout.exists():
        return
    from synthwatch.heads.config import config_path, write_default_config

    try:
        write_default_config(settings.store_root)
    except OSError as error:
        raise StoreError(f"Expected to write {config_path(settings.store_root)} (the store's settings), but "
                         f"could not ({error.strerror or error}). Make the store writable, or run "
                         "`synthwatch init` where it is.") from None


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.heads.config import config_path, default_config_text, load_config, write_default_config

    if args.print:
        print(default_config_text(), end="")
        return 0
    path = config_path(settings.store_root)
    if path.exists() and not args.force:
        raise StoreError(f"Expected a store without settings, but {path} exists. Edit it, or pass --force to "
                         "write the defaults over it.")
    settings.layout.ensure_writable()
    write_default_config(settings.store_root, backbone=args.backbone, replace=True)
    config = load_config(settings.store_root)
    if args.json:
        print_json({"config": str(path), "settings": config.as_dict(), "policy_sha256": config.gate.digest})
    else:
        print(f"wrote {path}: the settings every command of this store uses unless a flag or a SYNTHWATCH_* "
              "variable says otherwise")
    return 0
