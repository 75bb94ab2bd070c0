"""A database query as knowledge-base documents: one per row, or one per distinct value of a column, synced
incrementally by a key column.

Read-only three ways: only one SELECT (or WITH ... SELECT) statement is accepted; it runs as a subquery, where
databases refuse data-changing statements; and the connection is read-only where the dialect allows (SQLite
files open with ``mode=ro``, PostgreSQL and MySQL transactions are ``READ ONLY``). A read-only database account
is still the safest choice.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from temper.errors import InvalidRequest
from temper.knowledge.ingest.records import _cell_text
from temper.knowledge.sources import QueryError
from temper.knowledge.types import Block, ParsedDocument

Key = str | int | float
MEDIA_TYPE = "application/x-temper-records+json"  # a row's document, stored as its parsed blocks
CONFIG_FIELDS = ("url", "query", "key_column", "title_column", "group_by")
_BATCH = 500  # rows fetched per round trip while streaming
_SUFFIX_VALUE_CHARS = 200  # of a key (or group) value in a document's name
# String literals, quoted identifiers and comments, masked before looking at the statement's own text.
_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)
_SELECT = re.compile(r"\(*\s*(select|with)\b", re.I)


@dataclass
class DatabaseSource:
    url: str  # a SQLAlchemy URL: sqlite:///data/crm.db, postgresql+psycopg://reader@host/crm
    query: str  # one SELECT
    key_column: str  # unique and increasing (an id, an insertion time): the row's identity and the sync cursor
    title_column: str | None = None
    group_by: str | None = None  # one document per distinct value of this column instead of one per row


@dataclass
class RowDocument:
    key: str  # "#id=42" or "#customer=ACME": stable, the document's source suffix
    max_key: Key  # the largest key it covers: pass the largest of these as ``since`` next time
    title: str
    document: ParsedDocument
    checksum: str  # sha256 of the rendered records: unchanged documents need no re-indexing


def read_documents(source: DatabaseSource, since: Key | None = None) -> Iterator[RowDocument]:
    """The documents of rows whose key is greater than ``since`` (all rows when None; rows without a key are
    skipped), in key order (in group order with ``group_by``), streamed. With ``group_by``, a group with any new
    row comes back whole, so its document can replace the one synced before. Raises ``QueryError`` with a
    message a person can act on."""
    query = _select_only(source.query)
    engine = _engine(source.url)
    where = f"database {_display(sa.make_url(source.url))}"
    try:
        with engine.connect() as conn:
            if conn.dialect.name in ("postgresql", "mysql", "mariadb"):
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            _check_columns(source, _columns(conn, query))
            result = conn.execution_options(stream_results=True, yield_per=_BATCH).execute(
                _statement(source, query, since), {"since": since} if since is not None else {})
            rows = (dict(row) for row in result.mappings())
            yield from (_grouped(source, rows) if source.group_by else (_row_document(source, row) for row in rows))
    except SQLAlchemyError as e:
        raise QueryError(f"{where}: {_reason(e)}") from e
    finally:
        engine.dispose()


def check_not_studio(url: str, studio_db: str, home: Path) -> None:
    """Refuse a source that is Temper's own database, or a file in its data directory: through a knowledge
    base, anyone who may search it would read password hashes, keys and everyone's traced prompts."""
    try:
        target, own = sa.make_url(url), sa.make_url(studio_db)
    except ArgumentError:
        return  # not a URL: check_source says so
    refused = QueryError("this is Temper's own database (or a file in its data directory); sync from a copy or "
                         "a read-only replica of the data you mean, with a read-only account")
    if target.get_backend_name() == "sqlite":
        name = (target.database or "").removeprefix("file:")
        if not name or name == ":memory:":
            return
        path = Path(name).expanduser().resolve()
        own_file = (own.database or "").removeprefix("file:") if own.get_backend_name() == "sqlite" else ""
        if path.is_relative_to(home.resolve()) or (own_file and path.exists() and Path(own_file).exists()
                                                    and os.path.samefile(path, own_file)):
            raise refused
    elif target.get_backend_name() == own.get_backend_name() and _server(target) == _server(own):
        raise refused


