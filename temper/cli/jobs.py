"""``temper jobs list|kinds|submit|show|cancel|artifacts|download``: background jobs on a running server."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from temper.cli.client import Client
from temper.cli.common import clean_errors, console, err, table
from temper.errors import InvalidRequest
from temper.jobs.artifacts import check_name

app = typer.Typer(no_args_is_help=True)
URL = typer.Option(None, "--server", help="Server base URL (default TEMPER_URL or http://TEMPER_HOST:TEMPER_PORT).")
FINISHED = ("succeeded", "failed", "cancelled")
COLOUR = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "running": "cyan", "queued": "dim"}


def _status(job: dict[str, Any]) -> str:
    return f"[{COLOUR[job['status']]}]{job['status']}[/]"


@app.command("list")
@clean_errors
def list_(kind: str = typer.Option(None, help="Only jobs of this kind."),
          status: str = typer.Option(None, help="queued, running, succeeded, failed or cancelled."),
          limit: int = typer.Option(50, min=1, max=500), server: str = URL) -> None:
    """Recent jobs, newest first."""
    params = {"limit": limit, **({"kind": kind} if kind else {}), **({"status": status} if status else {})}
    t = table("id", "kind", "status", "progress", "artifacts", "created", "message")
    for job in Client(server).request("GET", "/api/v1/jobs", params=params)["data"]:
        progress = f"{job['done']}/{job['total']} {job['unit']} ({job['percent']}%)"
        t.add_row(job["id"], job["kind"], _status(job), progress, str(job["artifacts"]), job["created_at"],
                  escape(job["error"] or job["message"] or ""))
    console.print(t)


@app.command()
@clean_errors
def kinds(server: str = URL) -> None:
    """The job kinds the server runs (built-in and from plugins)."""
    t = table("kind", "cpus", "gpus", "unit", "description")
    for k in Client(server).request("GET", "/api/v1/jobs/kinds")["data"]:
        t.add_row(k["name"], f"{k['cpus']:g}", f"{k['gpus']:g}", k["unit"], escape(k["description"]))
    console.print(t)


@app.command()
@clean_errors
def submit(kind: str = typer.Argument(..., help="A job kind (see `temper jobs kinds`)."),
           spec: str = typer.Option("{}", help='The job\'s parameters as JSON, e.g. \'{"steps": 20}\'.'),
           follow: bool = typer.Option(False, "--follow", help="Show progress until it has finished."),
           server: str = URL) -> None:
    """Queue a job (admin key)."""
    try:
        body = orjson.loads(spec)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"--spec is not JSON: {e}") from None
    client = Client(server)
    job = client.request("POST", "/api/v1/jobs", json={"kind": kind, "spec": body})
    console.print(f"queued {job['id']} ({job['kind']})")
    if follow:
        job = _follow(client, job["id"])
        _summary(client, job)
        _exit_with(job)


@app.command()
@clean_errors
def show(job_id: str, follow: bool = typer.Option(False, "--follow", "-f", help="Progress bar and new events "
                                                  "until the job has finished."),
         server: str = URL) -> None:
    """A job: status, progress, events and artifacts."""
    client = Client(server)
    if follow:
        job = _follow(client, job_id)
    else:
        job = client.request("GET", f"/api/v1/jobs/{job_id}")
        _events(client, job_id)
    _summary(client, job)
    if follow:
        _exit_with(job)


def _summary(client: Client, job: dict[str, Any]) -> None:
    console.print(f"[bold]{job['id']}[/bold] {job['kind']}: {_status(job)} — {job['done']}/{job['total']} "
                  f"{job['unit']} ({job['percent']}%), attempt {job['attempts']}")
    console.print(f"  created {job['created_at']}, started {job['started_at'] or '-'}, "
                  f"finished {job['finished_at'] or '-'}")
    console.print(f"  {escape(job['error'] or job['message'] or '')}")
    if job["artifacts"]:
        _artifact_table(client, job["id"])


def _event_line(e: dict[str, Any]) -> str:
    colour = {"warning": "yellow", "error": "red"}.get(e["level"], "dim")
    data = " ".join(f"{k}={v}" for k, v in e["data"].items() if k != "traceback")
    return f"[{colour}]{e['at']}[/] {escape(e['message'])} [dim]{escape(data)}[/dim]"


def _events(client: Client, job_id: str, after: int = 0, out: Any = console) -> int:
    """Print the events after ``after``; the last id printed."""
    while True:
        page = client.request("GET", f"/api/v1/jobs/{job_id}/events", params={"after": after, "limit": 500})
        for e in page["data"]:
            out.print(_event_line(e))
            after = e["id"]
        if not page["has_more"]:
            return after


def _follow(client: Client, job_id: str) -> dict[str, Any]:
    """A progress bar, and events as they come, until the job has finished; the finished job."""
    seen = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task(job_id, total=None, note="queued")
        while True:
            job = client.request("GET", f"/api/v1/jobs/{job_id}")
            seen = _events(client, job_id, seen, bar.console)
            bar.update(task, completed=job["done"], total=job["total"] or None,
                       note=escape(job["error"] or job["message"] or ""))
            if job["status"] in FINISHED:
                return job
            time.sleep(0.3)


def _exit_with(job: dict[str, Any]) -> None:
    if job["status"] != "succeeded":
        err.print(f"[red]{job['status']}:[/red] {escape(job['error'] or job['message'] or '')}")
        raise typer.Exit(1)


@app.command()
@clean_errors
def cancel(job_id: str, server: str = URL) -> None:
    """Cancel a job: a queued one at once, a running one at its next progress report (admin key)."""
    job = Client(server).request("POST", f"/api/v1/jobs/{job_id}/cancel")
    console.print(f"{job['id']}: {'cancelled' if job['status'] == 'cancelled' else 'cancel requested'}")


def _artifact_table(client: Client, job_id: str) -> list[dict[str, Any]]:
    items = client.request("GET", f"/api/v1/jobs/{job_id}/artifacts")["data"]
    t = table("artifact", "bytes", "media type", "sha256", "created")
    for a in items:
        t.add_row(escape(a["name"]), str(a["size_bytes"]), a["media_type"], a["sha256"][:16], a["created_at"])
    console.print(t)
    return items


@app.command()
@clean_errors
def artifacts(job_id: str, server: str = URL) -> None:
    """The files a job wrote."""
    _artifact_table(Client(server), job_id)


@app.command()
@clean_errors
def download(job_id: str, name: str = typer.Argument(None, help="One artifact (default: all of them)."),
             output: Path = typer.Option(None, "--output", "-o", help="File or folder to write to (default: the "
                                         "artifact's name here; all of them: a folder named after the job)."),
             server: str = URL) -> None:
    """Download a job's artifacts."""
    client = Client(server)
    if name is not None:
        target = output or Path(Path(check_name(name)).name)
        _download(client, job_id, name, target / Path(name).name if target.is_dir() else target)
        return
    folder = output or Path(job_id)
    for a in client.request("GET", f"/api/v1/jobs/{job_id}/artifacts")["data"]:
        _download(client, job_id, a["name"], folder / check_name(a["name"]))


def _download(client: Client, job_id: str, name: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with client.stream("GET", f"/api/v1/jobs/{job_id}/artifacts/{quote(name, safe='/')}") as r, target.open("wb") as f:
        for block in r.iter_bytes():
            f.write(block)
    console.print(f"{escape(name)} → {escape(str(target))}")
