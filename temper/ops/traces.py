"""Reading the span store: list and search traces, one trace as a tree, JSONL export, retention.

A reader that may not see personal data passes a ``masker``: the text it gets (inputs, outputs, errors) is
masked however it was stored.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Boolean, Select, delete, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from temper.errors import InvalidRequest, NotFound
from temper.ops.payloads import MASK_MARGIN, readable_input, readable_output
from temper.ops.pii import Masker
from temper.ops.scores import score_dict
from temper.store.db import get_engine, session
from temper.store.tables import AnnotationItem, ScoreRow, SpanRow, TraceRow, iso_utc

PREVIEW = 300
STATUSES = ("ok", "error")


class ContainsText(FunctionElement[bool]):
    """``column LIKE pattern ESCAPE '\\'`` without regard to case, as SQLite's LIKE already is (for ASCII):
    PostgreSQL's ILIKE. (SQLAlchemy's ``ilike`` would wrap both sides in ``lower()`` on SQLite.)"""

    type = Boolean()
    inherit_cache = True
    name = "contains_text"
    _is_implicitly_boolean = True  # a condition already: SQLite needs no "= 1" after it


@compiles(ContainsText)
def _like(element: ContainsText, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = element.clauses
    return f"{compiler.process(column, **kw)} LIKE {compiler.process(pattern, **kw)} ESCAPE '\\'"


@compiles(ContainsText, "postgresql")
def _ilike(element: ContainsText, compiler: SQLCompiler, **kw: Any) -> str:
    column, pattern = element.clauses
    return f"{compiler.process(column, **kw)} ILIKE {compiler.process(pattern, **kw)} ESCAPE '\\'"


@dataclass
class TraceFilter:
    """What a trace list, an export, an annotation queue or the analytics select (all optional)."""

    workspace_id: str | None = None
    q: str | None = None
    model: str | None = None
    key_id: str | None = None
    app_id: str | None = None
    kind: str | None = None
    status: str | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    since_us: int | None = None
    until_us: int | None = None
    trace_ids: list[str] = field(default_factory=list)

    def apply(self, stmt: Select) -> Select:
        t = TraceRow
        if self.status is not None and self.status not in STATUSES:
            raise InvalidRequest("status must be `ok` or `error`.", param="status",
                                 code="not_one_of", params={"allowed": "ok, error"})
        for column, value in ((t.workspace_id, self.workspace_id), (t.model, self.model), (t.key_id, self.key_id),
                              (t.app_id, self.app_id), (t.kind, self.kind), (t.status, self.status)):
            if value is not None:
                stmt = stmt.where(column == value)
        if self.min_ms is not None:
            stmt = stmt.where(t.duration_ms >= self.min_ms)
        if self.max_ms is not None:
            stmt = stmt.where(t.duration_ms <= self.max_ms)
        if self.since_us is not None:
            stmt = stmt.where(t.start_us >= self.since_us)
        if self.until_us is not None:
            stmt = stmt.where(t.start_us < self.until_us)
        if self.trace_ids:
            stmt = stmt.where(t.trace_id.in_(self.trace_ids))
        if self.q:
            like = "%" + self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(*(ContainsText(c, like) for c in (
                t.raw_input, t.raw_output, t.input, t.output, t.name, t.error))))
        return stmt

    def as_dict(self) -> dict[str, Any]:
        """The filter as a person reads it (times as ISO 8601), for a queue's description."""
        out = {k: v for k, v in self.__dict__.items() if v not in (None, []) and k != "workspace_id"}
        for edge in ("since", "until"):
            if f"{edge}_us" in out:
                out[edge] = iso(out.pop(f"{edge}_us"))
        return out


def now_us() -> int:
    return time.time_ns() // 1000


def iso(us: int) -> str:
    return iso_utc(datetime.fromtimestamp(us / 1e6, timezone.utc))