def _server(u: URL) -> tuple[str, int | None, str]:
    """Where a server database lives: host (or socket directory), port and database name."""
    host = u.host or str(u.query.get("host") or "")
    return host.rstrip("/"), u.port, u.database or ""


def check_source(source: DatabaseSource) -> None:
    """Fail now, with ``QueryError``, when the source could not be synced: not one SELECT, a bad URL or
    driver, an unreachable database, or key/title/group columns the query does not return."""
    query = _select_only(source.query)
    engine = _engine(source.url)
    try:
        with engine.connect() as conn:
            _check_columns(source, _columns(conn, query))
    except SQLAlchemyError as e:
        raise QueryError(f"database {_display(sa.make_url(source.url))}: {_reason(e)}") from e
    finally:
        engine.dispose()


def _select_only(query: str) -> str:
    """The query without trailing semicolons and comments; refused unless it is a single SELECT."""
    # Same length, so positions stay valid; comments become blanks, literals and identifiers stay non-blank.
    masked = _LITERALS.sub(lambda m: (" " if m.group()[0] in "-/" else "x") * len(m.group()), query)
    body = masked.rstrip().rstrip(";").rstrip()
    if not body:
        raise QueryError("the query is empty; write a SELECT statement")
    if ";" in body:
        raise QueryError("the query must be a single SELECT statement, not several separated by ';'")
    if not _SELECT.match(body.lstrip()):
        statement = body.split()[0].upper()
        raise QueryError(f"only SELECT queries can be synced (the database is only read), not {statement}")
    return query[:len(body)]


def _engine(url: str) -> Engine:
    try:
        parsed = sa.make_url(url)
    except ArgumentError:
        raise QueryError("the database URL cannot be parsed; write it as dialect+driver://user:password@host/db "
                         "(or sqlite:///path/to/file.db)") from None
    safe = _display(parsed)
    try:
        return sa.create_engine(_read_only_sqlite(parsed) if parsed.get_backend_name() == "sqlite" else parsed)
    except NoSuchModuleError:
        raise QueryError(f"{safe}: no SQLAlchemy dialect or driver is named {parsed.drivername!r}") from None
    except ImportError as e:
        raise QueryError(f"{safe}: the database driver is not installed (Python module {e.name!r}); "
                         "install it into Temper's environment") from None
    except (ArgumentError, TypeError, ValueError) as e:
        raise QueryError(f"{safe}: {e}") from None


def _display(url: URL) -> str:
    """The URL for messages: password hidden, the path as written (SQLAlchemy percent-encodes it)."""
    return unquote(url.render_as_string(hide_password=True))


def _read_only_sqlite(url: URL) -> URL:
    """A SQLite file opened read-only through a ``file:`` URI, which also keeps a missing file an error
    instead of creating an empty database."""
    database = url.database or ""
    if database in ("", ":memory:"):
        raise QueryError("a SQLite source needs a database file: sqlite:///path/to/file.db")
    if not database.startswith("file:"):
        database = "file:" + quote(database)
    return url.set(database=database, query={**url.query, "mode": "ro", "uri": "true"})


def _source(query: str) -> sa.Subquery:
    # Colons are escaped so that text in the query such as ' :x' is not taken for a bind parameter.
    return sa.text(query.replace(":", "\\:")).columns().subquery("src")


def _columns(conn: Connection, query: str) -> list[str]:
    return list(conn.execute(sa.select(sa.literal_column("*")).select_from(_source(query)).where(sa.false())).keys())


def _check_columns(source: DatabaseSource, columns: list[str]) -> None:
    for option, name in (("key_column", source.key_column), ("title_column", source.title_column),
                         ("group_by", source.group_by)):
        if name is not None and name not in columns:
            raise QueryError(f"{option} {name!r} is not a column of the query's result; its columns are "
                             + ", ".join(columns))


def _statement(source: DatabaseSource, query: str, since: Key | None) -> sa.Select[Any]:
    key = sa.column(source.key_column)
    statement = sa.select(sa.literal_column("*")).select_from(_source(query)).where(key.is_not(None))
    if source.group_by is None:
        if since is not None:
            statement = statement.where(key > sa.bindparam("since"))
        return statement.order_by(key)
    group = sa.column(source.group_by)
    if since is not None:
        changed = sa.select(group).select_from(_source(query)).where(key > sa.bindparam("since"))
        statement = statement.where(group.in_(changed))
    return statement.order_by(group, key)


