"""``KnowledgeIndex`` on PostgreSQL with the pgvector extension: the scale-out backend.

Layout: one table per knowledge base, ``kbi_<slug>``, plus its document-frequency table ``kbt_<slug>``, and one
shared registry ``temper_kb_index`` (name → slug, dimension, chunk count, total keyword length). One table per
knowledge base rather than one shared table scoped by a ``kb_id`` column because each HNSW graph then holds only
its own knowledge base: an unfiltered query walks no foreign vectors, a small knowledge base never has to be
dug out of a large one with ``hnsw.iterative_scan`` (whose scan budget, ``hnsw.max_scan_tuples``, is shared
with every other knowledge base in the table), each table's planner statistics describe one knowledge base,
and deleting a knowledge base is a ``DROP TABLE`` instead of a vacuum of millions of dead rows. PostgreSQL is
comfortable with tens of thousands of tables; that is the ceiling this trades for.

Each chunk is one row:
- ``embedding vector(dim)`` with an HNSW index (cosine, m = 16, ef_construction = 100; searched with
  ``hnsw.ef_search`` = 100, like Qdrant's defaults); keyword-only chunks have NULL, which the index skips;
- keyword search is BM25 with the same terms (``analyzer.terms``), weights and IDF as ``qdrant_edge``: the row
  holds the saturated, field-boosted term-frequency part as a ``sparsevec`` (computed with ``avgdl`` at write
  time) and its distinct term ids as ``integer[]`` under a GIN index; a query fetches the candidate rows whose
  terms overlap its own through that index and ranks them by the inner product with a query vector of
  IDF weights, ``ln(1 + (N − df + 0.5) / (df + 0.5))``, read from the exact ``df`` table (kept in the
  writer's transaction). A term's id is its CRC-32 modulo ``SPARSE_DIM`` (pgvector's sparsevec limit).
  Query terms in nearly every chunk are left out of the candidate lookup when that provably cannot change the
  top k (``_essential_terms``). Measured at 20,000 chunks (``benchmarks/kb_index.py``, whose Zipf vocabulary
  puts every query term in 10–100% of the chunks): a candidate costs about 1 µs, so 2–25 ms a query;
  ``tsvector`` + ``ts_rank`` over the same terms took 4–21 ms and ranks without IDF (not BM25); a postings
  table (term, chunk, weight) was 2–3× faster on the worst queries but five times the size, with a row per
  distinct term per chunk to write;
- the filterable ``payload`` (``IndexedChunk.payload`` + ``kb_id`` + ``document_id``) is JSONB under a
  ``jsonb_path_ops`` GIN index, so equality and ``in`` compile to indexable containment (``@>``), and the
  planner can answer a selective filter exactly (bitmap scan + sort) instead of through the graph; ranges
  compile to SQL/JSON path predicates (lax mode: a list matches when any element does). ISO 8601 strings are
  also stored as epoch seconds in ``dates`` (by key), so date ranges compare instants, whatever the zone;
- dense queries run with ``hnsw.iterative_scan = relaxed_order``: when the planner does walk the graph under a
  filter, the scan goes on until ``k`` rows pass it (results are re-sorted here).

Needs pgvector ≥ 0.8 (``hnsw.iterative_scan``) installed in the database; the first index opened on a DSN runs
``CREATE EXTENSION IF NOT EXISTS vector`` and creates the registry in the default schema. Writers of one
knowledge base serialise on its registry row (``FOR UPDATE``), across processes too, which keeps
``N``, ``avgdl`` and ``df`` exact. All indexes on one DSN share one small connection pool, so many open
knowledge bases cost no more connections than one; it is safe to use from several threads.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading
import zlib
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import psycopg
from pgvector import SparseVector
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from temper.knowledge.index.analyzer import B, K1, analysed_batch, terms
from temper.knowledge.index.filters import Condition, Eq, In, Ne, parse_datetime, parse_filter
from temper.knowledge.types import Filter, IndexedChunk, IndexHit

SPARSE_DIM = 1_000_000_000  # pgvector's largest sparsevec dimension
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
EF_SEARCH = 100
POOL_MAX = 8
PRUNE_SHARE = 0.25
REGISTRY = "temper_kb_index"
_MAX_SLUG = 48  # "kbi_" + slug + "_payload" stays within PostgreSQL's 63-byte identifiers
_LOCK_KEY = zlib.crc32(REGISTRY.encode())  # advisory lock around DDL (CREATE ... IF NOT EXISTS races)


def term_id(term: str) -> int:
    """The sparse dimension (and GIN key) of ``term``: a stable hash below ``SPARSE_DIM``."""
    return zlib.crc32(term.encode("utf-8")) % SPARSE_DIM


def slug(name: str) -> str:
    """A table-name-safe identifier for knowledge base ``name``: the name itself when it is already lower-case
    ``[a-z0-9_]`` and short, else a readable prefix plus a hash of the name (so distinct names stay distinct)."""
    clean = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if clean == name and len(name) <= _MAX_SLUG:
        return name
    return f"{clean[:_MAX_SLUG - 13]}_{hashlib.sha1(name.encode()).hexdigest()[:12]}".lstrip("_")


# --- shared connection pools --------------------------------------------------------------------------------

def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)
    conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
    conn.execute("SET hnsw.iterative_scan = relaxed_order")
    conn.commit()


_pools: dict[str, tuple[ConnectionPool, int]] = {}
_pools_lock = threading.Lock()


def _acquire_pool(dsn: str) -> ConnectionPool:
    """The pool for ``dsn`` (created, with the extension and the registry, on first use), one reference more."""
    with _pools_lock:
        if dsn in _pools:
            pool, refs = _pools[dsn]
            _pools[dsn] = (pool, refs + 1)
            return pool
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege as e:
                raise RuntimeError("the pgvector extension is not installed in this database and this role may not "
                                   "create it: run CREATE EXTENSION vector as its owner") from e
            conn.execute(f"CREATE TABLE IF NOT EXISTS {REGISTRY} (name text PRIMARY KEY, slug text NOT NULL UNIQUE, "
                         "dim integer NOT NULL, docs bigint NOT NULL DEFAULT 0, length bigint NOT NULL DEFAULT 0)")
        pool = ConnectionPool(dsn, min_size=1, max_size=POOL_MAX, configure=_configure, open=True)
        _pools[dsn] = (pool, 1)
        return pool


def _release_pool(dsn: str) -> None:
    with _pools_lock:
        pool, refs = _pools[dsn]
        if refs > 1:
            _pools[dsn] = (pool, refs - 1)
            return
        del _pools[dsn]
    pool.close()


# --- the filter language in SQL -----------------------------------------------------------------------------

def _sql_eq(key: str, value: Any) -> tuple[str, list[Any]]:
    # containment matches a scalar field or one element of a list field, numbers as numbers, and uses the GIN index
    return "(payload @> %s OR payload @> %s)", [Jsonb({key: value}), Jsonb({key: [value]})]


def _sql_condition(c: Condition) -> tuple[str, list[Any]]:
    if isinstance(c, Eq):
        return _sql_eq(c.key, c.value)
    if isinstance(c, Ne):
        text, params = _sql_eq(c.key, c.value)
        return f"NOT {text}", params
    if isinstance(c, In):
        if not c.values:
            return "FALSE", []
        parts = [_sql_eq(c.key, v) for v in c.values]
        return "(" + " OR ".join(p for p, _ in parts) + ")", [x for _, ps in parts for x in ps]
    symbols = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    bounds = {op: getattr(c, op) for op in symbols if getattr(c, op) is not None}
    path = "$ ? (" + " && ".join(f"@ {symbols[op]} ${op}" for op in bounds) + ")"
    values = {op: v.timestamp() if c.dates else v for op, v in bounds.items()}
    column = "dates" if c.dates else "payload"
    return f"jsonb_path_exists({column} -> %s, '{path}', %s)", [c.key, Jsonb(values)]


def to_sql(flt: Filter | None) -> tuple[str, list[Any]]:
    """Compile ``flt`` into ``AND``-prefixed SQL over the chunk table's ``payload``/``dates`` columns and its
    parameters (``("", [])`` when there is nothing to filter on)."""
    compiled = [_sql_condition(c) for c in parse_filter(flt)]
    return "".join(f" AND {text}" for text, _ in compiled), [p for _, params in compiled for p in params]


def _dates(payload: dict[str, Any]) -> dict[str, list[float]]:
    """Epoch seconds of the ISO 8601 strings in ``payload`` (also inside lists), by key."""
    out: dict[str, list[float]] = {}
    for key, value in payload.items():
        stamps = [dt.timestamp() for v in (value if isinstance(value, list) else [value])
                  if isinstance(v, str) and (dt := parse_datetime(v)) is not None]
        if stamps:
            out[key] = stamps
    return out


def _essential_terms(idf: dict[int, float]) -> tuple[list[int], float]:
    """MaxScore pruning: the query terms a chunk must contain to be a candidate, and the highest score a chunk
    with none of them can reach.

    A term contributes less than ``idf·(K1 + 1)``. The least informative terms, while their bounds add up to
    under ``PRUNE_SHARE`` of the best term's, are left out of the candidate lookup (a term in nearly every
    chunk has an IDF near 0 yet would make every chunk a candidate); their weights still count in the scores of
    the candidates. The top ``k`` is exact when its last score beats the returned bound; ``keyword`` checks
    that and otherwise looks up by every term."""
    ordered = sorted(idf, key=lambda t: idf[t])
    budget = PRUNE_SHARE * idf[ordered[-1]]
    i, left_out = 0, 0.0
    while left_out + idf[ordered[i]] < budget:  # stops at the best term at the latest
        left_out += idf[ordered[i]]
        i += 1
    return ordered[i:], left_out * (K1 + 1.0) * 1.001  # weights and scores are float4 in PostgreSQL: some slack


class PgVectorIndex:
    """Knowledge base ``name``'s index in the database at ``dsn`` (created on first use, reopened afterwards;
    reopening with another ``dim`` is an error)."""

    def __init__(self, dsn: str, name: str, dim: int, *, hnsw_ef: int | None = None) -> None:
        """``hnsw_ef``: HNSW search breadth for this index's dense queries (None: ``EF_SEARCH``)."""
        self.dsn = dsn
        self.name = name
        self.dim = dim
        self.hnsw_ef = hnsw_ef
        s = slug(name)
        self._chunks = sql.Identifier(f"kbi_{s}")
        self._df = sql.Identifier(f"kbt_{s}")
        self._pool: ConnectionPool | None = _acquire_pool(dsn)
        try:
            self._create(s)
        except BaseException:
            self.close()
            raise

    def _create(self, s: str) -> None:
        c = self._chunks
        with self._conn() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(f"INSERT INTO {REGISTRY} (name, slug, dim) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                         (self.name, s, self.dim))
            (dim,) = conn.execute(f"SELECT dim FROM {REGISTRY} WHERE name = %s", (self.name,)).fetchone() or (0,)
            if dim != self.dim:
                raise ValueError(f"knowledge base {self.name!r} is indexed with {dim} dimensions, not {self.dim}")
            for stmt in (
                "CREATE TABLE IF NOT EXISTS {c} (id bigint PRIMARY KEY, document_id text NOT NULL, "
                "embedding vector({dim}), terms integer[] NOT NULL, bm25 sparsevec({sdim}) NOT NULL, "
                "dl integer NOT NULL, payload jsonb NOT NULL, dates jsonb NOT NULL)",
                "CREATE INDEX IF NOT EXISTS {c_doc} ON {c} (document_id)",
                "CREATE INDEX IF NOT EXISTS {c_hnsw} ON {c} USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = {m}, ef_construction = {efc})",
                "CREATE INDEX IF NOT EXISTS {c_terms} ON {c} USING gin (terms)",
                "CREATE INDEX IF NOT EXISTS {c_payload} ON {c} USING gin (payload jsonb_path_ops)",
                "CREATE TABLE IF NOT EXISTS {t} (term integer PRIMARY KEY, df integer NOT NULL)",
            ):
                conn.execute(sql.SQL(stmt).format(
                    c=c, t=self._df, dim=sql.Literal(self.dim), sdim=sql.Literal(SPARSE_DIM),
                    m=sql.Literal(HNSW_M), efc=sql.Literal(HNSW_EF_CONSTRUCTION),
                    **{f"c_{x}": sql.Identifier(f"kbi_{s}_{x}") for x in ("doc", "hnsw", "terms", "payload")}))

    # --- the KnowledgeIndex protocol -------------------------------------------------------------------------

    def upsert(self, chunks: list[IndexedChunk]) -> None:
        analysed = analysed_batch(chunks, self.dim, term_id)
        if not analysed:
            return
        ids = [c.id for c, _, _ in analysed]
        with self._conn() as conn:
            docs, length = self._stats(conn, lock=True)
            old_docs, old_length = self._remove(conn, sql.SQL("id = ANY(%s::bigint[])"), ids)
            docs += len(ids) - old_docs
            length += sum(dl for _, _, dl in analysed) - old_length
            avgdl = max(length / docs, 1.0)
            new_terms: list[int] = []
            with conn.cursor() as cur, cur.copy(sql.SQL(
                    "COPY {} (id, document_id, embedding, terms, bm25, dl, payload, dates) FROM STDIN"
            ).format(self._chunks)) as copy:
                for c, tf, dl in analysed:
                    norm = K1 * (1.0 - B + B * dl / avgdl)
                    weights = {i: f * (K1 + 1.0) / (f + norm) for i, f in tf.items()}
                    new_terms.extend(tf)
                    copy.write_row((
                        c.id, c.document_id, None if c.vector is None else np.asarray(c.vector, dtype=np.float32),
                        sorted(tf), SparseVector(weights, SPARSE_DIM), dl,
                        Jsonb({**c.payload, "kb_id": c.kb_id, "document_id": c.document_id}), Jsonb(_dates(c.payload))))
            conn.execute(sql.SQL(
                "INSERT INTO {t} (term, df) SELECT term, count(*) FROM unnest(%s::integer[]) AS u(term) GROUP BY term "
                "ON CONFLICT (term) DO UPDATE SET df = {t}.df + excluded.df").format(t=self._df), (new_terms,))
            self._save_stats(conn, docs, length)

    def optimize(self) -> None:
        """``VACUUM ANALYZE`` the chunk table now (e.g. after a bulk import): fresh planner statistics, and the
        HNSW graph repaired around deleted rows. Autovacuum does both eventually."""
        self._open()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(self._chunks))

    def delete(self, ids: list[int]) -> None:
        if ids:
            self._delete_where(sql.SQL("id = ANY(%s::bigint[])"), list(ids))

    def delete_documents(self, document_ids: list[str]) -> None:
        if document_ids:
            self._delete_where(sql.SQL("document_id = ANY(%s::text[])"), list(document_ids))

    def vectors(self, ids: list[int]) -> dict[int, list[float]]:
        if not ids:
            return {}
        with self._conn() as conn:
            rows = conn.execute(sql.SQL("SELECT id, embedding FROM {} WHERE id = ANY(%s::bigint[]) "
                                        "AND embedding IS NOT NULL").format(self._chunks), (list(ids),)).fetchall()
        return {int(i): v.to_list() for i, v in rows}

    def dense(self, vector: list[float], k: int, flt: Filter | None = None) -> list[IndexHit]:
        if len(vector) != self.dim:
            raise ValueError(f"query vector has {len(vector)} dimensions, the index {self.dim}")
        where, params = to_sql(flt)
        if k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32)
        query = sql.SQL("SELECT id, 1 - (embedding <=> %s) FROM {} WHERE embedding IS NOT NULL" + where
                        + " ORDER BY embedding <=> %s LIMIT %s").format(self._chunks)
        with self._conn() as conn:
            if self.hnsw_ef is not None:
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(self.hnsw_ef),))
            rows = conn.execute(query, [q, *params, q, k]).fetchall()
        # relaxed_order: the graph may hand back neighbours slightly out of order
        return [IndexHit(int(i), float(s)) for i, s in sorted(rows, key=lambda r: (-r[1], r[0]))]

    def keyword(self, query: str, k: int, flt: Filter | None = None) -> list[IndexHit]:
        where, params = to_sql(flt)
        ids = sorted({term_id(t) for t in terms(query)})
        if k <= 0 or not ids:
            return []
        with self._conn() as conn:
            df = conn.execute(sql.SQL(f"SELECT (SELECT docs FROM {REGISTRY} WHERE name = %s), term, df FROM {{}} "
                                      "WHERE term = ANY(%s::integer[]) AND df > 0").format(self._df),
                              (self.name, ids)).fetchall()
            if not df:
                return []
            idf = {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for n, t, d in df}
            query_vector = SparseVector(idf, SPARSE_DIM)
            candidates, bound = _essential_terms(idf)
            statement = sql.SQL("SELECT id, -(bm25 <#> %s) AS score FROM {} WHERE terms && %s::integer[]" + where
                                + " ORDER BY score DESC, id LIMIT %s").format(self._chunks)
            rows = conn.execute(statement, [query_vector, candidates, *params, k]).fetchall()
            if len(candidates) < len(idf) and (len(rows) < k or rows[-1][1] <= bound):
                rows = conn.execute(statement, [query_vector, list(idf), *params, k]).fetchall()
        return [IndexHit(int(i), float(s)) for i, s in rows]

    def count(self) -> int:
        with self._conn() as conn:
            return self._stats(conn)[0]

    def drop(self) -> None:
        with self._conn() as conn:
            conn.execute(f"SELECT 1 FROM {REGISTRY} WHERE name = %s FOR UPDATE", (self.name,))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(self._chunks, self._df))
            conn.execute(f"DELETE FROM {REGISTRY} WHERE name = %s", (self.name,))
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool = None
            _release_pool(self.dsn)

    # --- internals -------------------------------------------------------------------------------------------

    def _open(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError(f"the index of knowledge base {self.name!r} is closed")
        return self._pool

    def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection in a transaction (committed on leaving the block, rolled back on an error)."""
        return self._open().connection()

    def _stats(self, conn: psycopg.Connection, lock: bool = False) -> tuple[int, int]:
        """The chunk count and total keyword length; ``lock``: row-locked until the transaction ends, which
        serialises this knowledge base's writers."""
        row = conn.execute(f"SELECT docs, length FROM {REGISTRY} WHERE name = %s" + (" FOR UPDATE" if lock else ""),
                           (self.name,)).fetchone()
        if row is None:
            raise RuntimeError(f"the index of knowledge base {self.name!r} was dropped")
        return int(row[0]), int(row[1])

    def _save_stats(self, conn: psycopg.Connection, docs: int, length: int) -> None:
        conn.execute(f"UPDATE {REGISTRY} SET docs = %s, length = %s WHERE name = %s", (docs, length, self.name))

    def _remove(self, conn: psycopg.Connection, where: sql.Composable, arg: list[Any]) -> tuple[int, int]:
        """Delete the rows matching ``where`` and their document frequencies; their count and keyword length."""
        row = conn.execute(sql.SQL(
            "WITH old AS (DELETE FROM {c} WHERE {where} RETURNING dl, terms), "
            "dec AS (UPDATE {t} SET df = {t}.df - x.n FROM (SELECT u.term, count(*) AS n FROM old, "
            "unnest(old.terms) AS u(term) GROUP BY u.term) x WHERE {t}.term = x.term) "
            "SELECT count(*), coalesce(sum(dl), 0) FROM old").format(c=self._chunks, t=self._df, where=where),
            (arg,)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def _delete_where(self, where: sql.Composable, arg: list[Any]) -> None:
        with self._conn() as conn:
            docs, length = self._stats(conn, lock=True)
            n, removed = self._remove(conn, where, arg)
            if n:
                self._save_stats(conn, docs - n, length - removed)
