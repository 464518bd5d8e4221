"""The docs' command-line and HTTP references: generated from the parser and the service's schema,
committed as generated, and covering every command, flag and endpoint with a description."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from synthwatch import reference
from synthwatch.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
REGENERATE = "Run `make docs` (python -m synthwatch.reference docs/reference) and commit docs/reference/."


def _every_parser(parser: argparse.ArgumentParser, name: str = "synthwatch"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _every_parser(sub, f"{name} {sub_name}")


def _section(markdown: str, heading: str) -> str:
    """The text under one ``## heading`` of a reference page, up to the next heading of that level."""
    start = markdown.index(f"\n## {heading} {{#")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end != -1 else None]


def test_the_committed_references_are_what_the_code_generates():
    for name, generated in ((reference.CLI_FILE, reference.cli_markdown()),
                            (reference.HTTP_FILE, reference.http_markdown())):
        committed = (REFERENCE / name).read_text(encoding="utf-8")
        assert committed == generated, f"docs/reference/{name} is out of date with the code. {REGENERATE}"


def test_every_command_and_flag_has_an_entry_with_a_description():
    markdown = (REFERENCE / reference.CLI_FILE).read_text(encoding="utf-8")
    missing = []
    for name, parser in _every_parser(build_parser()):
        try:
            section = _section(markdown, name)
        except ValueError:
            missing.append(f"{name}: no section")
            continue
        if name != "synthwatch" and len(section.split("```")[0].split("\n", 2)[-1].strip()) < 10:
            missing.append(f"{name}: no description")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = action.option_strings[0] if action.option_strings else (action.metavar or action.dest)
            rows = [line for line in section.splitlines() if line.startswith(f"| `{label.replace('|', chr(92) + '|')}")]
            if not rows:
                missing.append(f"{name} {label}: no row")
            elif not rows[0].split(" | ")[1].strip():
                missing.append(f"{name} {label}: no description (give it help=)")
    assert missing == [], missing


def test_every_route_of_the_service_has_an_entry_with_a_description():
    markdown = (REFERENCE / reference.HTTP_FILE).read_text(encoding="utf-8")
    app = reference.service_app()
    routes = [(method, route.path) for route in app.routes if isinstance(route, APIRoute)
              for method in route.methods]
    assert len(routes) >= 12
    missing = []
    for method, path in routes:
        heading = f"{method} {path} {{#"
        if f"## {heading}" not in markdown and f"### {heading}" not in markdown:
            missing.append(f"{method} {path}: no entry")
            continue
        after = markdown.split(heading, 1)[1].split("\n", 2)[2]
        if not after.strip() or after.lstrip().startswith(("|", "#")):
            missing.append(f"{method} {path}: no description (give its function a docstring)")
    assert missing == [], missing


def test_a_flag_without_help_is_reported_by_name():
    parser = argparse.ArgumentParser(prog="synthwatch")
    commands = parser.add_subparsers(dest="command")
    command = commands.add_parser("probe", help="a command")
    command.add_argument("--silent")
    command.add_argument("--told", help="has help (default %(default)s)", default=3)
    found = {c.name: c for c in reference.commands(parser)}
    flags = {flag.names: flag for flag in found["synthwatch probe"].flags}
    assert flags["--silent SILENT"].help == "" and flags["--told TOLD"].help == "has help (default 3)"
    assert "| `--told TOLD` | has help (default 3) | `3` |" in reference.cli_markdown(list(found.values()))


def test_the_writer_refuses_a_wrong_call_with_what_to_run(tmp_path):
    answer = subprocess.run([sys.executable, "-m", "synthwatch.reference"], capture_output=True, text=True)
    assert answer.returncode == 2 and "python -m synthwatch.reference docs/reference" in answer.stderr
    assert reference.main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted((reference.CLI_FILE, reference.HTTP_FILE))


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is not installed in this environment")
def test_the_docs_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    built = subprocess.run([mkdocs, "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert {"index.html", "reference/cli/index.html", "reference/http/index.html", "limitations/index.html"} <= pages


def test_the_readme_is_short_starts_with_the_two_commands_and_links_to_files_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move detail into docs/ (at most 250)"
    first = "\n".join(lines[:40])
    assert "make demo\nmake test" in first, "the quick start's two commands must be in the README's first 40 lines"
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets and [t for t in targets if "://" not in t and not (ROOT / t).exists()] == []
