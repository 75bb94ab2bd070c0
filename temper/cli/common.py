"""What every CLI command shares: settings, a migrated database, clean error output."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from temper.config import Settings, get_settings
from temper.errors import TemperError
from temper.store.db import migrate

console = Console(width=None if sys.stdout.isatty() else 220)  # piped output keeps whole values
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells fold rather than being cut short, so ids and keys stay whole."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def ready() -> Settings:
    """Settings with the schema migrated (commands work whether or not a server runs)."""
    s = get_settings()
    migrate(s.db_url)
    return s


def clean_errors(fn: F) -> F:
    """Turn expected failures into one red line and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TemperError as e:
            err.print(f"[red]error:[/red] {e.message}")
        except ValidationError as e:
            setting = e.title == Settings.__name__  # a TEMPER_* setting that does not parse or is out of range
            for problem in e.errors():
                where = "_".join(str(p) for p in problem["loc"])
                if setting:
                    where = f"TEMPER_{where.upper()}={problem.get('input')!r}"
                err.print(f"[red]invalid {'setting' if setting else 'input'}:[/red] {where}: {problem['msg']}")
        except SQLAlchemyError as e:
            err.print(f"[red]database error:[/red] {e.__class__.__name__}: {str(e).splitlines()[0]}")
        except OSError as e:
            err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]
