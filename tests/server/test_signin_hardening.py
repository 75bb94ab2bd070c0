"""Password sign-ins: checked on their own bounded threads (a flood gets 503s, not a stalled server), throttled
per username as well as per address, and X-Forwarded-For believed only from TEMPER_TRUSTED_PROXIES."""
from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from temper.config import Settings
from tests.conftest import Server, start_server, stop_server

PASSWORD = "correct horse battery"


def sign_in(srv: Server, forwarded_for: str | None = None, **body: str) -> httpx.Response:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return httpx.post(srv.url + "/api/v1/auth/session", json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("signin-flood"), {"TEMPER_SIGNIN_THREADS": "1",
                                                                "TEMPER_SIGNIN_QUEUE": "4"})
    assert s.api("POST", "/api/v1/users", json={"username": "flood", "password": PASSWORD}).status_code == 201
    yield s
    stop_server(s)


def flood(url: str, body: dict[str, str], total: int, at_once: int) -> list[tuple[int, str | None, str | None]]:
    """``total`` sign-ins, ``at_once`` at a time: each one's status, error code and retry-after. Run in a process
    of its own, so that the client's threads do not slow the test's own requests."""
    with httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=at_once)) as c, \
            ThreadPoolExecutor(at_once) as pool:
        def one(_: int) -> tuple[int, str | None, str | None]:
            r = c.post("/api/v1/auth/session", json=body)
            return r.status_code, r.json()["error"]["code"] if r.is_error else None, r.headers.get("retry-after")

        return list(pool.map(one, range(total)))


def test_a_sign_in_flood_is_bounded_and_does_not_stall_the_server(bounded: Server) -> None:
    health: list[float] = []
    usage: list[float] = []
    wrong = {"username": "flood", "password": "wrong password"}
    with ProcessPoolExecutor(1) as proc, httpx.Client(base_url=bounded.url, timeout=60, headers={
            "Authorization": f"Bearer {bounded.admin_key}"}) as c:
        replies = proc.submit(flood, bounded.url, wrong, 180, 60)
        while not replies.done():
            t0 = time.perf_counter()
            assert c.get("/health").status_code == 200
            health.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert c.get("/api/v1/usage").status_code == 200  # a synchronous route: the shared thread pool
            usage.append(time.perf_counter() - t0)
            time.sleep(0.02)
        statuses = [status for status, _, _ in replies.result()]
    assert set(statuses) <= {401, 503}, statuses
    busy = [(code, retry) for status, code, retry in replies.result() if status == 503]
    # one thread and four waiting: most of 60 at once are turned away rather than queued without end
    assert len(busy) >= len(statuses) // 2, statuses
    assert all(code == "server_busy" and int(retry) >= 1 for code, retry in busy), busy[:3]
    # the rest of the server answered meanwhile (bounds generous enough for a busy 2-core machine: here the
    # slowest were ~0.3 s; before the password threads, this flood held the usage page for up to 2.6 s, and
    # 300 sign-ins held /health for 15 s)
    assert len(health) >= 3 and max(health) < 1.5, sorted(health)[-5:]
    assert max(usage) < 2, sorted(usage)[-5:]
    assert httpx.post(bounded.url + "/api/v1/auth/session", json={"username": "flood", "password": PASSWORD},
                      timeout=60).status_code == 201


@pytest.fixture
def untrusting(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path, {"TEMPER_SIGNIN_ATTEMPTS": "5"})  # no TEMPER_TRUSTED_PROXIES: the default
    yield s
    stop_server(s)


def test_forwarded_addresses_are_ignored_unless_the_peer_is_a_trusted_proxy(untrusting: Server) -> None:
    statuses = [sign_in(untrusting, f"10.0.0.{i}", key=f"sk-temper-guess-{i:04d}-xxxxxxxx").status_code
                for i in range(6)]
    assert statuses == [401] * 5 + [429], statuses  # every attempt counts against the loopback peer


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path, {"TEMPER_SIGNIN_ATTEMPTS": "5", "TEMPER_TRUSTED_PROXIES": "10.9.9.9, 127.0.0.0/8"})
    for name in ("alice", "bob"):
        assert s.api("POST", "/api/v1/users", json={"username": name, "password": PASSWORD}).status_code == 201
    yield s
    stop_server(s)


def test_sign_ins_are_throttled_per_username_across_addresses(behind_proxy: Server) -> None:
    # through a trusted proxy each forwarded address has its own allowance...
    statuses = [sign_in(behind_proxy, f"203.0.113.{i}", key=f"sk-temper-guess-{i:04d}-xxxxxxxx").status_code
                for i in range(8)]
    assert statuses == [401] * 8, statuses
    # ...but one username has one allowance, whatever address the guesses come from (names are case-insensitive)
    statuses = [sign_in(behind_proxy, f"198.51.100.{i}", username="Alice" if i % 2 else "alice",
                        password=f"guess number {i}").status_code for i in range(6)]
    assert statuses == [401] * 5 + [429], statuses
    r = sign_in(behind_proxy, "198.51.100.99", username="alice", password=PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert sign_in(behind_proxy, "198.51.100.100", username="bob", password=PASSWORD).status_code == 201


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.1/8", "127.0.0.1,nonsense"])
def test_trusted_proxies_must_be_addresses_or_networks(value: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=value)
    listed = Settings(trusted_proxies=" 127.0.0.1, 10.0.0.0/8 ,::1").trusted_proxy_list
    assert listed == ["127.0.0.1", "10.0.0.0/8", "::1"]
