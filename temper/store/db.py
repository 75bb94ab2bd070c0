"""The database: one engine per URL, SQLite tuned for concurrent readers (WAL), Alembic migrations."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, sessionmaker

from temper.store.tables import DEFAULT_WORKSPACE, Revision, Workspace, utcnow

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x74656D706572  # "temper": the advisory lock key migrations hold on PostgreSQL


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _postgres_utc(_dialect, _record, _cargs, cparams: dict) -> None:  # type: ignore[no-untyped-def]
    """Sessions in UTC, whatever the server's default: times come back as UTC (an API prints them with a Z)
    and SQL that formats a time (usage buckets) formats UTC. Added to any ``options`` the URL gives."""
    cparams["options"] = (cparams.get("options", "") + " -c TimeZone=UTC").strip()


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "postgresql":
            event.listen(engine, "do_connect", _postgres_utc)
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
    """Bring the schema to the newest revision and make sure the default workspace exists.

    Processes starting together (replicas, a CLI beside the server) migrate one at a time: the whole upgrade is
    one transaction that first takes a lock (PostgreSQL: an advisory lock; SQLite: the write lock), so the
    later ones find the schema current instead of creating the same tables again.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    with get_engine(url).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        if conn.scalar(select(Workspace.id).where(Workspace.id == DEFAULT_WORKSPACE)) is None:
            conn.execute(insert(Workspace).values(id=DEFAULT_WORKSPACE, name="Default", created_at=utcnow()))
    _private(url)


def _private(url: str) -> None:
    """A SQLite database (and its WAL files) readable by its owner only, whatever made it."""
    path = make_url(url).database if url.startswith("sqlite") else None
    if path and path != ":memory:":
        for name in (path, path + "-wal", path + "-shm"):
            if os.path.exists(name):
                os.chmod(name, 0o600)


def bump_revision(s: Session, name: str) -> None:
    """Mark ``name`` (e.g. "catalog", "keys") as changed, inside the caller's transaction.

    On PostgreSQL one upsert: two writers bumping a counter that does not exist yet find no row to lock, and
    both would insert it. (SQLite runs one writer at a time: the UPDATE takes its write lock.)
    """
    if s.get_bind().dialect.name == "postgresql":
        stmt = postgresql.insert(Revision).values(name=name, value=1)
        s.execute(stmt.on_conflict_do_update(index_elements=[Revision.name], set_={"value": Revision.value + 1}))
    elif s.execute(update(Revision).where(Revision.name == name).values(value=Revision.value + 1)).rowcount == 0:
        s.add(Revision(name=name, value=1))


def revisions(url: str) -> dict[str, int]:
    with session(url) as s:
        return {name: value for name, value in s.execute(select(Revision.name, Revision.value))}
