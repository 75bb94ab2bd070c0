"""``temper traces list|show|export|masking`` and ``temper stats``."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.tree import Tree

from temper.cli.common import clean_errors, console, ready, table
from temper.errors import InvalidRequest
from temper.ops.analytics import CallFilter, window
from temper.ops.analytics import stats as compute_stats
from temper.ops.trace_masking import get_masking, set_masking
from temper.ops.traces import TraceFilter, count_traces, export_traces, get_trace, list_traces, now_us
from temper.store.tables import DEFAULT_WORKSPACE

app = typer.Typer(no_args_is_help=True)
BAR = 24


def _filter(q: str | None, model: str | None, key: str | None, app_id: str | None, status: str | None,
            min_ms: float | None, max_ms: float | None, hours: float | None) -> TraceFilter:
    if status not in (None, "ok", "error"):
        raise InvalidRequest("--status must be ok or error.")
    return TraceFilter(q=q, model=model, key_id=key, app_id=app_id, status=status, min_ms=min_ms, max_ms=max_ms,
                       since_us=now_us() - int(hours * 3_600_000_000) if hours else None)


Q = typer.Option(None, "--q", help="Text in the input, output, name or error.")
MODEL = typer.Option(None, help="Only this model.")
KEY = typer.Option(None, "--key", help="Only this key id.")
APP = typer.Option(None, "--app", help="Only this app id.")
STATUS = typer.Option(None, help="ok or error.")
MIN_MS = typer.Option(None, help="At least this many milliseconds.")
MAX_MS = typer.Option(None, help="At most this many milliseconds.")
HOURS = typer.Option(None, help="Only the last N hours.")


@app.command("list")
@clean_errors
def list_(q: str = Q, model: str = MODEL, key: str = KEY, app_id: str = APP, status: str = STATUS,
          min_ms: float = MIN_MS, max_ms: float = MAX_MS, hours: float = HOURS,
          limit: int = typer.Option(20, min=1, max=1000, help="How many, newest first.")) -> None:
    """Recent traces, newest first, with filters."""
    s = ready()
    rows, more = list_traces(s.db_url, _filter(q, model, key, app_id, status, min_ms, max_ms, hours), limit=limit)
    t = table("trace", "start", "name", "model", "key", "status", "ms", "tokens in/out", "cost $", "input")
    for r in rows:
        t.add_row(r["id"], r["start"][:19].replace("T", " "), escape(r["name"]), r["model"] or "", r["key_id"] or "",
                  "[green]ok[/green]" if r["status"] == "ok" else "[red]error[/red]", f"{r['duration_ms']:.1f}",
                  f"{r['input_tokens']}/{r['output_tokens']}", f"{r['cost']:.6f}", escape((r["input"] or "")[:60]))
    console.print(t)
    if more:
        console.print(f"[dim]more: narrow the filters or raise --limit (showing {len(rows)})[/dim]")


@app.command()
@clean_errors
def show(trace_id: str = typer.Argument(..., help="The trace id (x-trace-id)."),
         attributes: bool = typer.Option(False, "--attributes", "-a", help="Print every span's attributes.")) -> None:
    """A trace as a tree with timings: offset, duration and a bar per span."""
    s = ready()
    t = get_trace(s.db_url, trace_id)
    total = max(t["duration_ms"], 1e-6)
    nodes: dict[str, Tree] = {}
    tree: Tree | None = None
    for sp in t["spans"]:
        start = int(sp["offset_ms"] / total * BAR)
        width = max(1, round(sp["duration_ms"] / total * BAR))
        bar = " " * start + "█" * min(width, BAR - start)
        colour = "red" if sp["status"] == "error" else "cyan"
        label = (f"[{colour}]{bar:<{BAR}}[/{colour}] {escape(sp['name'])} [dim]{sp['kind']}[/dim] "
                 f"+{sp['offset_ms']:.1f} ms, {sp['duration_ms']:.1f} ms")
        if sp["error"]:
            label += f" [red]{escape(sp['error'][:120])}[/red]"
        if attributes:
            label += "\n" + "\n".join(f"  [dim]{escape(k)}[/dim] = {escape(str(v))}"
                                      for k, v in sp["attributes"].items())
        node = Tree(label) if tree is None else nodes.get(sp["parent_id"] or "", tree).add(label)
        tree = tree or node
        nodes[sp["id"]] = node
    console.print(f"[bold]{t['id']}[/bold]  {t['start']}  {t['status']}  {t['duration_ms']:.1f} ms  "
                  f"{t['input_tokens']}+{t['output_tokens']} tokens  ${t['cost']:.6f}")
    console.print(tree)
    for field in ("input", "output"):
        if t[field]:
            console.print(f"[bold]{field}[/bold]: {escape(t[field][:2000])}")
    for sc in t["scores"]:
        console.print(f"[bold]score[/bold] {escape(sc['name'])} = {sc['value']} ({sc['source']}"
                      f"{', ' + escape(sc['author']) if sc['author'] else ''})")


@app.command()
@clean_errors
def export(out: Path = typer.Option(..., "--out", "-o", help="JSONL file to write."), q: str = Q,
           model: str = MODEL, key: str = KEY, app_id: str = APP, status: str = STATUS, min_ms: float = MIN_MS,
           max_ms: float = MAX_MS, hours: float = HOURS,
           spans: bool = typer.Option(True, help="Include each trace's spans and scores.")) -> None:
    """Write matching traces as JSONL (one per line, newest first)."""
    s = ready()
    f = _filter(q, model, key, app_id, status, min_ms, max_ms, hours)
    total = count_traces(s.db_url, f)
    n = 0
    with out.open("wb") as fh, Progress(TextColumn("exporting"), BarColumn(), MofNCompleteColumn(),
                                        TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("export", total=total)
        for line in export_traces(s.db_url, f, spans=spans):
            fh.write(line)
            n += 1
            bar.advance(task)
    console.print(f"wrote {n} traces to {out}")


@app.command()
@clean_errors
def masking(mask: bool = typer.Option(None, "--on/--off", help="Store traces with personal data masked, or "
                                      "verbatim (members still read them masked)."),
            server_default: bool = typer.Option(False, "--server-default",
                                                help="Follow TEMPER_TRACE_MASK_PII again."),
            workspace: str = typer.Option(DEFAULT_WORKSPACE, help="The workspace.")) -> None:
    """Show or choose whether a workspace's traces are stored with personal data masked."""
    if mask is not None and server_default:
        raise InvalidRequest("Give --on, --off or --server-default, not two of them.")
    s = ready()
    if mask is not None or server_default:
        state = set_masking(s.db_url, workspace, mask, s.trace_mask_pii)
    else:
        state = get_masking(s.db_url, workspace, s.trace_mask_pii)
    source = "server default" if state["mask_pii_workspace"] is None else "workspace's choice"
    console.print(f"{workspace}: traces stored {'masked' if state['mask_pii'] else 'verbatim'} ({source})")


