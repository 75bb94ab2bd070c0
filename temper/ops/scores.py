"""Scores on traces and spans: numeric, categorical or boolean, from a human, a judge model or code."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from temper.errors import InvalidRequest, NotFound
from temper.ids import new_id
from temper.store.db import session
from temper.store.tables import DEFAULT_WORKSPACE, ScoreRow, SpanRow, TraceRow, iso_utc

DATA_TYPES = ("numeric", "categorical", "boolean")
SOURCES = ("human", "judge", "code")


def score_dict(r: ScoreRow) -> dict[str, Any]:
    value: Any = r.value
    if r.data_type == "boolean":
        value = bool(r.value)
    elif r.data_type == "categorical":
        value = r.string_value
    return {"id": r.id, "object": "score", "trace_id": r.trace_id, "span_id": r.span_id, "name": r.name,
            "data_type": r.data_type, "value": value, "source": r.source, "author": r.author, "comment": r.comment,
            "queue_id": r.queue_id, "created_at": iso_utc(r.created_at)}


def normalise(name: str, value: Any, data_type: str | None = None, config: dict | None = None) -> tuple[str, float | None, str | None]:
    """Check a score value against its type (inferred from the value when not given) and an optional config
    (``categories`` or ``min``/``max``); returns (data_type, numeric value, string value)."""
    if data_type is None:
        data_type = (config or {}).get("data_type") or (
            "boolean" if isinstance(value, bool) else "numeric" if isinstance(value, (int, float)) else "categorical")
    if data_type not in DATA_TYPES:
        raise InvalidRequest(f"data_type must be one of {', '.join(DATA_TYPES)}.", param="data_type",
                             code="not_one_of", params={"allowed": ", ".join(DATA_TYPES)})
    if data_type == "boolean":
        if not isinstance(value, bool) and value not in (0, 1):
            raise InvalidRequest(f"Score `{name}` is boolean: send true or false.", param="value",
                                 code="score_not_boolean", params={"name": name})
        return data_type, float(bool(value)), None
    if data_type == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise InvalidRequest(f"Score `{name}` is numeric: send a number.", param="value",
                                 code="score_not_number", params={"name": name})
        lo, hi = (config or {}).get("min"), (config or {}).get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise InvalidRequest(f"Score `{name}` must be between {lo} and {hi}.", param="value",
                                 code="score_out_of_range", params={"name": name, "min": lo, "max": hi})
        return data_type, float(value), None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidRequest(f"Score `{name}` is categorical: send a non-empty string (at most 200 characters).",
                             param="value", code="invalid_category_value", params={"name": name})
    categories = (config or {}).get("categories")
    if categories and value not in categories:
        raise InvalidRequest(f"Score `{name}` must be one of: {', '.join(categories)}.", param="value",
                             code="unknown_category", params={"name": name, "allowed": ", ".join(categories)})
    return data_type, None, value


def add_score(db: str, trace_id: str, name: str, value: Any, *, data_type: str | None = None,
              span_id: str | None = None, source: str = "code", author: str | None = None,
              comment: str | None = None, queue_id: str | None = None, workspace_id: str = DEFAULT_WORKSPACE,
              config: dict | None = None) -> dict[str, Any]:
    if not name or len(name) > 100:
        raise InvalidRequest("A score needs a name of 1 to 100 characters.", param="name", code="invalid_score_name")
    if source not in SOURCES:
        raise InvalidRequest(f"source must be one of {', '.join(SOURCES)}.", param="source",
                             code="not_one_of", params={"allowed": ", ".join(SOURCES)})
    data_type, number, text = normalise(name, value, data_type, config)
    with session(db) as s:
        trace = s.get(TraceRow, trace_id)
        if trace is None or trace.workspace_id != workspace_id:
            raise NotFound(f"No trace with id {trace_id!r}.", param="trace_id", code="trace_not_found",
                           params={"trace_id": trace_id})
        if span_id is not None and span_id != trace.span_id and all(
                c["id"] != span_id for c in trace.spans or ()) and s.scalar(
                select(SpanRow.id).where(SpanRow.trace_id == trace_id, SpanRow.span_id == span_id)) is None:
            raise NotFound(f"Trace {trace_id} has no span {span_id!r}.", param="span_id", code="span_not_found")
        row = ScoreRow(id=new_id("score"), workspace_id=workspace_id, trace_id=trace_id, span_id=span_id, name=name,
                       data_type=data_type, value=number, string_value=text, source=source, author=author,
                       comment=comment, queue_id=queue_id)
        s.add(row)
        s.flush()
        return score_dict(row)


def list_scores(db: str, *, workspace_id: str = DEFAULT_WORKSPACE, trace_id: str | None = None,
                name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    stmt = select(ScoreRow).where(ScoreRow.workspace_id == workspace_id)
    if trace_id:
        stmt = stmt.where(ScoreRow.trace_id == trace_id)
    if name:
        stmt = stmt.where(ScoreRow.name == name)
    with session(db) as s:
        return [score_dict(r) for r in s.scalars(stmt.order_by(ScoreRow.created_at.desc()).limit(limit))]


def delete_score(db: str, score_id: str, workspace_id: str = DEFAULT_WORKSPACE) -> None:
    with session(db) as s:
        row = s.get(ScoreRow, score_id)
        if row is None or row.workspace_id != workspace_id:
            raise NotFound(f"No score with id {score_id!r}.", param="score_id",
                           code="score_not_found", params={"score_id": score_id})
        s.delete(row)