def _preview(text: str | None, masker: Masker | None = None) -> str | None:
    if text is None:
        return None
    shown = text if masker is None else masker(text[:PREVIEW + MASK_MARGIN])
    return shown if len(text) <= PREVIEW else shown[:PREVIEW] + "…"


def _masked(text: str | None, masker: Masker | None) -> str | None:
    return text if masker is None or not text else masker(text)


def readable(r: TraceRow) -> tuple[str | None, str | None]:
    """The trace's readable input and output: stored when its bodies were capped, else derived from them."""
    return (r.input if r.input is not None else readable_input(r.raw_input),
            r.output if r.output is not None else readable_output(r.raw_output))


def trace_dict(r: TraceRow, *, full: bool = False, masker: Masker | None = None) -> dict[str, Any]:
    text_in, text_out = readable(r)
    out = {"id": r.trace_id, "object": "trace", "name": r.name, "kind": r.kind, "workspace_id": r.workspace_id,
           "start": iso(r.start_us), "duration_ms": round(r.duration_ms, 3), "status": r.status,
           "error": _masked(r.error, masker), "app_id": r.app_id, "model": r.model, "key_id": r.key_id,
           "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "cost": r.cost, "ttft_ms": r.ttft_ms,
           "span_count": r.span_count,
           "input": _masked(text_in, masker) if full else _preview(text_in, masker),
           "output": _masked(text_out, masker) if full else _preview(text_out, masker)}
    if full:
        out["attributes"] = r.attributes
    return out


def _cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    start, _, trace_id = cursor.partition("_")
    if not start.isdigit() or len(trace_id) != 32:
        raise InvalidRequest("That cursor is not one this API returned.", param="cursor", code="invalid_cursor")
    return int(start), trace_id


def list_traces(db: str, f: TraceFilter, *, limit: int = 50, cursor: str | None = None,
                masker: Masker | None = None) -> tuple[list[dict], str | None]:
    """Newest first. Returns the page and the cursor of the next one (None at the end)."""
    stmt = f.apply(select(TraceRow))
    after = _cursor(cursor)
    if after is not None:
        stmt = stmt.where(or_(TraceRow.start_us < after[0],
                              (TraceRow.start_us == after[0]) & (TraceRow.trace_id < after[1])))
    stmt = stmt.order_by(TraceRow.start_us.desc(), TraceRow.trace_id.desc()).limit(limit + 1)
    with session(db) as s:
        rows = list(s.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1].start_us}_{rows[-1].trace_id}" if more and rows else None
    return [trace_dict(r, masker=masker) for r in rows], nxt


def _child(r: SpanRow) -> dict[str, Any]:
    """A row of the spans table in the shape of a span stored inline with its trace."""
    return {"id": r.span_id, "parent_id": r.parent_id, "name": r.name, "kind": r.kind, "start_us": r.start_us,
            "duration_ms": r.duration_ms, "status": r.status, "error": r.error, "attributes": r.attributes,
            "input": r.input, "output": r.output}


def _span_dict(c: dict[str, Any], t0: int, depth: int, masker: Masker | None) -> dict[str, Any]:
    return {"id": c["id"], "parent_id": c["parent_id"], "name": c["name"], "kind": c["kind"],
            "start": iso(c["start_us"]), "offset_ms": round((c["start_us"] - t0) / 1000, 3),
            "duration_ms": round(c["duration_ms"], 3), "status": c["status"], "error": _masked(c.get("error"), masker),
            "attributes": c["attributes"], "input": _masked(c.get("input"), masker),
            "output": _masked(c.get("output"), masker), "depth": depth}


def trace_children(s: Session, root: TraceRow) -> list[dict[str, Any]]:
    """A trace's spans below its root, in start order: those stored inline with it and those in ``spans``."""
    rows = s.scalars(select(SpanRow).where(SpanRow.trace_id == root.trace_id))
    return sorted([*(root.spans or ()), *(_child(r) for r in rows)], key=lambda c: c["start_us"])


