"""The span store sink: a batch of finished spans → one ``traces`` row per local root, with the child spans
that arrived in the same batch inline; ``spans`` rows for the rest (children whose root comes later).

This runs for every gateway call in the server's process, so its CPU counts against the gateway's
throughput (docs/performance.md): rows go in as tuples through one prepared ``executemany`` per table and
batch, with no ORM objects; a gateway call (the root and its upstream attempts) is one row; and the readable
text of a request and its answer is derived when a trace is read, unless the stored body was capped.

Inputs, outputs and error messages are masked (personal data, ``pii.py``) as each span's workspace chooses,
read once per batch; by default as ``mask_by_default`` says (the server's TEMPER_TRACE_MASK_PII).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain, islice
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table

from temper.ops.payloads import Masker, parsed, readable_input, readable_output, stored
from temper.ops.trace_masking import workspace_choices
from temper.ops.tracing import (APP_ID, COST, INPUT_TOKENS, KEY_ID, OUTPUT_TOKENS, REQUEST_MODEL,
                                 RESPONSE_MODEL, TTFT_MS, Finished, as_dict)
from temper.store.db import get_engine
from temper.store.tables import SpanRow, TraceRow

SPAN_COLUMNS = ("span_id", "trace_id", "parent_id", "workspace_id", "name", "kind", "start_us", "duration_ms",
                "status", "error", "attributes", "input", "output")
TRACE_COLUMNS = ("trace_id", "span_id", "parent_id", "workspace_id", "name", "kind", "start_us", "duration_ms",
                 "status", "error", "app_id", "model", "key_id", "input_tokens", "output_tokens", "cost", "ttft_ms",
                 "span_count", "attributes", "input", "output", "raw_input", "raw_output", "spans")
GENERATION_KINDS = frozenset(("llm", "embedding", "rerank"))  # model calls: their spans keep the answer's text
INLINE_LIMIT = 200  # child spans kept in a trace's row; more go to the spans table
OPEN_TRACES_LIMIT = 100_000  # traces whose spans arrived before their root; the oldest are forgotten beyond


class _Insert:
    """A prepared insert of ``columns`` into ``table`` for batches of row tuples.

    On SQLite the rows go in as multi-row ``VALUES`` statements of a few fixed sizes (so the prepared
    statements are cached): ``executemany`` steps the statement, and releases and retakes the GIL, once per
    row, which costs ~2.5 µs a row and hands the event loop's core back and forth with this thread. On
    PostgreSQL, psycopg's ``executemany`` already pipelines the rows.
    """

    SIZES = (256, 64, 16, 4, 1)

    def __init__(self, engine: Engine, table: Table, columns: tuple[str, ...], skip_duplicates: bool) -> None:
        self.columns = columns
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            one = "(" + ", ".join("?" * len(columns)) + ")"
            tail = " ON CONFLICT DO NOTHING" if skip_duplicates else ""
            head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
            with engine.connect() as conn:  # a build of SQLite may allow fewer than 32,766 parameters
                limit = conn.connection.dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
            self.sql = {n: head + ", ".join([one] * n) + tail for n in self.SIZES if n * len(columns) <= limit}
            return
        from sqlalchemy.dialects.postgresql import insert

        stmt = insert(table)
        if skip_duplicates:
            stmt = stmt.on_conflict_do_nothing()
        compiled = stmt.compile(dialect=engine.dialect, column_keys=list(columns))
        self.positional = compiled.positiontup is not None
        if self.positional and tuple(compiled.positiontup) != columns:  # type: ignore[arg-type]
            raise RuntimeError(f"unexpected parameter order for {table.name}: {compiled.positiontup}")
        self.sql = {0: str(compiled)}

    def run(self, conn: Connection, rows: list[tuple]) -> None:
        if not rows:
            return
        if not self.sqlite:
            conn.exec_driver_sql(self.sql[0], rows if self.positional
                                 else [dict(zip(self.columns, r)) for r in rows])  # type: ignore[arg-type]
            return
        i = 0
        for n, sql in self.sql.items():
            while len(rows) - i >= n:
                conn.exec_driver_sql(sql, tuple(chain.from_iterable(rows[i:i + n])))
                i += n


def _dumps(value: dict[str, Any] | list[dict[str, Any]]) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class SpanStoreSink:
    name = "store"

    def __init__(self, db: str, payload_chars: int = 8000, masker: Masker | None = None,
                 mask_by_default: bool = True) -> None:
        """``masker``: how personal data is masked (None: never); ``mask_by_default``: whether it is in a
        workspace that has not chosen."""
        self.engine = get_engine(db)
        self.payload_chars = payload_chars
        self.masker = masker
        self.mask_by_default = mask_by_default
        self._spans = _Insert(self.engine, SpanRow.__table__, SPAN_COLUMNS, False)  # type: ignore[arg-type]
        self._traces = _Insert(self.engine, TraceRow.__table__, TRACE_COLUMNS, True)  # type: ignore[arg-type]
        # root span id -> [spans, input tokens, output tokens, cost] below it so far: children end (and are
        # exported) before their root, in this batch or an earlier one
        self._below: dict[int, list] = {}

    def _maskers(self) -> dict[str, Masker | None]:
        """Workspace id → its masker, for the workspaces that chose (the others mask as ``mask_by_default``)."""
        masker = self.masker
        if masker is None:
            return {}
        return {ws: masker if mask else None for ws, mask in workspace_choices(self.engine).items()}

    def export(self, spans: Sequence[Finished]) -> None:
        """Store finished spans in one transaction."""
        limit, below = self.payload_chars, self._below
        default, maskers = self.masker if self.mask_by_default else None, self._maskers()
        inline: dict[int, list[dict[str, Any]]] = {s[1]: [] for s in spans if s[3] is None}
        span_rows: list[tuple] = []
        trace_rows: list[tuple] = []
        for s in spans:
            (trace_id, span_id, parent_id, root_id, workspace_id, name, kind, start_ns, end_ns, status, error,
             attrs, input, output) = s
            if root_id is None:
                continue
            masker = maskers.get(workspace_id, default)
            if masker is not None and error:
                error = masker(error)
            attrs = as_dict(attrs)
            totals = below.get(root_id)
            if totals is None:
                totals = below[root_id] = [0, 0, 0, 0.0]
            totals[0] += 1
            if INPUT_TOKENS in attrs or COST in attrs:
                totals[1] += attrs.get(INPUT_TOKENS) or 0
                totals[2] += attrs.get(OUTPUT_TOKENS) or 0
                totals[3] += attrs.get(COST) or 0.0
            if kind in GENERATION_KINDS and output is not None and not isinstance(output, str):
                output = readable_output(parsed(output))  # a body or stream events, as the model client got them
            children = inline.get(root_id)
            if children is not None and len(children) < INLINE_LIMIT:
                child = {"id": f"{span_id:016x}", "parent_id": f"{parent_id:016x}", "name": name[:200], "kind": kind,
                         "start_us": start_ns // 1000, "duration_ms": (end_ns - start_ns) / 1e6, "status": status,
                         "attributes": attrs}
                if error is not None:  # absent fields read as None (traces._span_dict)
                    child["error"] = error
                if input is not None:
                    child["input"] = stored(input, limit, masker)
                if output is not None:
                    child["output"] = stored(output, limit, masker)
                children.append(child)
                continue
            span_rows.append((
                f"{span_id:016x}", f"{trace_id:032x}", f"{parent_id:016x}", workspace_id, name[:200], kind,
                start_ns // 1000, (end_ns - start_ns) / 1e6, status, error, _dumps(attrs),
                stored(input, limit, masker), stored(output, limit, masker)))
        for s in spans:
            if s[3] is None:
                trace_rows.append(self._trace_row(s, inline[s[1]], below.pop(s[1], None),
                                                  maskers.get(s[4], default)))
        if len(below) > OPEN_TRACES_LIMIT:  # spans whose root never came (it was dropped, or still runs)
            for root_id in list(islice(below, len(below) - OPEN_TRACES_LIMIT)):
                del below[root_id]
        with self.engine.begin() as conn:
            self._traces.run(conn, trace_rows)
            self._spans.run(conn, span_rows)

    def _trace_row(self, s: Finished, children: list[dict[str, Any]], below: list | None,
                   masker: Masker | None) -> tuple:
        """A root span's row; ``below``: [spans, input tokens, output tokens, cost] of its descendants."""
        (trace_id, span_id, parent_id, _, workspace_id, name, kind, start_ns, end_ns, status, error, attrs, input,
         output) = s
        attrs = as_dict(attrs)
        count, tokens_in, tokens_out, cost = below or (0, 0, 0, 0.0)
        raw_in, raw_out = parsed(input), parsed(output)
        if isinstance(raw_out, list):  # a relayed stream: keep the answer, not every SSE frame
            raw_out = readable_output(raw_out)
        stored_in, stored_out, read_in, read_out = self._payloads(raw_in, raw_out, masker)
        if masker is not None and error:
            error = masker(error)
        return (
            f"{trace_id:032x}", f"{span_id:016x}", f"{parent_id:016x}" if parent_id else None, workspace_id,
            name[:200], kind, start_ns // 1000, (end_ns - start_ns) / 1e6, status, error, attrs.get(APP_ID),
            attrs.get(RESPONSE_MODEL) or attrs.get(REQUEST_MODEL), attrs.get(KEY_ID),
            attrs.get(INPUT_TOKENS, tokens_in) or 0, attrs.get(OUTPUT_TOKENS, tokens_out) or 0,
            attrs.get(COST, cost) or 0.0, attrs.get(TTFT_MS), count + 1, _dumps(attrs),
            read_in, read_out, stored_in, stored_out, _dumps(children) if children else None)

    def _payloads(self, raw_in: Any, raw_out: Any,
                  masker: Masker | None) -> tuple[str | None, str | None, str | None, str | None]:
        """The stored bodies, and the readable text only where a reader could not derive it from them."""
        limit = self.payload_chars
        body_in, body_out = stored(raw_in, limit, masker), stored(raw_out, limit, masker)
        # a capped body is longer than ``limit`` (cap() appends how much was cut)
        read_in = stored(readable_input(raw_in), limit, masker) if body_in and len(body_in) > limit else None
        read_out = stored(readable_output(raw_out), limit, masker) if body_out and len(body_out) > limit else None
        return body_in, body_out, read_in, read_out

    def close(self) -> None:
        pass
