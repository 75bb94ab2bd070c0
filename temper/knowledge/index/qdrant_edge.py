"""``KnowledgeIndex`` on an embedded Qdrant Edge shard: one shard per knowledge base, in its own directory.

Each chunk is one point with a dense named vector (cosine) and a sparse BM25 vector:
- keyword terms come from ``analyzer.terms``; a term's sparse index is its CRC-32 (stable across processes,
  unlike ``hash()``); colliding terms simply share a dimension;
- the document side carries BM25's term-frequency part, ``tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl))`` with
  k1 = 1.2, b = 0.75, computed here with the average length at the time the chunk is written (tracked over
  upserts and deletes and kept in ``bm25.json``); the sparse vector's IDF modifier makes Qdrant multiply in
  the IDF at query time, so a query vector is just 1 for each distinct query term (qdrant-edge 0.9.0 keeps
  counting deleted points in the IDF's N until the shard is reopened: scores drift slightly after deletes);
- enrichment fields (``IndexedChunk.fields``) go into the same vector, each occurrence counting
  ``analyzer.FIELD_BOOSTS[name]`` times as much as one in the body before saturation (a BM25F-style pooled tf); their
  terms count once each towards ``dl``. ``IndexedChunk.text`` should therefore be the body alone.

Payload = ``IndexedChunk.payload`` + ``kb_id`` + ``document_id`` (+ ``_dl``, the chunk's keyword length, so
deletes and replacements keep ``avgdl`` exact). A payload index is created for every filterable key before
the first point carrying it is written, typed from its values: numbers → float (equality filters compile to a
closed range), ISO 8601 strings → datetime, other strings (and bools, stored as reserved strings to work
around a binding bug, see ``filters.qdrant_payload``) → keyword. Edge runs no background
optimiser, so an upsert that leaves more than ``optimize_after`` points outside the HNSW graph runs it.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import qdrant_edge as qe

from temper.knowledge.index.analyzer import B, K1, analysed_batch, terms
from temper.knowledge.index.filters import parse_datetime, qdrant_payload, to_qdrant
from temper.knowledge.types import Filter, IndexedChunk, IndexHit

DENSE = "dense"
SPARSE = "bm25"
DL_KEY = "_dl"
STATS_FILE = "bm25.json"
_SCROLL_PAGE = 1024


def term_id(term: str) -> int:
    """The sparse dimension of ``term``: a stable unsigned 32-bit hash."""
    return zlib.crc32(term.encode("utf-8"))


def _schema_for(values: list[Any]) -> qe.PayloadSchemaType | None:
    """The payload index type for a key seen with ``values`` (list elements flattened), or None."""
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            return None  # never stored: see filters.qdrant_payload
        if isinstance(v, (int, float)):
            kinds.add("num")
        elif isinstance(v, str):
            kinds.add("date" if parse_datetime(v) else "str")
        else:
            return None  # objects and nulls: filterable by payload scan only
    if kinds == {"num"}:
        return qe.PayloadSchemaType.Float
    if kinds == {"date"}:
        return qe.PayloadSchemaType.Datetime
    if kinds and kinds <= {"str", "date"}:
        return qe.PayloadSchemaType.Keyword
    return None


class QdrantEdgeIndex:
    """One knowledge base's index in ``path`` (created on first use, reopened afterwards).

    Reads and writes may come from different threads: the shard handles concurrent access itself, and a
    lock serialises writers so the BM25 length statistics stay consistent.
    """

    def __init__(self, path: Path, dim: int, *, optimize_after: int = 10_000, hnsw_ef: int | None = None) -> None:
        """``hnsw_ef``: HNSW search breadth for dense queries (None: Qdrant's default); raise it to trade
        latency for recall on hard data (``benchmarks/kb_index.py --ef``)."""
        self.path = Path(path)
        self.dim = dim
        self.optimize_after = optimize_after
        self._dense_params = qe.SearchParams(hnsw_ef=hnsw_ef) if hnsw_ef else None
        self._lock = threading.Lock()
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        shard_dir = self.path / "shard"
        if shard_dir.is_dir() and any(shard_dir.iterdir()):
            self._shard: qe.EdgeShard | None = qe.EdgeShard.load(str(shard_dir), config)
        else:
            shard_dir.mkdir(parents=True, exist_ok=True)
            self._shard = qe.EdgeShard.create(str(shard_dir), config)
            for key in ("kb_id", "document_id"):
                self._shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
        self._indexed_keys = set(self._shard.info().payload_schema)
        self._unindexable: set[str] = set()
        self._docs, self._length = self._read_stats()

    # --- the KnowledgeIndex protocol ---------------------------------------------------------------------

    def upsert(self, chunks: list[IndexedChunk]) -> None:
        analysed = analysed_batch(chunks, self.dim, term_id)
        if not analysed:
            return
        ids = [c.id for c, _, _ in analysed]
        with self._lock:
            shard = self._open()
            old = shard.retrieve(ids, qe.PayloadSelector.Include([DL_KEY]), False)
            docs = self._docs - len(old) + len(ids)
            length = (self._length - sum(int((r.payload or {}).get(DL_KEY, 0)) for r in old)
                      + sum(dl for _, _, dl in analysed))
            avgdl = max(length / docs, 1.0) if docs else 1.0
            points = [self._point(c, weights, dl, avgdl) for c, weights, dl in analysed]
            self._ensure_payload_indexes(shard, [p.payload or {} for p in points])
            shard.update(qe.UpdateOperation.upsert_points(points))
            self._save_stats(docs, length)
            info = shard.info()
            if info.points_count - info.indexed_vectors_count > self.optimize_after:
                shard.optimize()

    def optimize(self) -> None:
        """Build the HNSW graphs and vacuum deleted points now (e.g. after a bulk import); blocks writers."""
        with self._lock:
            self._open().optimize()

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            shard = self._open()
            old = shard.retrieve(list(ids), qe.PayloadSelector.Include([DL_KEY]), False)
            if old:
                shard.update(qe.UpdateOperation.delete_points([int(r.id) for r in old]))
                self._save_stats(self._docs - len(old),
                                 self._length - sum(int((r.payload or {}).get(DL_KEY, 0)) for r in old))

    def vectors(self, ids: list[int]) -> dict[int, list[float]]:
        if not ids:
            return {}
        records = self._open().retrieve(list(ids), False, True)
        return {int(r.id): r.vector[DENSE] for r in records if r.vector and DENSE in r.vector}

    def delete_documents(self, document_ids: list[str]) -> None:
        if not document_ids:
            return
        flt = qe.Filter(must=[qe.FieldCondition("document_id", match=qe.MatchAny(list(document_ids)))])
        with self._lock:
            shard = self._open()
            n, removed_length = self._lengths(shard, flt)
            if n:
                shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
                self._save_stats(self._docs - n, self._length - removed_length)

    def dense(self, vector: list[float], k: int, flt: Filter | None = None) -> list[IndexHit]:
        if len(vector) != self.dim:
            raise ValueError(f"query vector has {len(vector)} dimensions, the index {self.dim}")
        return self._query(qe.Query.Nearest(list(vector), using=DENSE), k, flt, self._dense_params)

    def keyword(self, query: str, k: int, flt: Filter | None = None) -> list[IndexHit]:
        ids = sorted({term_id(t) for t in terms(query)})
        if not ids:
            return []
        return self._query(qe.Query.Nearest(qe.SparseVector(ids, [1.0] * len(ids)), using=SPARSE), k, flt)

    def count(self) -> int:
        return self._open().count(qe.CountRequest(exact=True))

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None

    # --- internals ----------------------------------------------------------------------------------------

    @property
    def avgdl(self) -> float:
        """Average keyword length of the indexed chunks (BM25's ``avgdl``)."""
        return self._length / self._docs if self._docs else 0.0

    def _open(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError(f"the index at {self.path} is closed")
        return self._shard

    def _query(self, query: Any, k: int, flt: Filter | None, params: qe.SearchParams | None = None
               ) -> list[IndexHit]:
        compiled = to_qdrant(flt)  # validate before anything else, even when k is 0
        if k <= 0:
            return []
        req = qe.QueryRequest(limit=k, query=query, filter=compiled, params=params, with_payload=False,
                              with_vector=False)
        return [IndexHit(int(p.id), float(p.score)) for p in self._open().query(req)]

    def _point(self, c: IndexedChunk, weights: dict[int, float], dl: int, avgdl: float) -> qe.Point:
        norm = K1 * (1.0 - B + B * dl / avgdl)
        ids = sorted(weights)
        vectors: dict[str, Any] = {SPARSE: qe.SparseVector(
            ids, [weights[i] * (K1 + 1.0) / (weights[i] + norm) for i in ids])}
        if c.vector is not None:
            vectors[DENSE] = [float(x) for x in c.vector]
        payload = {**c.payload, "kb_id": c.kb_id, "document_id": c.document_id, DL_KEY: dl}
        return qe.Point(c.id, vectors, qdrant_payload(payload))

    def _ensure_payload_indexes(self, shard: qe.EdgeShard, payloads: Iterable[dict[str, Any]]) -> None:
        """Index new payload keys before points carrying them are written: filtered HNSW search only
        keeps its recall when the index exists as the graph is built."""
        seen: dict[str, list[Any]] = defaultdict(list)
        for payload in payloads:
            for key, value in payload.items():
                if key not in self._indexed_keys and key not in self._unindexable and key != DL_KEY:
                    seen[key].extend(value if isinstance(value, list) else [value])
        for key, values in seen.items():
            schema = _schema_for(values)
            if schema is None:
                self._unindexable.add(key)
            else:
                shard.update(qe.UpdateOperation.create_field_index(key, schema))
                self._indexed_keys.add(key)

    @staticmethod
    def _lengths(shard: qe.EdgeShard, flt: qe.Filter | None) -> tuple[int, int]:
        """How many points match ``flt`` and the sum of their keyword lengths."""
        n, total, offset = 0, 0, None
        while True:
            records, offset = shard.scroll(qe.ScrollRequest(
                offset=offset, limit=_SCROLL_PAGE, filter=flt,
                with_payload=qe.PayloadSelector.Include([DL_KEY]), with_vector=False))
            n += len(records)
            total += sum(int((r.payload or {}).get(DL_KEY, 0)) for r in records)
            if offset is None:
                return n, total

    def _read_stats(self) -> tuple[int, int]:
        """The persisted length statistics, recounted from the points when the file is missing or bad."""
        try:
            data = json.loads((self.path / STATS_FILE).read_text())
            return int(data["docs"]), int(data["length"])
        except (OSError, ValueError, KeyError, TypeError):
            return self._lengths(self._open(), None)

    def _save_stats(self, docs: int, length: int) -> None:
        tmp = self.path / (STATS_FILE + ".tmp")
        tmp.write_text(json.dumps({"docs": docs, "length": length, "k1": K1, "b": B}))
        os.replace(tmp, self.path / STATS_FILE)
        self._docs, self._length = docs, length
