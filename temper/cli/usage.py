"""``temper usage``."""
from __future__ import annotations

import typer

from temper.cli.common import clean_errors, console, ready, table
from temper.errors import InvalidRequest
from temper.models.metering import since_days
from temper.ops.analytics import CallFilter, stats


@clean_errors
def usage(by: list[str] = typer.Option(["key", "model", "day"], "--by", help="key, model or day (repeatable)."),
          days: int = typer.Option(None, help="Only the last N days.")) -> None:
    """Usage totals per key, model and day: requests, errors, tokens, cost, latency."""
    s = ready()
    for group in by:
        if group not in ("key", "model", "day"):
            raise InvalidRequest(f"--by must be key, model or day, not {group!r}")
        t = table(group, "requests", "errors", "input tok", "output tok", "total tok", "cost $",
                  "avg ms", "max ms", title=f"usage by {group}")
        rows = stats(s.db_url, CallFilter(since=since_days(days) if days else None), group_by=group)["groups"]
        for r in sorted(rows, key=lambda r: str(r["group"] or "")):
            t.add_row(str(r["group"]), str(r["requests"]), str(r["errors"]), str(r["input_tokens"]),
                      str(r["output_tokens"]), str(r["input_tokens"] + r["output_tokens"]), f"{r['cost']:.6f}",
                      f"{r['avg_ms'] or 0:.1f}", f"{r['max_ms'] or 0:.1f}")
        console.print(t)
