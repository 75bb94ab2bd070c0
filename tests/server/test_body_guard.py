"""Management request bodies: the caller is checked before any of the body is read, and its size is bounded
(by Content-Length at once, and by counting a chunked body)."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Server


def raw_request(server: Server, head: str, body_chunks: Iterator[bytes], *, timeout_s: float = 10) -> tuple[int, float]:
    """Send a request head, then body chunks until the server answers; its status and seconds to answer."""
    u = urlsplit(server.url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout_s) as s:
        t0 = time.perf_counter()
        s.sendall(head.encode())
        s.setblocking(False)
        reply = b""
        for chunk in body_chunks:
            try:
                reply += s.recv(65536)
            except BlockingIOError:
                pass
            if reply:
                break
            try:
                s.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        s.setblocking(True)
        while b"\r\n" not in reply:
            more = s.recv(65536)
            if not more:
                break
            reply += more
        return int(reply.split()[1]), time.perf_counter() - t0


def endless(chunk_kb: int = 64) -> Iterator[bytes]:
    chunk = b"x" * (chunk_kb * 1024)
    for _ in range(16 * 1024):  # up to 1 GiB
        yield chunk


@pytest.mark.parametrize("path", ["/api/v1/knowledge-bases", "/api/v1/keys",
                                  "/api/v1/knowledge-bases/kb_x/documents"])
def test_a_keyless_body_is_refused_before_it_is_read(server: Server, path: str) -> None:
    declared = 900 * 1024 if path.endswith(("knowledge-bases", "keys")) else 100 * 1024 * 1024  # within limits
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n")
    status, seconds = raw_request(server, head, endless())
    assert status == 401 and seconds < 2, (status, seconds)


def test_a_declared_oversize_body_is_refused_at_once_even_for_sign_in(server: Server) -> None:
    head = ("POST /api/v1/auth/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {1024 * 1024 * 1024}\r\n\r\n")
    status, seconds = raw_request(server, head, endless())
    assert status == 413 and seconds < 2, (status, seconds)


def test_a_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    def chunked() -> Iterator[bytes]:
        for chunk in endless():
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"

    head = ("POST /api/v1/auth/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    status, seconds = raw_request(server, head, chunked())
    assert status == 413 and seconds < 5, (status, seconds)


def test_an_authenticated_request_within_the_limit_works_and_above_it_is_413(server: Server) -> None:
    ok = server.api("POST", "/api/v1/keys", json={"name": "n" * 100})
    assert ok.status_code == 201, ok.text
    big = httpx.post(server.url + "/api/v1/keys", content=b'{"name": "' + b"n" * (2 * 1024 * 1024) + b'"}',
                     headers={"Authorization": f"Bearer {server.admin_key}", "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
