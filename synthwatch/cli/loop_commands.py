"""The whole-job commands: demo, benchmark, run, sources and deploy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthwatch.store.errors import StoreError
from synthwatch.cli.model_commands import gate_exit_code
from synthwatch.cli.output import print_comparison, print_decision, print_drift, print_json, print_notes
from synthwatch.settings import Settings


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.flows.reaper import reap_children_on_exit
    from synthwatch.demo import DemoOptions, run_demo

    reap_children_on_exit()  # Prefect's temporary server must not outlive a killed demo
    say = (lambda message: print(message, file=sys.stderr)) if args.json else print
    result = run_demo(settings.layout, DemoOptions(data=Path(args.data).resolve(), seed=args.seed,
                                                   backbone=args.backbone), say=say)
    if args.json:
        print_json(result)
    return 0


def cmd_benchmark(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.benchmark import BenchmarkOptions, run_benchmark
    from synthwatch.cli.model_commands import train_options
    from synthwatch.embeddings.engine import EngineOptions

    say = (lambda message: print(message, file=sys.stderr)) if args.json else print
    options = BenchmarkOptions(
        preset=args.preset, data=Path(args.data) if args.data else None, head=args.head, backbone=args.backbone,
        allow_random_weights=args.allow_random_weights, report=Path(args.report) if args.report else None,
        train=train_options(args), engine=EngineOptions(workers=args.workers, device=args.device))
    result = run_benchmark(settings.layout, options, say=say)
    if args.json:
        print_json(result)
        return 0
    print_notes(result["notes"])
    if result["comparison"] is None:
        print(f"no published numbers are shipped for {result['preset']}")
    else:
        print_comparison(result["comparison"], result["references"])
    print(f"report: {result['report']} (numbers: {result['report_json']})")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.flows.cycle import continual_flow
    from synthwatch.flows.reaper import reap_children_on_exit

    reap_children_on_exit()  # Prefect's temporary server must not outlive a killed run
    given = args.given_settings  # the flow reads the rest from synthwatch.toml
    result = continual_flow(store=str(settings.store_root), backbone=args.backbone,
                            allow_random_weights=args.allow_random_weights, dask_address=args.dask,
                            gate=given.get("gate"), alpha=given.get("alpha"))
    if args.json:
        print_json(result)
    else:
        print(f"cycle: ingested {result['ingested']}, embedded {result['embedded']}, new generators: "
              f"{', '.join(result['new_generators']) or 'none'}")
        print_drift(result["drift"])
        if result["retrained"]:
            print(f"retrained ({'; '.join(result['retrain_wanted'])}): candidate {result['candidate']}")
            print_decision(result)
            for line in result["learning_curve_lines"]:
                print(f"learning curve: {line}")
        else:
            print(f"no retraining needed; champion: {result['champion']}")
    return gate_exit_code(result["decision"])


def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.store.watched import add_source, list_sources, remove_source

    if args.sources_command == "add":
        watched = add_source(settings.layout, args.location, label=args.label, generator=args.generator,
                             source=args.source, cron=args.schedule, every=args.every)
        payload = watched.as_dict()
    elif args.sources_command == "remove":
        if not remove_source(settings.layout, args.location):
            raise StoreError(f"Expected a watched source, but {args.location} is not one. See `synthwatch sources list`.")
        payload = {"removed": args.location}
    else:
        payload = {"sources": [s.as_dict() for s in list_sources(settings.layout)]}
    if args.json:
        print_json(payload)
    elif args.sources_command == "list":
        for source in payload["sources"]:
            print(f"{source['kind']:<8} {source['uri']}  ({_when(source)})")
    elif args.sources_command == "add":
        labels = f"; every image {payload['label']}" + (f" from {payload['generator']}" if payload["generator"] else "") \
            if payload["label"] else ""
        print(f"watching {payload['kind']} {payload['uri']} ({_when(payload)}{labels})")
    else:
        print(f"no longer watching {payload['removed']}")
    return 0


def _when(source: dict) -> str:
    return (f"cron {source['cron']}" if source["cron"] else f"every {source['every_s']} s" if source["every_s"]
            else "on each cycle")


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.flows.deploy import serve_store

    given = args.given_settings  # the rest is read from synthwatch.toml when each run starts
    serve_store(str(settings.store_root), backbone=args.backbone, allow_random_weights=args.allow_random_weights,
                dask_address=args.dask, gate=given.get("gate"), alpha=given.get("alpha"))
    return 0
