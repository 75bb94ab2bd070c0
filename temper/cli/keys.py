"""``temper keys ...``."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import typer

from temper.auth.keys import create_key, list_keys, revoke_key
from temper.cli.common import clean_errors, console, ready, table

app = typer.Typer(no_args_is_help=True)


@app.command()
@clean_errors
def create(name: str = typer.Option("", help="A label for the key."),
           model: list[str] = typer.Option(None, "--model", help="Allow only this model (repeatable)."),
           rpm: int = typer.Option(None, help="Requests per minute."),
           tpm: int = typer.Option(None, help="Tokens per minute."),
           budget: int = typer.Option(None, help="Total token budget."),
           expires_days: float = typer.Option(None, help="Expire after this many days."),
           workspace: str = typer.Option("ws_default", help="Workspace id."),
           key: str = typer.Option(None, "--key", help="Import this existing secret instead of generating one.")
           ) -> None:
    """Create an API key; the secret is printed once."""
    s = ready()
    expires = datetime.now(timezone.utc) + timedelta(days=expires_days) if expires_days else None
    info, plain = create_key(s.db_url, name=name, workspace_id=workspace, allowed_models=model or None, rpm=rpm,
                             tpm=tpm, token_budget=budget, expires_at=expires, secret=key)
    console.print(f"created [bold]{info.id}[/bold]")
    console.print("the key is shown only now:")
    console.print(plain, soft_wrap=True, highlight=False)


@app.command("list")
@clean_errors
def list_(all_: bool = typer.Option(False, "--all", help="Include revoked keys.")) -> None:
    """List keys (never their secrets)."""
    s = ready()
    t = table("id", "name", "prefix", "models", "rpm", "tpm", "budget", "used", "expires", "revoked")
    for k in list_keys(s.db_url, include_revoked=all_):
        t.add_row(k.id, k.name, k.prefix + "…", ", ".join(k.allowed_models or ["*"]), str(k.rpm or "-"),
                  str(k.tpm or "-"), str(k.token_budget or "-"), str(k.tokens_used),
                  k.expires_at.isoformat(timespec="seconds") if k.expires_at else "-",
                  k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "-")
    console.print(t)


@app.command()
@clean_errors
def revoke(key_id: str) -> None:
    """Revoke a key; a running server rejects it within a second."""
    s = ready()
    info = revoke_key(s.db_url, key_id)
    console.print(f"revoked [bold]{info.id}[/bold] ({info.name or info.prefix})")
