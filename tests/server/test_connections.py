"""Slow and surplus connections: headers must arrive within TEMPER_HEADER_TIMEOUT_S, a body may not stall for
TEMPER_BODY_TIMEOUT_S, and connections beyond TEMPER_MAX_CONNECTIONS are answered 503 and closed."""
from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server


def connect(server: Server, timeout_s: float = 10) -> socket.socket:
    u = urlsplit(server.url)
    return socket.create_connection((u.hostname, u.port), timeout=timeout_s)


def read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    reply = b""
    while True:
        try:
            more = s.recv(65536)
        except ConnectionResetError:
            return reply
        if not more:
            return reply
        reply += more


def read_response(s: socket.socket) -> bytes:
    """One whole response (it has a Content-Length) on a connection that stays open."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += s.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head)[1])
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def status_and_error(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"] if body else {}


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("impatient"), {"TEMPER_HEADER_TIMEOUT_S": "1",
                                                             "TEMPER_BODY_TIMEOUT_S": "1"})
    yield s
    stop_server(s)


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"])
def test_a_connection_without_complete_headers_is_dropped(impatient: Server, sent: bytes) -> None:
    with connect(impatient) as s:
        t0 = time.perf_counter()
        s.sendall(sent)
        reply = read_until_closed(s)
        seconds = time.perf_counter() - t0
    assert 0.9 < seconds < 4, seconds
    status, error = status_and_error(reply)
    assert status == 408 and error["code"] == "request_timeout", reply


def test_headers_dribbled_a_byte_at_a_time_are_dropped(impatient: Server) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"x-pad: " + b"a" * 200 + b"\r\n\r\n"
    with connect(impatient) as s:
        t0 = time.perf_counter()
        for byte in head:
            if select.select([s], [], [], 0.05)[0]:  # answered: stop sending (more would be reset)
                break
            s.sendall(bytes([byte]))
        reply = read_until_closed(s)
        seconds = time.perf_counter() - t0
    assert seconds < 4 and reply.startswith(b"HTTP/1.1 408"), (seconds, reply[:60])


def test_endless_headers_are_refused(impatient: Server) -> None:
    with connect(impatient) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nx-pad: " + b"a" * 66_000)  # just over 64 KiB, never ended
        status, error = status_and_error(read_until_closed(s))
    assert status == 431 and error["code"] == "headers_too_large"


def test_kept_alive_connections_work_and_idle_ones_close(impatient: Server) -> None:
    with connect(impatient) as s:
        for _ in range(3):  # requests faster than the header timeout, over one connection
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s).startswith(b"HTTP/1.1 200")
            time.sleep(0.5)
        s.sendall(b"G")  # a next request begun and never finished
        t0 = time.perf_counter()
        assert read_until_closed(s).startswith(b"HTTP/1.1 408")
        assert time.perf_counter() - t0 < 4


@pytest.mark.parametrize("path", ["/api/v1/keys", "/v1/chat/completions"])
def test_a_stalled_body_is_dropped(impatient: Server, path: str) -> None:
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {impatient.admin_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\": ")
    with connect(impatient) as s:
        s.sendall(head.encode())
        t0 = time.perf_counter()
        reply = read_until_closed(s)
        seconds = time.perf_counter() - t0
    assert 0.9 < seconds < 4, seconds
    status, error = status_and_error(reply)
    assert status == 408 and error["code"] == "request_timeout", reply


def test_a_slow_but_moving_body_is_read(impatient: Server) -> None:
    body = json.dumps({"name": "slow-" + "x" * 20}).encode()
    head = (f"POST /api/v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {impatient.admin_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with connect(impatient) as s:
        s.sendall(head)
        for i in range(0, len(body), 8):  # longer than the body timeout in all, never silent for that long
            time.sleep(0.3)
            s.sendall(body[i:i + 8])
        assert read_response(s).startswith(b"HTTP/1.1 201")


def test_a_body_sent_after_an_early_answer_is_still_read(impatient: Server) -> None:
    """An answer before the body (a wrong key) keeps the connection; the body that follows is not headers."""
    with connect(impatient) as s:
        s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-wrong\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 401")
        s.sendall(b" " * 200_000)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s).startswith(b"HTTP/1.1 200")


@pytest.fixture
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("capped"), {"TEMPER_MAX_CONNECTIONS": "4"})
    yield s
    stop_server(s)


def test_connections_beyond_the_cap_are_answered_503_and_closed(capped: Server) -> None:
    held = [connect(capped) for _ in range(4)]
    try:
        for s in held:  # each one served, and kept open
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s).startswith(b"HTTP/1.1 200")
        with connect(capped) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = read_until_closed(extra)
        status, error = status_and_error(reply)
        assert status == 503 and error["code"] == "too_many_connections", reply
        assert b"\r\nretry-after: " in reply.lower()
        held[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # those within the cap carry on
        assert read_response(held[0]).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
    deadline = time.time() + 5
    while httpx.get(capped.url + "/health").status_code != 200 and time.time() < deadline:
        time.sleep(0.1)
    assert httpx.get(capped.url + "/health").status_code == 200
