"""The commands on production traffic: discover (groups of unfamiliar fakes in the prediction log)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from synthwatch.api import Store
from synthwatch.cli.output import print_json
from synthwatch.settings import Settings


def cmd_discover(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.store.watched import parse_duration

    since = timedelta(seconds=parse_duration(args.since))
    result = Store(settings.store_root).discover(since=since, near=args.near, min_group=args.min_group,
                                                 alpha=args.alpha)
    if args.report:
        from synthwatch.heads.discovery import kept_thumbnails
        from synthwatch.heads.report import write_discovery_report

        context = {"store": str(settings.store_root), "window": args.since, "backbone": result.get("backbone_id")}
        html_path, json_path = write_discovery_report(Path(args.report), result, context,
                                                      lambda ids: kept_thumbnails(settings.layout, ids))
        result.update(report=str(html_path.resolve()), report_json=str(json_path.resolve()))
    if args.json:
        print_json(result)
        return 0
    window = result["window"]
    print(f"discovery over {window['images']} answers from {window['from'][:19]} to {window['to'][:19]} UTC: "
          f"{result['candidates']} scored synthetic or near the threshold, {result['unclustered']} in no group")
    if result.get("reason"):
        print(f"  {result['reason']}")
    for group in result["groups"] + result["familiar_groups"]:
        title = {True: "unfamiliar", False: "familiar", None: "untested"}[group["unfamiliar"]]
        print(f"  {title:<10} {group['group']}  {group['size']:4d} images, nearest {group['nearest_generator'] or '-'} "
              f"at {_number(group['reference_distance'])} (its own fakes: {_number(group['generator_spread'])}), "
              f"p {_number(group['p_value'])}, {group['kept_uploads']} kept")
    if result["groups"]:
        print(f"name one and ingest it: synthwatch ingest --from-discovery {result['groups'][0]['group']} "
              "--generator NAME")
    if args.report:
        print(f"report: {result['report']} (numbers: {result['report_json']})")
    return 0


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
