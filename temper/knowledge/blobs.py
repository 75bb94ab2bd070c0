"""The bytes of uploaded sources, kept so a failed or changed document can be ingested again without the
client sending it twice. Files, one per document, under ``<root>/<kb id>/sources/``; writes are atomic.

Uploads are received into ``<root>/.incoming/`` (the same file system), then moved into place: a file is
written once, never held in memory. What a crash leaves there is removed at the next start (``sweep``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from temper.errors import NotFound


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / ".incoming"

    def _path(self, kb_id: str, doc_id: str) -> Path:
        return self.root / kb_id / "sources" / doc_id

    def put(self, kb_id: str, doc_id: str, data: bytes) -> None:
        path = self._path(kb_id, doc_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{doc_id}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def staging(self) -> Path:
        """Where uploads are written while they arrive."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        return self.incoming

    def stage(self, data: bytes) -> Path:
        """``data`` as a received file (the caller removes it unless ``adopt`` moved it)."""
        fd, path = tempfile.mkstemp(dir=self.staging(), prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return Path(path)

    def adopt(self, kb_id: str, doc_id: str, received: Path) -> None:
        """Move a received file into place as the document's source."""
        path = self._path(kb_id, doc_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(received, path)

    def sweep(self, older_than_s: float = 3600) -> None:
        """Remove received files a crash left behind (none this old is still being received)."""
        cutoff = time.time() - older_than_s
        for path in self.incoming.glob(".upload-*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass

    def get(self, kb_id: str, doc_id: str) -> bytes:
        try:
            return self._path(kb_id, doc_id).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"The stored source of document {doc_id} is missing; add the file again.",
                           code="source_missing") from None

    def delete(self, kb_id: str, doc_id: str) -> None:
        self._path(kb_id, doc_id).unlink(missing_ok=True)

    def drop(self, kb_id: str) -> None:
        shutil.rmtree(self.root / kb_id / "sources", ignore_errors=True)
