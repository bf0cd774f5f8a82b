"""Scripts of the repository (benchmarks/, cluster/) loaded as modules, for their tests."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str) -> ModuleType:
    """Execute ``ROOT/relative`` as module ``name`` (registered in ``sys.modules``:
    dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def script_module(relative: str, name: str) -> Iterator[ModuleType]:
    """:func:`load_script` for the duration of a ``with`` block (a module fixture)."""
    try:
        yield load_script(relative, name)
    finally:
        sys.modules.pop(name, None)
