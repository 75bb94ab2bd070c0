"""``temper users ...``: people who sign in to the console with a password."""
from __future__ import annotations

import typer

from temper.auth.users import ROLES, create_user, list_users, remove_user, set_password
from temper.cli.common import clean_errors, console, ready, table
from temper.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True)


def _password(given: str | None) -> str:
    return given if given is not None else typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@app.command()
@clean_errors
def add(username: str, role: str = typer.Option("member", help=f"One of {', '.join(ROLES)}."),
        password: str = typer.Option(None, envvar="TEMPER_NEW_PASSWORD", show_envvar=True,
                                     help="The password (prompted for when not given)."),
        workspace: str = typer.Option("ws_default", help="Workspace id.")) -> None:
    """Add a console user; they sign in with USERNAME and the password."""
    s = ready()
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    user = create_user(s.db_url, username, _password(password), role, workspace)
    console.print(f"added [bold]{user.username}[/bold] ({user.role}), id {user.id}, personal key {user.key_id}")


@app.command("list")
@clean_errors
def list_() -> None:
    """List console users."""
    s = ready()
    t = table("id", "username", "role", "key", "created")
    for u in list_users(s.db_url):
        t.add_row(u.id, u.username, u.role, u.key_id, u.created_at.isoformat(timespec="seconds") if u.created_at else "")
    console.print(t)


@app.command()
@clean_errors
def passwd(user: str, password: str = typer.Option(None, envvar="TEMPER_NEW_PASSWORD", show_envvar=True,
                                                   help="The new password (prompted for when not given).")) -> None:
    """Set a user's password."""
    s = ready()
    set_password(s.db_url, user, _password(password))
    console.print(f"password of {user} changed")


@app.command()
@clean_errors
def remove(user: str) -> None:
    """Remove a user (by name or id); their personal key is revoked and their sessions end."""
    s = ready()
    removed = remove_user(s.db_url, user)
    console.print(f"removed {removed.username}")
