"""Custom rules: a regulator's CEL expression over one event, e.g.
``event.type == "prescription.signed" && event.data.total_fen > 50000``.

Compiled once when saved (the Rust-backed ``common-expression-language`` package) and validated: the syntax,
a bounded size, the functions used (those the runtime has), every ``event.…`` field path against the event
catalog, and every event type the expression compares ``event.type`` with. When the expression's top-level
``&&`` has a conjunct ``event.type == "…"`` (or ``event.type in [...]``), the rule is indexed by those types
and never evaluated for other events. docs/supervision.md lists the fields.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from carebridge.core.errors import InvalidInput
from carebridge.events.catalog import CATALOG

# The package's __init__ imports its command-line interface (typer, rich, prompt_toolkit, pygments: about 17 MB
# in every process) along with the evaluator. We never use it: an empty module stands in for it.
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
import cel  # noqa: E402

MAX_CHARS = 2000
MAX_TOKENS = 400

# What the runtime provides (operators are named like ``_&&_`` and pass on their own).
FUNCTIONS = frozenset(
    {
        "size",
        "int",
        "uint",
        "double",
        "string",
        "timestamp",
        "duration",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "getFullYear",
        "getMonth",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "type",
        "dyn",
    }
)
MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
LITERALS = frozenset({"true", "false", "null", "in"})

ENVELOPE = {"id", "type", "catalog_version", "occurred_at", "hospital_id", "region", "actor", "subject", "data"}
SUBJECT = {"type", "id"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?|0x[0-9a-fA-F]+[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)


def _fields_of(model: type[BaseModel], into: dict[str, set[str]], items: set[str]) -> None:
    for name, info in model.model_fields.items():
        into.setdefault("data", set()).add(name)
        for arg in _model_args(info.annotation):
            for item_name in arg.model_fields:
                items.add(item_name)


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        a = stack.pop()
        if isinstance(a, type) and issubclass(a, BaseModel):
            found.append(a)
        elif isinstance(a, types.UnionType | types.GenericAlias) or typing.get_origin(a) is not None:
            stack.extend(typing.get_args(a))
    return found


_PATHS: dict[str, set[str]] = {}
ITEM_FIELDS: set[str] = set()
for _model in CATALOG.values():
    _fields_of(_model, _PATHS, ITEM_FIELDS)
DATA_FIELDS = frozenset(_PATHS["data"])
LIST_FIELDS = frozenset({"items"})


@dataclass(frozen=True)
class Compiled:
    source: str
    program: Any
    types: frozenset[str] | None  # None: every event type


def _tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise InvalidInput(
                "invalid_expression",
                f"unexpected character {source[pos]!r} at {pos}",
                details={"field": "expression", "position": pos},
            )
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def _bad(message: str, **details: Any) -> InvalidInput:
    return InvalidInput("invalid_expression", message, details={"field": "expression", **details})


def _check_paths(tokens: list[tuple[str, str]]) -> None:
    bound: set[str] = set()
    for i, (kind, text) in enumerate(tokens):
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text in MACROS and nxt == "(" and text != "has":
            if i + 2 < len(tokens) and tokens[i + 2][0] == "ident":
                bound.add(tokens[i + 2][1])
    for i, (kind, text) in enumerate(tokens):
        if kind != "ident" or (i > 0 and tokens[i - 1][1] == "."):
            continue
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if nxt == "(":
            if text not in FUNCTIONS and text not in MACROS:
                raise _bad(f"unknown function {text}()", function=text)
            continue
        if text in LITERALS or text in bound:
            if text in bound:
                _check_item_path(tokens, i)
            continue
        if text != "event":
            raise _bad(f"unknown name {text!r}: expressions read the event as `event`", name=text)
        path = _path(tokens, i)
        if not path:
            continue
        if path[0] not in ENVELOPE:
            raise _bad(f"the event has no field {path[0]!r}", path="event." + ".".join(path))
        if path[0] == "subject" and len(path) > 1 and path[1] not in SUBJECT:
            raise _bad(f"the event's subject has no field {path[1]!r}", path="event." + ".".join(path))
        if path[0] == "data" and len(path) > 1:
            if path[1] not in DATA_FIELDS:
                raise _bad(f"no event type has a data field {path[1]!r}", path="event." + ".".join(path))
            if len(path) > 2 and path[1] in LIST_FIELDS and path[2] not in ITEM_FIELDS:
                raise _bad(f"a prescription line has no field {path[2]!r}", path="event." + ".".join(path))


def _path(tokens: list[tuple[str, str]], i: int) -> list[str]:
    """The field names after ``tokens[i]``: ``event.data.total_fen`` → [data, total_fen]; a method call ends it."""
    path: list[str] = []
    j = i + 1
    while j + 1 < len(tokens) and tokens[j][1] == "." and tokens[j + 1][0] == "ident":
        if j + 2 < len(tokens) and tokens[j + 2][1] == "(":
            break
        path.append(tokens[j + 1][1])
        j += 2
    return path


def _check_item_path(tokens: list[tuple[str, str]], i: int) -> None:
    path = _path(tokens, i)
    if path and path[0] not in ITEM_FIELDS:
        raise _bad(f"a prescription line has no field {path[0]!r}", path=".".join([tokens[i][1], *path]))


def _type_filter(tokens: list[tuple[str, str]]) -> frozenset[str] | None:
    """The event types named by a top-level conjunct ``event.type == "…"`` / ``event.type in [...]``."""
    conjuncts: list[list[tuple[str, str]]] = [[]]
    depth = 0
    for tok in tokens:
        if tok[1] in "([{" and tok[0] == "op":
            depth += 1
        elif tok[1] in ")]}" and tok[0] == "op":
            depth -= 1
        if depth == 0 and tok[1] == "&&":
            conjuncts.append([])
        else:
            conjuncts[-1].append(tok)
    for c in conjuncts:
        texts = [t for _, t in c]
        if texts[:4] == ["event", ".", "type", "=="] and len(c) == 5 and c[4][0] == "string":
            return frozenset({_unquote(c[4][1])})
        if len(c) == 5 and c[0][0] == "string" and texts[1:] == ["==", "event", ".", "type"]:
            return frozenset({_unquote(c[0][1])})
        if texts[:5] == ["event", ".", "type", "in", "["] and texts[-1] == "]":
            inner = c[5:-1]
            names = [_unquote(t) for k, t in inner if k == "string"]
            if names and all(k == "string" or t == "," for k, t in inner):
                return frozenset(names)
    return None


def _unquote(literal: str) -> str:
    return literal.strip("rRbB")[1:-1]


def _check_types(tokens: list[tuple[str, str]]) -> None:
    """Every string compared with ``event.type`` is a type in the catalog (a typo would never match)."""
    for i, (_, text) in enumerate(tokens):
        if text == "type" and i >= 2 and tokens[i - 1][1] == "." and tokens[i - 2][1] == "event":
            j = i + 1
            if j < len(tokens) and tokens[j][1] in ("==", "!="):
                candidates = [tokens[j + 1]] if j + 1 < len(tokens) else []
            elif j < len(tokens) and tokens[j][1] == "in":
                candidates = []
                k = j + 2
                while k < len(tokens) and tokens[k][1] != "]":
                    candidates.append(tokens[k])
                    k += 1
            else:
                continue
            for kind, literal in candidates:
                if kind == "string" and _unquote(literal) not in CATALOG:
                    raise _bad(f"unknown event type {_unquote(literal)!r}", event_type=_unquote(literal))


def compile_rule(source: str) -> Compiled:
    """Validate and compile; 422 ``invalid_expression`` with the reason (and ``details``) if it is not right."""
    if not source.strip():
        raise _bad("the expression is empty")
    if len(source) > MAX_CHARS:
        raise _bad(f"the expression is longer than {MAX_CHARS} characters", max_chars=MAX_CHARS)
    tokens = _tokens(source)
    if len(tokens) > MAX_TOKENS:
        raise _bad(f"the expression has more than {MAX_TOKENS} tokens", max_tokens=MAX_TOKENS)
    try:
        program = cel.compile(source)
    except Exception as exc:  # the parser's message names the position
        raise _bad(f"syntax error: {str(exc).splitlines()[0][:300]}") from exc
    _check_paths(tokens)
    _check_types(tokens)
    return Compiled(source=source, program=program, types=_type_filter(tokens))


class RuleRuntimeError(Exception):
    pass


def evaluate(compiled: Compiled, activation: dict[str, Any]) -> bool:
    """True when the rule matches; ``RuleRuntimeError`` when the expression fails on this event (a missing
    field, a type mismatch, a non-boolean result)."""
    try:
        result = compiled.program.execute(activation)
    except Exception as exc:
        raise RuleRuntimeError(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    if not isinstance(result, bool):
        raise RuleRuntimeError(f"the expression gave {type(result).__name__}, not a boolean")
    return result
