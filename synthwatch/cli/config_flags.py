"""The store's synthwatch.toml on the command line: `init` writes it, and every flag it holds
that a command was not given is filled from it (flags > SYNTHWATCH_* variables > file > defaults)."""

from __future__ import annotations

import argparse

from synthwatch.store.errors import StoreError
from synthwatch.cli.output import print_json
from synthwatch.settings import Settings

# argparse dest -> key in synthwatch.toml (a table and its key for the gate)
CONFIG_FLAGS = {
    "target_fpr": ("target_fpr",), "alpha": ("alpha",), "max_train": ("max_train",),
    **{name: ("gate", name) for name in ("auroc_floor", "tpr_floor", "regression_tolerance", "tpr_tolerance",
                                         "confidence", "correction", "fpr_bound")},
}
EMBEDDING_COMMANDS = ("embed", "run", "deploy", "benchmark")  # their --backbone defaults to the file's
WRITING_COMMANDS = ("ingest", "embed", "index", "train", "retrain", "run", "deploy", "benchmark", "demo", "sources")


def apply_store_config(args: argparse.Namespace, settings: Settings) -> None:
    """Fill each settings flag of this command that was not given from the settings in force."""
    dests = [dest for dest in CONFIG_FLAGS if hasattr(args, dest)]
    if args.command == "evaluate" and not args.learning_curve:
        dests = [dest for dest in dests if CONFIG_FLAGS[dest][0] != "gate"]  # floors only mean something there
    fills_backbone = args.command in EMBEDDING_COMMANDS
    if not dests and not fills_backbone:
        return
    from synthwatch.embeddings.registry import DEFAULT_BACKBONE
    from synthwatch.heads.config import load_config

    overrides: dict = {}
    for dest in dests:
        if getattr(args, dest) is not None:
            *tables, key = CONFIG_FLAGS[dest]
            target = overrides
            for table in tables:
                target = target.setdefault(table, {})
            target[key] = getattr(args, dest)
    if fills_backbone and args.backbone:
        overrides["backbone"] = args.backbone
    config = load_config(settings.store_root, overrides)
    for dest in dests:
        value = config
        for part in CONFIG_FLAGS[dest]:
            value = getattr(value, part)
        setattr(args, dest, value)
    if fills_backbone:
        args.backbone = config.backbone or (DEFAULT_BACKBONE if args.command == "embed" else None)


def write_config_after(args: argparse.Namespace, settings: Settings) -> None:
    """After a command that writes to the store, give the store its synthwatch.toml if it has none."""
    if args.command in WRITING_COMMANDS and settings.layout.exists():
        from synthwatch.heads.config import write_default_config

        write_default_config(settings.store_root)


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