def get_trace(db: str, trace_id: str, workspace_id: str | None = None, *,
              masker: Masker | None = None) -> dict[str, Any]:
    """The trace with its spans in depth-first order (each with ``depth`` and ``offset_ms``) and its scores."""
    with session(db) as s:
        root = s.get(TraceRow, trace_id)
        if root is None or (workspace_id is not None and root.workspace_id != workspace_id):
            raise NotFound(f"No trace with id {trace_id!r} (it may still be running, or past retention).",
                           param="trace_id", code="trace_not_found", params={"trace_id": trace_id})
        children = trace_children(s, root)
        scores = list(s.scalars(select(ScoreRow).where(ScoreRow.trace_id == trace_id).order_by(ScoreRow.created_at)))
    t0 = root.start_us
    known = {root.span_id} | {c["id"] for c in children}
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for c in children:  # a span whose parent was lost (past the queue limit) hangs under the root
        by_parent.setdefault(c["parent_id"] if c["parent_id"] in known else root.span_id, []).append(c)
    spans = [_span_dict({"id": root.span_id, "parent_id": None, "name": root.name, "kind": root.kind,
                         "start_us": t0, "duration_ms": root.duration_ms, "status": root.status,
                         "error": root.error, "attributes": root.attributes, "input": root.raw_input,
                         "output": root.raw_output}, t0, 0, masker)]
    stack = [(c, 1) for c in reversed(by_parent.get(root.span_id, []))]
    while stack:
        c, depth = stack.pop()
        spans.append(_span_dict(c, t0, depth, masker))
        stack.extend((k, depth + 1) for k in reversed(by_parent.get(c["id"], [])))
    return trace_dict(root, full=True, masker=masker) | {"spans": spans, "scores": [score_dict(x) for x in scores]}


def export_traces(db: str, f: TraceFilter, *, spans: bool = True, batch: int = 200,
                  masker: Masker | None = None) -> Iterator[bytes]:
    """JSONL, one trace per line (newest first), with its spans and scores when ``spans``."""
    cursor: str | None = None
    while True:
        page, cursor = list_traces(db, f, limit=batch, cursor=cursor, masker=None if spans else masker)
        for t in page:
            yield orjson.dumps(get_trace(db, t["id"], masker=masker) if spans else t) + b"\n"
        if cursor is None:
            return


def count_traces(db: str, f: TraceFilter) -> int:
    with session(db) as s:
        return s.scalar(f.apply(select(func.count()).select_from(TraceRow))) or 0


def delete_before(db: str, cutoff_us: int, chunk: int = 5000) -> int:
    """Retention: delete traces (with their spans, scores and queue items) that started before ``cutoff_us``.

    Works in chunks so that writers (the span exporter, usage) are never locked out for long.
    """
    deleted = 0
    engine = get_engine(db)
    with engine.connect() as conn:
        workspaces = [w for (w,) in conn.execute(select(TraceRow.workspace_id).distinct())]
    for ws in workspaces:
        while True:
            with engine.begin() as conn:
                ids = [i for (i,) in conn.execute(select(TraceRow.trace_id).where(
                    TraceRow.workspace_id == ws, TraceRow.start_us < cutoff_us).limit(chunk))]
                if not ids:
                    break
                conn.execute(delete(TraceRow).where(TraceRow.trace_id.in_(ids)))
                conn.execute(delete(ScoreRow).where(ScoreRow.trace_id.in_(ids)))
                conn.execute(delete(AnnotationItem).where(AnnotationItem.trace_id.in_(ids)))
                deleted += len(ids)
    while True:  # spans (also those whose root never arrived); the oldest rows have the lowest ids
        with engine.begin() as conn:
            old = select(SpanRow.id).where(SpanRow.start_us < cutoff_us).limit(chunk).scalar_subquery()
            if conn.execute(delete(SpanRow).where(SpanRow.id.in_(old))).rowcount == 0:
                break
    return deleted
