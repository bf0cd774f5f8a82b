"""Reading a spec file: the spec's YAML rules (``1e-3`` is a float, a duplicate key is an
error), :func:`read_yaml` for the mapping as written and :func:`load_spec` for the
validated spec.

Example:
    >>> read_yaml("examples/digits-quick.yaml")["name"]
    'digits-quick'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from tune.spec._errors import SpecError
from tune.spec.schema import SweepSpec

__all__ = ["SPEC_FILE", "load_spec", "read_yaml"]

#: The spec as a sweep saved it beside its Ray results (``<storage_path>/<name>/``).
SPEC_FILE = "sweep_spec.yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.2) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if (type(key), key) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add((type(key), key))
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping a YAML spec file holds, as written (not validated), read under the
    spec's YAML rules; every problem is a :class:`SpecError`.

    Example:
        >>> read_yaml("examples/digits-quick.yaml")["num_samples"]
        8
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"no such file (relative paths start at {os.getcwd()})"], source,
                        "cannot read the sweep spec") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"expected a readable UTF-8 file, got {exc}"], source,
                        "cannot read the sweep spec") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"{where}expected valid YAML, got {what}"], source,
                        "cannot parse the sweep spec") from None
    except RecursionError:   # PyYAML composes nested nodes recursively
        raise SpecError(["expected valid YAML, got nesting deeper than Python's recursion "
                         "limit"], source, "cannot parse the sweep spec") from None
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError([f"expected a mapping of spec fields at the top level, got {got}"],
                        source)
    return data


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a YAML sweep spec; every problem is a :class:`SpecError`. Where
    results go is left as written: :meth:`SweepSpec.resolved` makes it concrete.

    Example:
        >>> load_spec("examples/digits-quick.yaml").num_samples
        8
    """
    return SweepSpec.from_dict(read_yaml(path), str(path))
