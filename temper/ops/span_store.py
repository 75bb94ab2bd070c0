"""The span store sink: a batch of finished spans → ``traces`` rows (local roots) and ``spans`` rows (the rest).

Rows go in as tuples through one prepared ``executemany`` per table and batch, with no ORM objects: this
runs for every gateway call in the server's process, so its CPU counts against the gateway's throughput.
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
                 "span_count", "attributes", "input", "output", "raw_input", "raw_output")


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


def _dumps(value: dict[str, Any]) -> str:
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
        span_rows: list[tuple] = []
        trace_rows: list[tuple] = []
        for s in spans:
            if s.root is s:
                trace_rows.append(self._trace_row(s))
                continue
            span_rows.append((
                f"{s.span_id:016x}", f"{s.trace_id:032x}", f"{s.parent_id:016x}", s.workspace_id, s.name[:200],
                s.kind, s.start_ns // 1000, (s.end_ns - s.start_ns) / 1e6, s.status, s.error, _dumps(s.attributes),
                stored(s.input, limit, masker), stored(s.output, limit, masker)))
        with self.engine.begin() as conn:
            for (sql, positional), rows, columns in ((self._traces, trace_rows, TRACE_COLUMNS),
                                                     (self._spans, span_rows, SPAN_COLUMNS)):
                if rows:
                    conn.exec_driver_sql(sql, rows if positional else [dict(zip(columns, r)) for r in rows])

    def _trace_row(self, s: Span) -> tuple:
        attrs = s.attributes
        usage = s.usage or (0, 0, 0.0)
        limit, masker = self.payload_chars, self.masker
        raw_in, raw_out = parsed(s.input), parsed(s.output)
        answer = readable_output(raw_out)
        if isinstance(raw_out, list):  # a relayed stream: keep the answer, not every SSE frame
            raw_out = answer
        return (
            f"{s.trace_id:032x}", f"{s.span_id:016x}", f"{s.parent_id:016x}" if s.parent_id else None,
            s.workspace_id, s.name[:200], s.kind, s.start_ns // 1000, (s.end_ns - s.start_ns) / 1e6, s.status,
            s.error, attrs.get(t.APP_ID), attrs.get(t.RESPONSE_MODEL) or attrs.get(t.REQUEST_MODEL),
            attrs.get(t.KEY_ID), attrs.get(t.INPUT_TOKENS, usage[0]) or 0, attrs.get(t.OUTPUT_TOKENS, usage[1]) or 0,
            attrs.get(t.COST, usage[2]) or 0.0, attrs.get(t.TTFT_MS), s.children + 1, _dumps(attrs),
            stored(readable_input(raw_in), limit, masker), stored(answer, limit, masker),
            stored(raw_in, limit, masker), stored(raw_out, limit, masker))

    def close(self) -> None:
        pass
