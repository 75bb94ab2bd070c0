"""The bytes of uploaded sources, kept so a failed or changed document can be ingested again without the
client sending it twice. Files, one per document, under ``<root>/<kb id>/sources/``; writes are atomic."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from temper.errors import NotFound


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, kb_id: str, doc_id: str) -> Path:
        return self.root / kb_id / "sources" / doc_id

    def put(self, kb_id: str, doc_id: str, data: bytes) -> None:
        path = self._path(kb_id, doc_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{doc_id}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

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
