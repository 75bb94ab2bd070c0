"""Multipart uploads streamed to disk: each file of a ``multipart/form-data`` body is written, chunk by chunk as
it arrives, to a file of its own in a staging directory (hashed on the way) and refused with a 413 once it
passes the per-file limit; text fields (and part headers) are small and bounded. Whatever goes wrong (a
malformed body, a file too large, the client going away), the files written so far are removed: an upload is
never held in memory beyond one chunk, and nothing partial stays on disk.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from temper.errors import InvalidRequest, TemperError

FIELD_LIMIT = 1024 * 1024  # a text field (the metadata JSON)
HEADER_LIMIT = 16 * 1024  # the headers of one part
MAX_PARTS = 1000


class FileTooLarge(TemperError):
    status = 413
    code = "file_too_large"


@dataclass
class Received:
    """A file part as it landed on disk."""

    field: str
    filename: str
    media_type: str | None  # as the client sent it; None for application/octet-stream
    path: Path | None = None
    size: int = 0
    sha256: str = ""
    handle: BinaryIO | None = field(default=None, repr=False)
    digest: Any = field(default_factory=hashlib.sha256, repr=False)


@dataclass
class Form:
    files: list[Received] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove every file still in the staging directory (those moved into a store are gone already)."""
        for f in self.files:
            if f.handle is not None:
                f.handle.close()
            if f.path is not None:
                f.path.unlink(missing_ok=True)


class _Reader:
    """python-multipart callbacks: parts are noted as they are parsed, their bytes written by ``flush`` (in a
    worker thread, after each chunk of the body) so that disk writes stay off the event loop."""

    def __init__(self, staging: Path, file_limit: int) -> None:
        self.staging = staging
        self.file_limit = file_limit
        self.form = Form()
        self.parts = 0
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0
        self.name = b""
        self.value = b""
        self.file: Received | None = None
        self.text: bytearray | None = None
        self.field = ""
        self.pending: list[tuple[Received, bytes | None]] = []  # (file, bytes to write, or None: it is complete)

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.part_begin, "on_part_data": self.part_data, "on_part_end": self.part_end,
                "on_header_field": self.header_field, "on_header_value": self.header_value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished}

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidRequest(f"An upload has at most {MAX_PARTS} parts.", param="files",
                                 code="too_many_parts", params={"max": MAX_PARTS})
        self.headers, self.header_bytes, self.file, self.text = {}, 0, None, None

    def _header_bytes(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > HEADER_LIMIT:
            raise InvalidRequest(f"The headers of a part are larger than {HEADER_LIMIT // 1024} KiB.", param="files",
                                 code="part_headers_too_large", params={"max_kib": HEADER_LIMIT // 1024})

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_bytes(end - start)
        self.name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_bytes(end - start)
        self.value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.name.lower()] = self.value
        self.name, self.value = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise InvalidRequest("Every part of the upload needs a Content-Disposition name.", param="files",
                                 code="missing_part_name")
        self.field = _text(options[b"name"])
        if b"filename" not in options:
            self.text = bytearray()
            return
        media_type = _text(self.headers.get(b"content-type", b"")).strip() or None
        self.file = Received(self.field, _text(options[b"filename"]),
                             None if media_type == "application/octet-stream" else media_type)
        self.pending.append((self.file, b""))  # created even when it is empty

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.file is not None:
            self.file.size += end - start
            if self.file.size > self.file_limit:
                raise FileTooLarge(f"{self.file.filename} is larger than {self.file_limit >> 20:,} MiB, the most a "
                                   "file may be (TEMPER_MAX_FILE_MB).", param="files",
                                   params={"name": self.file.filename, "max_mb": self.file_limit >> 20})
            self.pending.append((self.file, data[start:end]))
        elif self.text is not None:
            if len(self.text) + end - start > FIELD_LIMIT:
                raise InvalidRequest(f"The field '{self.field}' is larger than {FIELD_LIMIT // 1024} KiB.",
                                     param=self.field, code="field_too_large",
                                     params={"field": self.field, "max_kib": FIELD_LIMIT // 1024})
            self.text += data[start:end]

    def part_end(self) -> None:
        if self.file is not None:
            self.pending.append((self.file, None))
        elif self.text is not None:
            self.form.fields[self.field] = _text(bytes(self.text))

    def flush(self) -> None:
        """Write what the parser handed over since the last flush (in a worker thread)."""
        for f, data in self.pending:
            if f.path is None:
                fd, path = tempfile.mkstemp(dir=self.staging, prefix=".upload-")
                f.path, f.handle = Path(path), os.fdopen(fd, "wb")
                self.form.files.append(f)
            assert f.handle is not None
            if data is None:
                f.handle.close()
                f.handle, f.sha256 = None, f.digest.hexdigest()
            elif data:
                f.handle.write(data)
                f.digest.update(data)
        self.pending.clear()


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def read_form(request: Request, staging: Path, *, file_limit: int) -> Form:
    """The request's multipart form, its files on disk under ``staging`` (the caller moves them on, then calls
    ``Form.discard``); nothing is left behind when this raises."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidRequest("Send the files as multipart/form-data.", param="files", code="not_multipart")
    reader = _Reader(staging, file_limit)
    parser = MultipartParser(params[b"boundary"], reader.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if reader.pending:
                await anyio.to_thread.run_sync(reader.flush)
        parser.finalize()
        await anyio.to_thread.run_sync(reader.flush)
        if any(f.handle is not None for f in reader.form.files):
            raise InvalidRequest("The upload ended in the middle of a file.", param="files", code="upload_truncated")
    except ClientDisconnect:
        reader.form.discard()
        raise InvalidRequest("The upload was interrupted: the client went away.", code="upload_interrupted") from None
    except FormParserError as e:
        reader.form.discard()
        raise InvalidRequest(f"The upload is not valid multipart/form-data ({e}).", param="files",
                             code="invalid_multipart") from None
    except BaseException:
        reader.form.discard()
        raise
    return reader.form
