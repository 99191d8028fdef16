"""The layers of docs/architecture.md import only downwards, without cycles, and torch stays out of the bottom."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Layer -> (module prefixes, layers it may import): the table of docs/architecture.md, "Map of the code".
#: The most specific prefix decides a module's layer.
LAYERS = {
    "spec": (("qlif.golden.spec",), set()),
    "data": (("qlif.golden.data",), {"spec"}),
    "training": (("qlif.golden.training",), {"spec", "data"}),
    "hw": (("qlif.hw",), {"spec"}),
    "protocol": (("qlif.boards.protocol",), set()),
    "host": (("qlif.boards.host",), {"spec", "protocol"}),
    "link": (("qlif.boards.link",), {"spec", "hw", "protocol"}),
    "tops": (("qlif.boards.tops",), {"spec", "hw", "protocol", "link"}),
    "flow": (("qlif.boards.flow",), {"spec", "hw", "protocol", "link", "tops"}),
    "sim": (("qlif.sim",), {"spec", "data", "hw", "protocol", "host", "link", "tops", "flow"}),
    "sweeps": (("qlif.boards.sweep",), {"spec", "data", "hw", "protocol", "host", "link", "tops", "flow", "sim"}),
    "cli": (("qlif.cli", "qlif.clitools", "qlif.demo", "qlif.commands"),
            {"spec", "data", "training", "hw", "protocol", "host", "link", "tops", "flow", "sim", "sweeps"}),
}
#: Package roots above the layers: they hold no code and import nothing of the project.
ROOTS = ("qlif", "qlif.golden", "qlif.boards")
#: Libraries that the specification and the RTL must not pull in (checked in a fresh interpreter).
HEAVY = ("torch", "snntorch", "sklearn")


def modules() -> dict[str, Path]:
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    out = {}
    for pkg, folder in dirs.items():
        for f in (ROOT / folder).rglob("*.py"):
            parts = [p for p in f.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    return out


def layer_of(module: str) -> str:
    matches = [(len(p), name) for name, (prefixes, _) in LAYERS.items() for p in prefixes
               if module == p or module.startswith(p + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md")
    return max(matches)[1]


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body (function-level imports included)."""
    graph = {}
    for name, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                raise AssertionError(f"{name}: relative import; qlif imports absolutely")
        graph[name] = {m for m in found if m in mods and m != name}
    return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
    bad = [f"{root} is a package root and imports {sorted(graph[root])}" for root in ROOTS if graph.get(root)]
    graph = {m: {d for d in deps if d not in ROOTS} for m, deps in graph.items() if m not in ROOTS}
    bad += [f"{a} ({layer_of(a)}) imports {b} ({layer_of(b)})" for a, bs in sorted(graph.items()) for b in sorted(bs)
           if layer_of(b) != layer_of(a) and layer_of(b) not in LAYERS[layer_of(a)][1]]
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        bad.append("import cycle: " + " -> ".join(e.args[1]))
    return bad


def test_imports_go_down_the_layers():
    assert violations(import_graph(modules())) == []


@pytest.mark.parametrize("importer, imported", [
    ("qlif.golden.spec.model", "qlif.golden.training.train"),       # spec reaching up to torch training
    ("qlif.hw.layer", "qlif.boards.link.host_link"),                 # the core knowing the host link
    ("qlif.golden.spec.cycles", "qlif.golden.spec.reference"),      # a cycle inside one layer
    ("qlif.golden", "qlif.golden.training.train"),                  # a package root that loads torch
])
def test_an_injected_back_import_fails(importer, imported):
    graph = import_graph(modules())
    graph[importer].add(imported)
    assert violations(graph)


def test_specification_and_rtl_do_not_load_torch():
    mods = [m for m in modules() if m not in ROOTS and layer_of(m) in ("spec", "hw")]
    code = (f"import importlib, sys\nfor m in {mods!r}: importlib.import_module(m)\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"imported by the specification or hw: {out.stdout.strip()}"
