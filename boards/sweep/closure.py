"""The design a sweep's records belong to: the hash of every project source a build or an activity run imports.

Module names are mapped to files with the package folders of ``pyproject.toml`` (``[tool.setuptools]
package-dir``), the one place that says where ``qlif.hw`` and the others live, and imports are read
with :mod:`ast`, so the answer does not depend on what this process happens to have imported.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import tomllib
from collections.abc import Iterable
from pathlib import Path

from qlif.golden.spec.files import ROOT

__all__ = ["HASH_ROOTS", "package_dirs", "module_file", "source_closure", "hash_files", "design_hash"]

#: What builds and activity runs depend on: the board flow, the RTL, the activity measurement and the
#: cocotb test it runs (named by a string in the runner, so listed here).
HASH_ROOTS = ("boards/flow/build.py", "hw/verilog.py", "sim/activity.py", "sim/cocotb_network.py")


@functools.cache
def package_dirs() -> dict[str, Path]:
    """Package -> its folder, from ``pyproject.toml``'s ``package-dir``, the most specific package first."""
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {pkg: ROOT / folder for pkg, folder in sorted(dirs.items(), key=lambda item: -len(item[0]))}


def module_file(module: str) -> Path | None:
    """The project file of ``module`` (``qlif.hw.network`` -> ``hw/network.py``), or None if it has none."""
    for package, folder in package_dirs().items():
        if module == package or module.startswith(package + "."):
            base = folder.joinpath(*module[len(package):].lstrip(".").split(".")) if module != package else folder
            return next((c for c in (base.with_suffix(".py"), base / "__init__.py") if c.is_file()), None)
    return None


def _imported(path: Path) -> Iterable[str]:
    """Every module name an ``import`` in ``path`` may mean (``from a import b``: ``a`` and ``a.b``)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""       # qlif imports absolutely (tests/test_layers.py)
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)


def source_closure(roots: Iterable[str] = HASH_ROOTS) -> list[Path]:
    """The project's source files that ``roots`` (paths relative to the project) import, directly or not."""
    seen: set[Path] = set()
    todo = [ROOT / r for r in roots]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        todo += [f for f in map(module_file, _imported(path)) if f is not None]
    return sorted(seen)


def hash_files(paths: Iterable[Path]) -> str:
    """Content hash of files (names relative to the project, and contents)."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def design_hash() -> str:
    """Hash of every source a build or an activity run depends on (:func:`source_closure`): a change to
    the RTL, a board top or the testbench invalidates the sweep's records, and nothing else does."""
    return hash_files(source_closure())
