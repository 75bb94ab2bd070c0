"""The ``temper`` command."""
from __future__ import annotations

import os

import typer

from temper.cli import chat, jobs, kb, keys, models, prompts, serve, traces, usage, users

app = typer.Typer(help="Temper: a self-hosted model studio.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
app.command("serve")(serve.serve)
app.command("chat")(chat.chat)
app.command("usage")(usage.usage)
app.command("stats")(traces.stats)
app.add_typer(models.app, name="models", help="The model plaza: list, add, show and remove models.")
app.add_typer(keys.app, name="keys", help="API keys: create, list and revoke.")
app.add_typer(users.app, name="users", help="Console users: add, list, passwd and remove.")
app.add_typer(traces.app, name="traces", help="Traces: list, show as a timed tree, export as JSONL.")
app.add_typer(prompts.app, name="prompts", help="Prompt templates: versions, labels, diff.")
app.add_typer(kb.app, name="kb", help="Knowledge bases: create, add files and pages, status, search, ask.")
app.add_typer(jobs.app, name="jobs", help="Background jobs: list, submit, follow, cancel, download artifacts.")


def main() -> None:
    os.umask(0o077)  # what the server and its jobs write (database, sources, artifacts) is private to its user
    app()


if __name__ == "__main__":
    main()
