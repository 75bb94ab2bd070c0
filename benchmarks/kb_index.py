"""Knowledge-base index: build time, peak RSS, single-threaded p50/p99 latency and recall vs brute force for
dense top-10, keyword top-10 and dense top-10 under a selective (1%) payload filter.

    .venv/bin/python benchmarks/kb_index.py            # 20,000 chunks
    .venv/bin/python benchmarks/kb_index.py --n 100000 # the full size (minutes of CPU)
"""
from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from temper.knowledge.index.analyzer import terms
from temper.knowledge.index.qdrant_edge import K1, B, QdrantEdgeIndex, term_id
from temper.knowledge.types import IndexedChunk

ZH = ("退货 政策 会员 积分 快递 发票 订单 支付 客服 售后 商品 库存 价格 优惠 折扣 物流 仓库 地址 账户 密码 安全 隐私 "
      "合同 条款 保修 维修 配送 签收 评价 投诉 退款 换货 运费 包装 质量 检测 报告 数据 模型 训练 推理 部署 服务器 "
      "网络 存储 备份 恢复 监控 日志 告警 权限 角色 审计 接口 文档 版本 发布 测试").split()
EN = ("refund policy member points shipping invoice order payment support warranty product stock price discount "
      "logistics warehouse address account password security privacy contract terms repair delivery review "
      "complaint exchange freight package quality report data model training inference deploy server network "
      "storage backup restore monitor log alert permission role audit interface document version release test "
      "customer window days business process request team service system user").split()


def make_text(rng: np.random.Generator, vocab: list[str], probs: np.ndarray) -> str:
    words = rng.choice(len(vocab), size=int(rng.integers(60, 120)), p=probs)
    return " ".join(vocab[w] if rng.random() < 0.5 else vocab[w] + "的" for w in words)


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--ef", type=int, default=None, help="HNSW search breadth (default: Qdrant's)")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    vocab = ZH + EN
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    probs = rng.permutation(zipf / zipf.sum())
    vecs = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = [make_text(rng, vocab, probs) for _ in range(args.n)]
    buckets = np.arange(args.n) % 100

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = QdrantEdgeIndex(Path(tmp) / "kb", args.dim, hnsw_ef=args.ef)
        for start in range(0, args.n, args.batch):
            stop = min(start + args.batch, args.n)
            index.upsert([IndexedChunk(id=i, kb_id="kb_bench", document_id=f"doc{i // 20}", vector=vecs[i].tolist(),
                                       text=texts[i], payload={"bucket": int(buckets[i]), "lang": "zh" if i % 2 else "en"})
                          for i in range(start, stop)])
        t_upsert = time.perf_counter() - t0
        index.optimize()
        t_build = time.perf_counter() - t0
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        kw_queries = [" ".join(rng.choice(vocab, size=int(rng.integers(1, 4)), p=probs)) for _ in range(args.queries)]

        def timed(fn: object, inputs: list) -> tuple[list, list[float]]:
            results, times = [], []
            for x in inputs:
                t = time.perf_counter()
                results.append(fn(x))  # type: ignore[operator]
                times.append(time.perf_counter() - t)
            return results, times

        dense, t_dense = timed(lambda q: index.dense(q.tolist(), 10), list(queries))
        fdense, t_fdense = timed(lambda q: index.dense(q.tolist(), 10, {"bucket": 7}), list(queries))
        kw, t_kw = timed(lambda q: index.keyword(q, 10), kw_queries)
        index.close()

    sims = queries @ vecs.T
    truth = np.argsort(-sims, axis=1)[:, :10]
    masked = np.where(buckets == 7, sims, -np.inf)
    ftruth = np.argsort(-masked, axis=1)[:, :10]
    recall = np.mean([len(set(truth[i]) & {h.id for h in dense[i]}) / 10 for i in range(args.queries)])
    frecall = np.mean([len(set(ftruth[i]) & {h.id for h in fdense[i]}) / 10 for i in range(args.queries)])

    # brute-force BM25 with the same analyser, weights and IDF formula (Qdrant's: ln(1 + (N - df + .5)/(df + .5)))
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
    kw_recall = []
    for i, q in enumerate(kw_queries):
        scores: dict[int, float] = defaultdict(float)
        for tid in {term_id(t) for t in terms(q)}:
            plist = postings.get(tid, [])
            idf = math.log(1 + (args.n - len(plist) + 0.5) / (len(plist) + 0.5))
            for doc, f in plist:
                scores[doc] += idf * f * (K1 + 1) / (f + K1 * (1 - B + B * lengths[doc] / avgdl))
        best = sorted(scores.items(), key=lambda kv: -kv[1])
        if not best:
            continue
        cutoff = best[min(9, len(best) - 1)][1] - 1e-4  # ties at the 10th score count as correct either way
        got = {h.id for h in kw[i]}
        kw_recall.append(len([d for d, s in best if s >= cutoff and d in got]) / min(10, len(best)))

    print(f"chunks {args.n}, dim {args.dim}, hnsw_ef {args.ef or 'default'}, {args.queries} queries per kind, "
          "1 thread")
    print(f"build: upserts {t_upsert:.1f} s + optimize {t_build - t_upsert:.1f} s = {t_build:.1f} s "
          f"({args.n / t_build:.0f} chunks/s); peak RSS {rss_mb:.0f} MB")
    print(f"{'query':<22}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}")
    for name, ts, r in [("dense top-10", t_dense, recall), ("keyword top-10", t_kw, np.mean(kw_recall)),
                        ("dense top-10, 1% flt", t_fdense, frecall)]:
        print(f"{name:<22}{pct(ts, 50):>9.2f}{pct(ts, 99):>9.2f}{r:>11.3f}")


if __name__ == "__main__":
    main()
