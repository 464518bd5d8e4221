"""The rooms' layering and names: synthwatch > flows > heads > embeddings > store, no import
circles, and one installed top-level name."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"store": 0, "embeddings": 1, "heads": 2, "flows": 3, "synthwatch": 4}
# The named exceptions to the layering: (importing module, imported module) and why.
ALLOWED_UPWARD = {
    ("synthwatch.store.ingest", "synthwatch.embeddings.decode"): "ingest validates images with the safe decoder",
    ("synthwatch.store.remote", "synthwatch.embeddings.decode"): "staged objects are validated with the safe decoder",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for room in LAYERS:
        for path in sorted((ROOT / room).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join(parts if parts[0] == "synthwatch" else ["synthwatch", *parts])] = path
    return modules


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "synthwatch"


def test_rooms_import_only_downwards_and_never_by_their_bare_names():
    modules = _modules()
    upward, bare = [], []
    for name, path in modules.items():
        for imported in _imports(path):
            if imported.split(".")[0] in LAYERS and imported.split(".")[0] != "synthwatch":
                bare.append(f"{name} imports {imported}")
            target = max((m for m in modules if imported == m or imported.startswith(m + ".")), key=len, default=None)
            if target and LAYERS[_room(target)] > LAYERS[_room(name)] and (name, target) not in ALLOWED_UPWARD:
                upward.append(f"{name} imports {target}")
    assert bare == [], "import the rooms as synthwatch.<room>"
    assert upward == [], "a room imports one above it; name the exception in ALLOWED_UPWARD or move the code"


def test_no_import_circles():
    modules = _modules()
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []


def test_the_project_installs_under_one_name_with_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    assert {name.split(".")[0] for name in packages} == {"synthwatch"}
    wanted = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert packages == wanted
    assert config["package-dir"] == {f"synthwatch.{room}": room for room in LAYERS if room != "synthwatch"}
    data = {(package, name) for package, names in config.get("package-data", {}).items() for name in names}
    folders = {name: path.parent for name, path in _modules().items() if path.name == "__init__.py"}
    shipped = {(name, file.name) for name, folder in folders.items() for file in folder.iterdir()
               if file.is_file() and file.suffix not in (".py", ".pyc")}
    assert data == shipped, "every data file a package reads is listed in [tool.setuptools.package-data]"