@clean_errors
def stats(hours: float = typer.Option(1.0, help="The last N hours."),
          by: str = typer.Option("model", "--by", help="model, key, app or source."),
          bucket: str = typer.Option(None, help="minute, hour or day (default: by the window)."),
          model: str = MODEL, key: str = KEY, app_id: str = APP) -> None:
    """Requests (metered model calls, as ``temper usage`` counts them), errors, latency p50/p95/p99 and TTFT of
    the successful ones, tokens and cost, per model, key, app or source."""
    s = ready()
    bucket = bucket or ("minute" if hours <= 6 else "hour" if hours <= 24 * 14 else "day")
    since, until = window(hours=hours)
    r = compute_stats(s.db_url, CallFilter(model=model, key_id=key, app_id=app_id, since=since, until=until),
                      group_by=by, bucket=bucket)
    t = table(by, "requests", "errors", "error %", "p50 ms", "p95 ms", "p99 ms", "TTFT p50", "tokens in/out",
              "cost $", title=f"last {hours:g} h, {r['since'][:16]} → {r['until'][:16]} UTC")
    for name, m in [*((g["group"] or "-", g) for g in r["groups"]), ("[bold]all[/bold]", r["totals"])]:
        t.add_row(name, str(m["requests"]), str(m["errors"]), f"{m['error_rate'] * 100:.1f}", _ms(m["p50_ms"]),
                  _ms(m["p95_ms"]), _ms(m["p99_ms"]), _ms(m["ttft_p50_ms"]),
                  f"{m['input_tokens']}/{m['output_tokens']}", f"{m['cost']:.6f}")
    console.print(t)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"
