"""The import graph of pycro_gpu: no cycle between modules, no private name used outside its package.

The graph is built from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of a ``pycro_gpu`` module, at module level and inside functions, relative imports
resolved. A *package* is a directory of ``pycro_gpu`` (the top-level modules belong to the package
``pycro_gpu``).

* Cycles: only module-level imports count (an import inside a function runs after every module has
  loaded). An edge to a package's ``__init__`` that merely re-exports does not hide a cycle: the edge
  goes to the module that ``from package import name`` resolves ``name`` to when ``name`` is a
  sub-module.
* Privacy: a name or module that starts with ``_`` belongs to the package that holds it; importing it
  from a module outside that package (and its sub-packages) fails. ``pycro_gpu._lib`` is the shared
  private package: its modules are visible to every package of ``pycro_gpu``, the ``_x`` names inside
  them are not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ROOT = "pycro_gpu"
#: package directory -> dotted name (kernels/ ships as pycro_gpu.kernels)
SOURCES = {REPO_ROOT / "pycro_gpu": ROOT, REPO_ROOT / "kernels": f"{ROOT}.kernels"}


def _modules() -> dict[str, Path]:
    mods = {}
    for top, name in SOURCES.items():
        for path in sorted(top.rglob("*.py")):
            parts = list(path.relative_to(top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([name, *parts])] = path
    return mods


MODULES = _modules()


def _package(module: str) -> str:
    """The package a module belongs to (itself for a package's ``__init__``)."""
    return module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def _imports(module: str) -> list[tuple[str, str | None, int, bool]]:
    """(imported module, imported name or None, line, module level) for every pycro_gpu import."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    # imports under `if TYPE_CHECKING:` / try blocks at module level still run at import time
    for node in tree.body:
        if isinstance(node, (ast.If, ast.Try)):
            top_level |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        level = id(node) in top_level
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno, level) for a in node.names if a.name.split(".")[0] == ROOT]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(module).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != ROOT:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    out.append((sub, None, node.lineno, level))
                else:
                    out.append((target, alias.name, node.lineno, level))
    return out


IMPORTS = {m: _imports(m) for m in MODULES}


def _owner(dotted: list[str], i: int) -> str:
    """The package that owns the private component ``dotted[i]`` (a module, a package or a name)."""
    parent = ".".join(dotted[:i])
    if parent in MODULES and MODULES[parent].name != "__init__.py":
        parent = parent.rsplit(".", 1)[0]  # a name inside a module: the module's package
    return parent


def _within(module: str, package: str) -> bool:
    pkg = _package(module)
    return pkg == package or pkg.startswith(package + ".")


def test_graph_is_built():
    assert len(MODULES) > 40
    engine = IMPORTS[f"{ROOT}.process._engine"]
    assert any(t == f"{ROOT}.io.usid" and level for t, _name, _line, level in engine)


def _private_violations(module: str) -> list[str]:
    """Imports of ``module`` that reach a private module or name of a package it is not part of."""
    bad = []
    for target, name, line, _level in IMPORTS[module]:
        dotted = target.split(".") + ([name] if name else [])
        private = [i for i, part in enumerate(dotted) if part.startswith("_") and not part.startswith("__")]
        if any(not _within(module, _owner(dotted, i)) for i in private):
            bad.append(f"{MODULES[module].name}:{line}: {'.'.join(dotted)}")
    return bad


def test_no_private_name_imported_from_another_package():
    bad = [f"{m}: {b}" for m in MODULES for b in _private_violations(m)]
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)


def _cycles() -> list[list[str]]:
    graph = {m: sorted({t for t, _n, _l, level in IMPORTS[m] if level and t in MODULES}) for m in MODULES}
    # Tarjan's strongly connected components
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    cycles = _cycles()
    assert not cycles, "module-level import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    ("source", "n_bad"),
    [
        ("from pycro_gpu.decomposition._svd import _usid", 1),  # private module and name of a package
        ("from pycro_gpu.decomposition import svd", 0),
        ("from pycro_gpu._lib.linalg import herm", 0),  # public name of the shared private package
        ("from pycro_gpu._lib.linalg import _x", 1),  # its private names stay inside _lib
        ("from .._config import budget_mb", 0),  # a private module of the root package
        ("from ._attrs import _decode", 0),  # private names within one package
    ],
)
def test_privacy_rule(source, n_bad, monkeypatch, tmp_path):
    # the rule applied to one import written in a module of the package pycro_gpu.io.usid
    module = f"{ROOT}.io.usid._probe"
    path = tmp_path / "_probe.py"
    path.write_text(source + "\n")
    monkeypatch.setitem(MODULES, module, path)
    monkeypatch.setitem(IMPORTS, module, _imports(module))
    assert len(_private_violations(module)) == n_bad
