"""Spec errors: :class:`SpecError` (what callers catch), the internal :class:`_Problems`
raised inside validators, and how paths and values are shown in a problem line."""

from __future__ import annotations

import enum
import re
from typing import Any, Mapping, Sequence

from tgo.errors import TgoError

class SpecError(TgoError, ValueError):
    """An invalid sweep spec. ``problems`` holds one ``field.path: what was expected, got
    what`` line per problem; ``source`` is the file it came from, when there was one."""

    def __init__(self, problems: Sequence[str], source: str | None = None,
                 title: str = "invalid sweep spec") -> None:
        self.problems = tuple(problems)
        self.source = source
        self.title = title
        head = f"{source}: {title}" if source else title
        if len(self.problems) == 1:
            message = f"{head}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{head} ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)

    def __reduce__(self) -> tuple:
        return SpecError, (self.problems, self.source, self.title)


class _Problems(ValueError):
    """Raised inside validators: problems as (path relative to the validated object, text)."""

    def __init__(self, problems: Sequence[tuple[tuple, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{_dotted(p)}: {m}" for p, m in self.problems))


def _show(value: Any) -> str:
    text = repr(value.value if isinstance(value, enum.Enum) else value)
    return text if len(text) <= 80 else text[:77] + "..."


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _dotted(loc: Sequence[Any]) -> str:
    """``("space", "lr", "low")`` -> ``space.lr.low``; indices and odd keys in brackets."""
    out = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part}]" if isinstance(part, int) else f"[{_show(part)}]"
    return out


# Beyond 64 bits an integer breaks the C code it reaches (torch, numpy, SQL columns).
_INT64 = (-2**63, 2**63 - 1)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _huge_ints(node: Any, loc: tuple = ()) -> list[str]:
    """``path: expected ...`` for every integer in ``node`` that does not fit in 64 bits."""
    if isinstance(node, int) and not isinstance(node, bool) and \
            not _INT64[0] <= node <= _INT64[1]:
        return [f"{_dotted(loc) or 'spec'}: expected an integer that fits in 64 bits, "
                f"got {_show(node)}"]
    if isinstance(node, Mapping):
        return [p for k, v in node.items() for p in _huge_ints(v, loc + (k,))]
    if isinstance(node, (list, tuple)):
        return [p for i, v in enumerate(node) for p in _huge_ints(v, loc + (i,))]
    return []
