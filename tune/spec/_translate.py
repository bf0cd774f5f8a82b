"""Pydantic's validation errors as ``field.path: expected ..., got ...`` lines, so none of
pydantic's own wording reaches a user. ``root`` is the model the paths start at (the
sweep spec), passed in so this module needs nothing above it."""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from tune.spec._errors import SpecError, _dotted, _Problems, _show
from tune.spec.distributions import _DIST_BY_TAG


def _problems_of(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """Turn pydantic's errors into ``path: expected ..., got ...`` lines (deduplicated)."""
    out: list[str] = []
    for path, text in _pairs_of(error, root):
        line = f"{_dotted(path)}: {text}" if path else text
        if line not in out:
            out.append(line)
    return out


def _pairs_of(error: ValidationError, root: type[BaseModel], prefix: tuple = ()
              ) -> list[tuple[tuple, str]]:
    """(path, text) per problem; ``prefix`` is the path of the object ``error`` is about."""
    out: list[tuple[tuple, str]] = []
    for err in error.errors(include_url=False):
        raw = prefix + tuple(err["loc"])
        loc = tuple(p for i, p in enumerate(raw) if p != "[key]"
                    and not (i == 2 and raw[0] == "space" and p in _DIST_BY_TAG))
        exc = (err.get("ctx") or {}).get("error")
        if isinstance(exc, SpecError):  # model_validate() runs the custom __init__
            out += [((), line) for line in exc.problems]
        elif isinstance(exc, _Problems):
            out += [(loc + rel, text) for rel, text in exc.problems]
        else:
            out.append(_describe(err, raw, loc, root))
    return out


_KINDS = {
    "int": "an integer", "float": "a number", "string": "a string", "bool": "true or false",
    "dict": "a mapping", "model": "a mapping", "model_attributes": "a mapping",
    "list": "a list", "tuple": "a list", "enum": None,
}


#: What was expected, by pydantic error type (``{min_length}``, ``{max_length}`` from its ctx).
_EXPECTED = {
    "too_short": "expected at least {min_length} item(s)",
    "string_too_short": "expected a non-empty string",
    "string_too_long": "expected at most {max_length} characters",
    "string_pattern_mismatch": "expected letters, digits, '_', '.' or '-' only",
    "invalid_key": "expected a string key",
    "finite_number": "expected a finite number",
}


def _describe(err: Mapping[str, Any], raw: tuple, loc: tuple, root: type[BaseModel]
              ) -> tuple[tuple, str]:
    kind, ctx, got = err["type"], err.get("ctx") or {}, _show(err.get("input"))
    if kind == "missing":
        return loc, "expected a value (required), got none"
    if kind == "extra_forbidden":
        allowed = _fields_at(root, raw[:-1])
        hint = f" ({', '.join(allowed)})" if allowed else ""
        return loc, f"expected a known field{hint}, got unknown field {_show(loc[-1])}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(map(repr, _DIST_BY_TAG))
        given = err.get("input")
        tag = _show(given["type"]) if isinstance(given, Mapping) and "type" in given else "no type"
        return loc + ("type",), f"expected one of {tags}, got {tag}"
    if kind in ("enum", "literal_error"):
        return loc, f"expected one of {ctx.get('expected')}, got {got}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        return loc, f"expected {op} {bound}, got {got}"
    if kind in _EXPECTED:
        text = _EXPECTED[kind].format(min_length=ctx.get("min_length"),
                                      max_length=ctx.get("max_length"))
        return loc, f"{text}, got {got}"
    base = kind.split("_")[0] if not kind.startswith("model_attributes") else "model_attributes"
    if _KINDS.get(base):
        return loc, f"expected {_KINDS[base]}, got {got}"
    if kind == "value_error" and "error" in ctx:
        return loc, str(ctx["error"])
    msg = err.get("msg", kind)
    return loc, f"{msg[:1].lower()}{msg[1:]}, got {got}"


def _fields_at(root: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the spec model at ``loc`` under ``root`` (for 'unknown field' hints)."""
    cls = root
    i = 0
    while i < len(loc):
        if cls is root and loc[i] == "space":
            if len(loc) != i + 3 or loc[i + 2] not in _DIST_BY_TAG:
                return None
            return list(_DIST_BY_TAG[loc[i + 2]].model_fields)
        field = cls.model_fields.get(loc[i]) if isinstance(loc[i], str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        cls, i = ann, i + 1
    return list(cls.model_fields)
