"""The shape of the code (docs/ARCHITECTURE.md): layers, no import cycles, small modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> the package it is installed as (pyproject.toml's wheel.packages)
PACKAGES = {"radlite_edge": "radlite_edge", "convert": "radlite_edge.convert", "bench": "radlite_edge.bench",
            "finetune": "radlite_edge.finetune"}
AREAS = ("radlite_edge.convert", "radlite_edge.bench", "radlite_edge.finetune", "radlite_edge.cli")
ORCHESTRATION = ("radlite_edge.cli", "radlite_edge.demo")  # may import every layer
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> set[str]:
    """The project modules ``module`` imports when it is imported (module-level statements only)."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            submodules = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            found |= submodules  # `from . import x` imports module x
            if len(submodules) < len(node.names):  # names defined in target itself
                found.add(target)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: _imports(m) for m in MODULES}


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n] if n in path else [m, n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])


def _layer(module: str) -> str:
    return next((a for a in AREAS if module == a or module.startswith(a + ".")), "core")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith(ORCHESTRATION)))
def test_layers(module):
    """The core imports no area; convert imports only the core; bench the core and convert."""
    allowed = {"core": {"core"}, "radlite_edge.convert": {"core", "radlite_edge.convert"},
               "radlite_edge.bench": {"core", "radlite_edge.convert", "radlite_edge.bench"},
               "radlite_edge.finetune": {"core", "radlite_edge.finetune"}}[_layer(module)]
    for m in GRAPH[module]:
        assert m == "radlite_edge" or _layer(m) in allowed, f"{module} imports {m}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_read_in_a_sitting(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)}: {n} lines"


def test_the_registry_holds_the_nine_published_tasks_in_order():
    from radlite_edge.tasks import TASKS
    from radlite_edge.tasks.labels import TASK_NAMES

    assert tuple(TASKS) == TASK_NAMES


def test_the_wheel_maps_only_product_folders():
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["scikit-build"]["wheel"]["packages"]
    assert set(packages.values()) == set(PACKAGES)


def test_the_product_imports_no_study():
    """benchmarks/ is not installed: no installed module may import it, even lazily."""
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            assert not any(n == "benchmarks" or n.startswith("benchmarks.") for n in names), f"{module} imports {names}"
