"""The filter language (see ``temper.knowledge.types.Filter``): validated once into backend-neutral
conditions by ``parse_filter``, then compiled by each backend (``to_qdrant`` here; a PostgreSQL backend adds
its own compiler over the same ``Condition`` list, so both accept and reject exactly the same filters).

Semantics every backend keeps:
- numbers compare as numbers (``{"page": 3}`` matches a stored 3 or 3.0); ``True`` is a bool, never 1;
- a list-valued payload field matches when any of its elements matches;
- ``ne`` holds when no element equals the value, including when the key is missing;
- range bounds are all numbers or all ISO 8601 date/times; a date/time without a zone is UTC.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union

import qdrant_edge as qe

from temper.knowledge.types import Filter

Scalar = Union[str, int, float, bool]
RANGE_OPS = ("gt", "gte", "lt", "lte")
OPERATORS = ("in", "ne", *RANGE_OPS)
_ISO_START = re.compile(r"^\d{4}-\d{2}-\d{2}")
_KEY = re.compile(r"^[^\W][\w-]{0,63}$")  # a metadata name: letters (any script), digits, _ and -; no paths


@dataclass(frozen=True)
class Eq:
    key: str
    value: Scalar


@dataclass(frozen=True)
class In:
    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Ne:
    key: str
    value: Scalar


@dataclass(frozen=True)
class Range:
    """Bounds are floats, or UTC datetimes when ``dates``."""

    key: str
    dates: bool
    gt: float | datetime | None = None
    gte: float | datetime | None = None
    lt: float | datetime | None = None
    lte: float | datetime | None = None


Condition = Union[Eq, In, Ne, Range]


def parse_datetime(value: str) -> datetime | None:
    """An ISO 8601 date or date/time as an aware UTC datetime, or None when ``value`` is not one."""
    if not _ISO_START.match(value):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _scalar(key: str, value: Any, what: str) -> Scalar:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"filter on {key!r}: {what} must be a finite number, got {value!r}")
        return value
    raise ValueError(f"filter on {key!r}: {what} must be a string, number or bool, got {type(value).__name__}")


def _range(key: str, ops: dict[str, Any]) -> Range:
    bounds = {op: ops[op] for op in RANGE_OPS if op in ops}
    values = list(bounds.values())
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        for op, v in bounds.items():
            _scalar(key, v, f"{op!r} bound")
        return Range(key, False, **{op: float(v) for op, v in bounds.items()})
    if all(isinstance(v, str) for v in values):
        parsed = {op: parse_datetime(v) for op, v in bounds.items()}
        for op, dt in parsed.items():
            if dt is None:
                raise ValueError(f"filter on {key!r}: {op!r} bound {bounds[op]!r} is not an ISO 8601 date/time")
        return Range(key, True, **parsed)
    raise ValueError(f"filter on {key!r}: range bounds must be all numbers or all ISO 8601 strings, got {values!r}")


def parse_filter(flt: Filter | None) -> list[Condition]:
    """Validate ``flt`` and return its conditions (all must hold); ``ValueError`` names the offending key."""
    if not flt:
        return []
    if not isinstance(flt, dict):
        raise ValueError(f"a filter is a mapping of payload key to condition, got {type(flt).__name__}")
    out: list[Condition] = []
    for key, cond in flt.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(f"filter keys are metadata names (letters, digits, _ and -, at most 64), not {key!r}")
        if isinstance(cond, list):
            raise ValueError(f"filter on {key!r}: a list is ambiguous, write {{'in': [...]}} for any of")
        if not isinstance(cond, dict):
            if cond is None:
                raise ValueError(f"filter on {key!r}: null cannot be matched")
            out.append(Eq(key, _scalar(key, cond, "value")))
            continue
        if not cond:
            raise ValueError(f"filter on {key!r}: empty condition; use one of {', '.join(OPERATORS)}")
        unknown = [op for op in cond if op not in OPERATORS]
        if unknown:
            raise ValueError(f"filter on {key!r}: unknown operator {unknown[0]!r}; use one of {', '.join(OPERATORS)}")
        if "in" in cond:
            values = cond["in"]
            if not isinstance(values, (list, tuple)):
                raise ValueError(f"filter on {key!r}: 'in' takes a list, got {type(values).__name__}")
            out.append(In(key, tuple(_scalar(key, v, "'in' value") for v in values)))
        if "ne" in cond:
            out.append(Ne(key, _scalar(key, cond["ne"], "'ne' value")))
        if any(op in cond for op in RANGE_OPS):
            out.append(_range(key, cond))
    return out


# --- Qdrant Edge ---------------------------------------------------------------------------------------

# qdrant-edge-py 0.9.0 turns MatchValue(True/False) into the integers 1/0, so a stored bool never matches.
# The index therefore stores bools as these reserved strings (``qdrant_payload``) and matches those.
_BOOL_TOKENS = {True: "\x00bool:true", False: "\x00bool:false"}


def qdrant_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as the Qdrant Edge index stores it (bools, also inside lists, as reserved strings)."""
    def enc(v: Any) -> Any:
        if isinstance(v, bool):
            return _BOOL_TOKENS[v]
        if isinstance(v, list):
            return [enc(x) for x in v]
        return v
    return {k: enc(v) for k, v in payload.items()}


def _rfc3339(dt: datetime | None) -> str | None:
    return None if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _q_eq(key: str, value: Scalar) -> qe.FieldCondition:
    if isinstance(value, bool):
        return qe.FieldCondition(key, match=qe.MatchValue(_BOOL_TOKENS[value]))
    if isinstance(value, str):
        return qe.FieldCondition(key, match=qe.MatchValue(value))
    # Numbers are float-indexed (see QdrantEdgeIndex), and a closed range compares 3 and 3.0 alike.
    return qe.FieldCondition(key, range=qe.RangeFloat(gte=float(value), lte=float(value)))


def _q_condition(c: Condition) -> Any:
    if isinstance(c, Eq):
        return _q_eq(c.key, c.value)
    if isinstance(c, Ne):
        return qe.Filter(must_not=[_q_eq(c.key, c.value)])
    if isinstance(c, In):
        if not c.values:
            return qe.HasIdCondition(set())  # any of nothing: matches no point
        if all(isinstance(v, str) for v in c.values):
            return qe.FieldCondition(c.key, match=qe.MatchAny(list(c.values)))
        return qe.Filter(should=[_q_eq(c.key, v) for v in c.values])
    if c.dates:
        rng: Any = qe.RangeDateTime(gt=_rfc3339(c.gt), gte=_rfc3339(c.gte),  # type: ignore[arg-type]
                                    lt=_rfc3339(c.lt), lte=_rfc3339(c.lte))  # type: ignore[arg-type]
    else:
        rng = qe.RangeFloat(gt=c.gt, gte=c.gte, lt=c.lt, lte=c.lte)  # type: ignore[arg-type]
    return qe.FieldCondition(c.key, range=rng)


def to_qdrant(flt: Filter | None) -> qe.Filter | None:
    """Compile ``flt`` into a Qdrant Edge filter (None when there is nothing to filter on)."""
    conds = parse_filter(flt)
    return qe.Filter(must=[_q_condition(c) for c in conds]) if conds else None
