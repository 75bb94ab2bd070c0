"""The database: one engine per URL, SQLite tuned for concurrent readers (WAL), Alembic migrations."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.orm import Session, sessionmaker

from temper.store.tables import DEFAULT_WORKSPACE, Revision, Workspace

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


@lru_cache(maxsize=8)
def _sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session(url: str) -> Iterator[Session]:
    """A transaction: commits on success, rolls back on error."""
    with _sessionmaker(url)() as s, s.begin():
        yield s


def migrate(url: str) -> None:
    """Bring the schema to the newest revision and make sure the default workspace exists."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with get_engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with session(url) as s:
        if s.get(Workspace, DEFAULT_WORKSPACE) is None:
            s.add(Workspace(id=DEFAULT_WORKSPACE, name="Default"))


def bump_revision(s: Session, name: str) -> None:
    """Mark ``name`` (e.g. "catalog", "keys") as changed, inside the caller's transaction."""
    if s.execute(update(Revision).where(Revision.name == name).values(value=Revision.value + 1)).rowcount == 0:
        s.add(Revision(name=name, value=1))


def revisions(url: str) -> dict[str, int]:
    with session(url) as s:
        return {name: value for name, value in s.execute(select(Revision.name, Revision.value))}