def _grouped(source: DatabaseSource, rows: Iterator[dict[str, Any]]) -> Iterator[RowDocument]:
    """Consecutive rows with the same group value (the statement orders by it) make one document."""
    assert source.group_by is not None
    group: list[dict[str, Any]] = []
    for row in rows:
        if group and row[source.group_by] != group[0][source.group_by]:
            yield _group_document(source, group)
            group = []
        group.append(row)
    if group:
        yield _group_document(source, group)


def _row_document(source: DatabaseSource, row: dict[str, Any]) -> RowDocument:
    value = _cell_text(row[source.key_column])
    title = (_cell_text(row[source.title_column]) if source.title_column else "") or f"{source.key_column} {value}"
    block = _record(source, row)
    return _document(_suffix(source.key_column, value), _key(row[source.key_column]), title, [block],
                     {"columns": list(row), source.key_column: value})


def _group_document(source: DatabaseSource, rows: list[dict[str, Any]]) -> RowDocument:
    assert source.group_by is not None
    value = _cell_text(rows[0][source.group_by])
    title = (_cell_text(rows[0][source.title_column]) if source.title_column else "") or f"{source.group_by} {value}"
    keys = [row[source.key_column] for row in rows]
    return _document(_suffix(source.group_by, value), _key(max(keys)), title, [_record(source, row) for row in rows],
                     {"columns": list(rows[0]), source.group_by: value, "rows": len(rows)})


def _suffix(column: str, value: str) -> str:
    """``#column=value``, naming a row's (or group's) document; a value too long to be part of a name is cut and
    followed by its digest, so that it still names one row."""
    if len(value) > _SUFFIX_VALUE_CHARS:
        value = value[:_SUFFIX_VALUE_CHARS // 2] + "…" + hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"#{column}={value}"


def _record(source: DatabaseSource, row: dict[str, Any]) -> Block:
    """``column: value`` lines, empty and binary values left out, as the spreadsheet parsers render a row."""
    lines = [f"{name}: {text}" for name, value in row.items()
             if not isinstance(value, (bytes, bytearray, memoryview)) and (text := _cell_text(value))]
    return Block("\n".join(lines), "record", metadata={source.key_column: _key(row[source.key_column])})


def _document(suffix: str, max_key: Key, title: str, blocks: list[Block], metadata: dict[str, Any]) -> RowDocument:
    checksum = hashlib.sha256("\n\n".join(b.text for b in blocks).encode()).hexdigest()
    document = ParsedDocument(title=title, blocks=blocks, metadata=metadata, source_suffix=suffix)
    return RowDocument(key=suffix, max_key=max_key, title=title, document=document, checksum=checksum)


def _key(value: Any) -> Key:
    """A key value as it can be stored and bound again for the next sync."""
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


def _reason(error: SQLAlchemyError) -> str:
    """The database's own message (its first line), without SQLAlchemy's statement dump and link."""
    if isinstance(error, DBAPIError) and error.orig is not None:
        text = str(error.orig)
    else:
        text = str(error)
    return text.strip().split("\n")[0] or type(error).__name__


def source_of(config: dict[str, Any]) -> DatabaseSource:
    """The source a knowledge base's stored source configuration describes."""
    missing = [k for k in ("url", "query", "key_column") if not config.get(k)]
    if missing:
        raise InvalidRequest(f"A database source needs {', '.join(missing)}.", param=missing[0],
                             code="missing_source_fields", params={"fields": ", ".join(missing)})
    return DatabaseSource(**{k: config.get(k) for k in CONFIG_FIELDS})


def encode(doc: ParsedDocument) -> bytes:
    """A row's document as stored (``MEDIA_TYPE``): ingestion needs no parser and a retry no second query."""
    return orjson.dumps(dataclasses.asdict(doc))


def decode(data: bytes) -> ParsedDocument:
    d = orjson.loads(data)
    return ParsedDocument(d["title"], [Block(**b) for b in d["blocks"]], d["metadata"], d["source_suffix"])
