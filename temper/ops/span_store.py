"""The span store sink: a batch of finished spans → one ``traces`` row per local root, with the child spans
that arrived in the same batch inline; ``spans`` rows for the rest (children whose root comes later).

This runs for every gateway call in the server's process, so its CPU counts against the gateway's
throughput (docs/performance.md): rows go in as tuples through one prepared ``executemany`` per table and
batch, with no ORM objects; a gateway call (the root and its upstream attempts) is one row; and the readable
text of a request and its answer is derived when a trace is read, unless the stored body was capped.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, Table

from temper.ops import tracing as t
from temper.ops.payloads import Masker, parsed, readable_input, readable_output, stored
from temper.ops.tracing import Span
from temper.store.db import get_engine
from temper.store.tables import SpanRow, TraceRow

SPAN_COLUMNS = ("span_id", "trace_id", "parent_id", "workspace_id", "name", "kind", "start_us", "duration_ms",
                "status", "error", "attributes", "input", "output")
TRACE_COLUMNS = ("trace_id", "span_id", "parent_id", "workspace_id", "name", "kind", "start_us", "duration_ms",
                 "status", "error", "app_id", "model", "key_id", "input_tokens", "output_tokens", "cost", "ttft_ms",
                 "span_count", "attributes", "input", "output", "raw_input", "raw_output", "spans")
INLINE_LIMIT = 200  # child spans kept in a trace's row; more go to the spans table


def _insert(engine: Engine, table: Table, columns: tuple[str, ...], skip_duplicates: bool) -> tuple[str, bool]:
    """Driver-level SQL for inserting ``columns`` in that order, and whether it takes tuples (not dicts)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    if skip_duplicates:
        stmt = stmt.on_conflict_do_nothing()
    compiled = stmt.compile(dialect=engine.dialect, column_keys=list(columns))
    positional = compiled.positiontup is not None
    if positional and tuple(compiled.positiontup) != columns:
        raise RuntimeError(f"unexpected parameter order for {table.name}: {compiled.positiontup}")
    return str(compiled), positional


def _dumps(value: dict[str, Any] | list[dict[str, Any]]) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class SpanStoreSink:
    name = "store"

    def __init__(self, db: str, payload_chars: int = 8000, masker: Masker | None = None) -> None:
        self.engine = get_engine(db)
        self.payload_chars = payload_chars
        self.masker = masker
        self._spans = _insert(self.engine, SpanRow.__table__, SPAN_COLUMNS, False)  # type: ignore[arg-type]
        self._traces = _insert(self.engine, TraceRow.__table__, TRACE_COLUMNS, True)  # type: ignore[arg-type]

    def export(self, spans: Sequence[Span]) -> None:
        limit, masker = self.payload_chars, self.masker
        inline: dict[int, list[dict[str, Any]]] = {id(s): [] for s in spans if s.root is None}
        span_rows: list[tuple] = []
        for s in spans:
            if s.root is None:
                continue
            children = inline.get(id(s.root))
            if children is not None and len(children) < INLINE_LIMIT:
                children.append({
                    "id": f"{s.span_id:016x}", "parent_id": f"{s.parent_id:016x}", "name": s.name[:200],
                    "kind": s.kind, "start_us": s.start_ns // 1000, "duration_ms": (s.end_ns - s.start_ns) / 1e6,
                    "status": s.status, "error": s.error, "attributes": s.attributes,
                    "input": stored(s.input, limit, masker), "output": stored(s.output, limit, masker)})
                continue
            span_rows.append((
                f"{s.span_id:016x}", f"{s.trace_id:032x}", f"{s.parent_id:016x}", s.workspace_id, s.name[:200],
                s.kind, s.start_ns // 1000, (s.end_ns - s.start_ns) / 1e6, s.status, s.error, _dumps(s.attributes),
                stored(s.input, limit, masker), stored(s.output, limit, masker)))
        trace_rows = [self._trace_row(s, inline[id(s)]) for s in spans if s.root is None]
        with self.engine.begin() as conn:
            for (sql, positional), rows, columns in ((self._traces, trace_rows, TRACE_COLUMNS),
                                                     (self._spans, span_rows, SPAN_COLUMNS)):
                if rows:
                    conn.exec_driver_sql(sql, rows if positional else [dict(zip(columns, r)) for r in rows])

    def _trace_row(self, s: Span, children: list[dict[str, Any]]) -> tuple:
        attrs = s.attributes
        usage = s.usage or (0, 0, 0.0)
        raw_in, raw_out = parsed(s.input), parsed(s.output)
        if isinstance(raw_out, list):  # a relayed stream: keep the answer, not every SSE frame
            raw_out = readable_output(raw_out)
        stored_in, stored_out, read_in, read_out = self._payloads(raw_in, raw_out)
        return (
            f"{s.trace_id:032x}", f"{s.span_id:016x}", f"{s.parent_id:016x}" if s.parent_id else None,
            s.workspace_id, s.name[:200], s.kind, s.start_ns // 1000, (s.end_ns - s.start_ns) / 1e6, s.status,
            s.error, attrs.get(t.APP_ID), attrs.get(t.RESPONSE_MODEL) or attrs.get(t.REQUEST_MODEL),
            attrs.get(t.KEY_ID), attrs.get(t.INPUT_TOKENS, usage[0]) or 0, attrs.get(t.OUTPUT_TOKENS, usage[1]) or 0,
            attrs.get(t.COST, usage[2]) or 0.0, attrs.get(t.TTFT_MS), s.children + 1, _dumps(attrs),
            read_in, read_out, stored_in, stored_out,
            _dumps(children) if children else None)

    def _payloads(self, raw_in: Any, raw_out: Any) -> tuple[str | None, str | None, str | None, str | None]:
        """The stored bodies, and the readable text only where a reader could not derive it from them."""
        limit, masker = self.payload_chars, self.masker
        body_in, body_out = stored(raw_in, limit, masker), stored(raw_out, limit, masker)
        # a capped body is longer than ``limit`` (cap() appends how much was cut)
        read_in = stored(readable_input(raw_in), limit, masker) if body_in and len(body_in) > limit else None
        read_out = stored(readable_output(raw_out), limit, masker) if body_out and len(body_out) > limit else None
        return body_in, body_out, read_in, read_out

    def close(self) -> None:
        pass
