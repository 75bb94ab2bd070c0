"""A real Redis server (Debian's ``redis-server``) for the tests of state that server replicas share."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _pong(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path, ready_s: float = 10) -> Iterator[str]:
    """``redis-server`` on a Unix socket in ``workdir`` (no port to clash with, nothing written to disk);
    yields its URL once it answers PING. Without ``redis-server`` this raises: the tests fail, never skip."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make install-system installs Debian's)")
    path, log = workdir / "redis.sock", workdir / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700",
                                 "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_s
        while not _pong(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {log.read_text(errors='replace')}")
            time.sleep(0.02)
        yield f"unix://{path}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
