"""``temper usage``."""
from __future__ import annotations

import typer

from temper.cli.common import clean_errors, console, ready, table
from temper.errors import InvalidRequest
from temper.models.metering import since_days, usage_summary


@clean_errors
def usage(by: list[str] = typer.Option(["key", "model", "day"], "--by", help="key, model or day (repeatable)."),
          days: int = typer.Option(None, help="Only the last N days.")) -> None:
    """Usage totals per key, model and day: requests, errors, tokens, cost, latency."""
    s = ready()
    for group in by:
        if group not in ("key", "model", "day"):
            raise InvalidRequest(f"--by must be key, model or day, not {group!r}")
        t = table(group, "requests", "errors", "prompt tok", "completion tok", "total tok", "cost $",
                  "avg ms", "max ms", title=f"usage by {group}")
        for r in usage_summary(s.db_url, group_by=group, since=since_days(days) if days else None):
            t.add_row(str(r["group"]), str(r["requests"]), str(r["errors"]), str(r["prompt_tokens"]),
                      str(r["completion_tokens"]), str(r["total_tokens"]), f"{r['cost'] or 0:.6f}",
                      f"{r['avg_latency_ms'] or 0:.1f}", f"{r['max_latency_ms'] or 0:.1f}")
        console.print(t)
