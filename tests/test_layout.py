"""The layout docs/ARCHITECTURE.md describes, checked: layers import downwards only, no
import cycle inside tune/, modules small enough to read, errors under one base class, and
mlflow/ holding no Python (it would shadow the installed mlflow)."""

from __future__ import annotations

import ast
import inspect
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: One concept that reads better whole may pass 400 lines; nothing passes 600.
MAX_LINES, HARD_MAX_LINES = 420, 600


def _modules(package: str) -> dict[str, Path]:
    folder = ROOT / package
    out = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """Modules of this project that ``path`` imports (at any depth: function bodies too)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in ("tgo", "tune")}


def _graph() -> dict[str, set[str]]:
    modules = {**_modules("tgo"), **_modules("tune")}
    return {name: {m for m in _imports(path, name) if m in modules and m != name}
            for name, path in modules.items()}


def test_the_library_imports_nothing_of_the_sweep_layer():
    graph = _graph()
    offenders = {m: sorted(d for d in deps if d.startswith("tune"))
                 for m, deps in graph.items() if m.startswith("tgo")}
    assert {m: d for m, d in offenders.items() if d} == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles of ``graph`` (module -> modules it imports), by depth-first search."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1                      # on the current path
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2                      # done

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycle_inside_tune():
    graph = {m: {d for d in deps if d.startswith("tune")} for m, deps in _graph().items()
             if m.startswith("tune")}
    # A package importing its own submodules (re-exports) is not a cycle of concepts.
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    assert len(graph) > 30
    assert _cycles(graph) == []


def test_the_cycle_check_can_fail(tmp_path):
    """Two modules importing each other (one inside a function) make a reported cycle."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from tune import b_mod\n")
    b.write_text("def f():\n    import tune.a_mod\n")
    graph = {"tune.a_mod": _imports(a, "tune.a_mod") - {"tune"},
             "tune.b_mod": _imports(b, "tune.b_mod")}
    assert _cycles(graph) == [["tune.a_mod", "tune.b_mod", "tune.a_mod"]]


@pytest.mark.parametrize("package", ["tgo", "tune"])
def test_modules_are_small_enough_to_read(package):
    sizes = {name: len(path.read_text().splitlines())
             for name, path in _modules(package).items()}
    assert {n: s for n, s in sizes.items() if s > HARD_MAX_LINES} == {}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_every_project_error_derives_from_tgo_error():
    import importlib

    from tgo.errors import TgoError

    found = []
    for name in {**_modules("tgo"), **_modules("tune")}:
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name \
                    and not obj.__name__.startswith("_"):
                found.append(obj)
    assert len(found) >= 8
    assert [e.__qualname__ for e in found if not issubclass(e, TgoError)] == []
    assert all(issubclass(e, (ValueError, RuntimeError, ArithmeticError)) for e in found
               if e is not TgoError)


def test_mlflow_folder_holds_no_python():
    assert not list((ROOT / "mlflow").rglob("*.py"))
    assert not [m for m in pkgutil.iter_modules([str(ROOT)]) if m.name == "mlflow"]
