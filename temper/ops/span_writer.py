"""The span store in a writer process of its own.

The server's process only pickles each batch of finished spans (~1 µs a span) and pipes it to a child
process, which masks, caps and serialises the payloads and inserts the rows. That work (~25 µs per gateway
call, docs/performance.md) then neither holds the event loop's GIL nor shares its core when another is
free. The child exits when its input closes, so it never outlives the server; it ignores SIGINT and
SIGTERM, which reach the whole process group, so that the server can hand it the last spans on shutdown.

Frames on the child's stdin: an 8-byte little-endian length, then a pickle: first the store's settings
(not in argv, where a database password would show in ``ps``), then lists of finished spans
(``tracing.Finished`` tuples).
The child answers each list with one line on stdout: ``ok`` once the batch is committed, or the error.
"""
from __future__ import annotations

import logging
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO

from temper.ops.payloads import Masker, to_text
from temper.ops.tracing import Finished, as_dict

log = logging.getLogger("temper.tracing")
HEADER = struct.Struct("<Q")
PROTOCOL = 5


def _pickles(value: object) -> bool:
    try:
        pickle.dumps(value, protocol=PROTOCOL)
        return True
    except Exception:  # noqa: BLE001 - any object can be a span's input or attribute
        return False


def _picklable(r: Finished) -> Finished:
    """``r``, with those of its attribute values, input and output that do not pickle as text (they are
    stored as text); the rest as they are, so a bytes body is still stored as a body."""
    if _pickles(r):
        return r
    attrs = {k: v if _pickles(v) else to_text(v) for k, v in as_dict(r[11]).items()}
    body_in, body_out = (v if _pickles(v) else to_text(v) for v in (r[12], r[13]))
    return (*r[:11], attrs, body_in, body_out)  # type: ignore[return-value]


def _frame(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=PROTOCOL)
    return HEADER.pack(len(data)) + data


def _pack(spans: Sequence[Finished]) -> bytes:
    try:
        return pickle.dumps(spans, protocol=PROTOCOL)
    except Exception:  # noqa: BLE001 - rare: find the spans that do not pickle
        return pickle.dumps([_picklable(r) for r in spans], protocol=PROTOCOL)


class WriterProcess:
    """A sink (see ``exporter.Sink``) that hands batches to the writer process and waits for the commit."""

    name = "store"

    def __init__(self, db: str, payload_chars: int, mask_pii: bool) -> None:
        """``mask_pii``: whether a workspace that has not chosen gets its spans masked (``SpanStoreSink``)."""
        self.config = _frame({"db": db, "payload_chars": payload_chars, "mask_pii": mask_pii})
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()  # the exporter thread, and close() on shutdown

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "temper.ops.span_writer"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        assert self.proc.stdin is not None
        self.proc.stdin.write(self.config)

    @property
    def pid(self) -> int | None:
        """The writer process's id, once the first batch has started it."""
        return self.proc.pid if self.proc is not None else None

    def export(self, spans: Sequence[Finished]) -> None:
        data = _pack(spans)
        with self.lock:
            if self.proc is None:  # started with the first batch
                self._spawn()
            for _ in (1, 2):  # a writer that died is restarted once per batch
                assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
                try:
                    self.proc.stdin.write(HEADER.pack(len(data)))
                    self.proc.stdin.write(data)
                    self.proc.stdin.flush()
                    answer = self.proc.stdout.readline()
                except (BrokenPipeError, OSError):
                    answer = b""
                if answer == b"ok\n":
                    return
                if answer:
                    raise RuntimeError(f"the span writer failed: {answer.decode(errors='replace').strip()}")
                code = self.proc.poll()
                log.error("the span writer process exited (code %s); starting a new one", code)
                self.proc.kill()
                self.proc.wait()
                self._spawn()
            raise RuntimeError(f"the span writer process exited twice on a batch of {len(spans)} spans")

    def close(self) -> None:
        with self.lock:
            if self.proc is None:
                return
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()  # the child finishes its batch and exits
            except OSError:  # it had died
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def _read(stream: IO[bytes]) -> object:
    """The next frame's object; None at the end of input."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    size = HEADER.unpack(head)[0]
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None


def _masker() -> Masker:
    """The server's masker (``trace_masking.masker_for``), with only the plugins loaded (they may mask)."""
    import pluggy

    from temper import hookspecs
    from temper.ops.trace_masking import masker_for

    pm = pluggy.PluginManager("temper")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints("temper")
    return masker_for(pm)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from temper.ops.span_store import SpanStoreSink

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    config = _read(stdin)
    if not isinstance(config, dict):
        return 0
    sink = SpanStoreSink(config["db"], config["payload_chars"], _masker(), config["mask_pii"])
    while (batch := _read(stdin)) is not None:
        try:
            sink.export(batch)
        except Exception as e:  # noqa: BLE001 - reported to the server, which counts and logs it
            stdout.write(f"{type(e).__name__}: {e}".replace("\n", " ").encode()[:2000] + b"\n")
        else:
            stdout.write(b"ok\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
