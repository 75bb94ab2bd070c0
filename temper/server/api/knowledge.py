"""Management API: knowledge bases — create, add documents (files, text, URLs), watch ingestion, retrieve,
answer with citations (JSON or SSE).

Any caller may list, read, retrieve and ask within its workspace; creating, changing and deleting need
the admin key.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from temper.auth.keys import KeyInfo
from temper.errors import InvalidRequest, TemperError
from temper.jobs import store as jobs
from temper.knowledge import store
from temper.knowledge.service import KnowledgeService, Upload
from temper.models.client import Caller
from temper.server import multipart
from temper.server.api.deps import Offset, admin, caller, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/knowledge-bases", tags=["knowledge bases"])


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KnowledgeBaseIn(Body):
    name: str = Field(description="Letters of any script, digits, spaces, '_', '.', '-'; 1-100.")
    description: str = ""
    embedding_model: str = Field(store.DEFAULT_EMBEDDING_MODEL, description="An embedding model of the plaza.")
    config: dict[str, Any] = Field(default_factory=dict, description="chunking, enrichment, retrieval, answer "
                                   "settings (docs/knowledge.md); defaults for what is left out.")


class KnowledgeBasePatch(Body):
    description: str | None = None
    config: dict[str, Any] | None = Field(None, description="Sections to change; the rest is kept.")


class TextIn(Body):
    title: str
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class UrlsIn(Body):
    urls: list[str] = Field(min_length=1, max_length=1000)
    metadata: dict[str, Any] = Field(default_factory=dict)


class DatabaseIn(Body):
    name: str = Field(description="Names its documents: NAME#id=42.")
    url: str = Field(description="SQLAlchemy URL: sqlite:///path/crm.db, postgresql+psycopg://reader@host/crm.")
    query: str = Field(description="One SELECT.")
    key_column: str = Field(description="Unique, increasing column: each row's identity and the sync cursor.")
    title_column: str | None = None
    group_by: str | None = Field(None, description="One document per value of this column, not per row.")
    metadata: dict[str, Any] = Field(default_factory=dict)


class RetryIn(Body):
    document_ids: list[str] | None = Field(None, description="None: every failed document.")


class Message(Body):
    role: Literal["user", "assistant"]
    content: str


class RetrieveIn(Body):
    query: str
    top_k: int | None = Field(None, ge=1, le=100)
    filter: dict[str, Any] | None = Field(None, description="Metadata filter: {field: value}, {field: {in: [..]}}, "
                                          "{field: {gte: a, lt: b}}, {field: {ne: v}}.")
    retrieval: dict[str, Any] | None = Field(None, description="Overrides of the knowledge base's retrieval "
                                             "settings for this call.")
    history: list[Message] | None = Field(None, description="Earlier turns: the question is condensed with them.")

    def overrides(self) -> dict[str, Any] | None:
        extra = {"top_k": self.top_k} if self.top_k is not None else {}
        return {**(self.retrieval or {}), **extra} or None

    def turns(self) -> list[dict[str, str]] | None:
        return [m.model_dump() for m in self.history] if self.history else None


class AnswerIn(RetrieveIn):
    query: str = Field(alias="question")
    stream: bool = False
    answer: dict[str, Any] | None = Field(None, description="Overrides of the answer settings (model, ...).")


async def metered(key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> Caller:
    """Whom the model calls a request makes (or the job it starts) are metered for, once the key's budget
    and rate limits admit it, as on the gateway; their usage rows share one ``kbreq_…`` request id."""
    await rt.models.admit(key)
    return Caller.of(key, "kbreq")


async def metered_admin(key: KeyInfo = Depends(admin), rt: Runtime = Depends(runtime)) -> Caller:
    """``metered``, for the admin key only."""
    await rt.models.admit(key)
    return Caller.of(key, "kbreq")


def _service(rt: Runtime) -> KnowledgeService:
    assert rt.knowledge is not None
    return rt.knowledge


@router.post("", status_code=201)
def create(body: KnowledgeBaseIn, key: KeyInfo = Depends(admin), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return _service(rt).create(body.name, description=body.description, embedding_model=body.embedding_model,
                               config=body.config, workspace_id=key.workspace_id)


@router.get("")
def list_(name: str | None = Query(None, description="Only the knowledge base with this name."),
          limit: int = Query(100, ge=1, le=1000), offset: Offset = 0,
          key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    """Newest first, with document and chunk counts."""
    items, total = store.list_kbs(rt.db, key.workspace_id, name=name, limit=limit, offset=offset)
    return {"object": "list", "data": items, "total": total, "limit": limit, "offset": offset,
            "has_more": offset + len(items) < total}


@router.get("/{kb_id}")
def get(kb_id: str, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    latest = jobs.list_jobs(rt.db, workspace_id=key.workspace_id, resource_id=kb_id, limit=5)
    kb = store.get_kb(rt.db, kb_id, key.workspace_id)  # counted after: a job listed as finished is in the counts
    kb["jobs"] = [_progress(j, key) for j in latest]
    index = _service(rt).index(kb_id)
    kb["indexed_chunks"] = index.count() if index is not None else 0
    return kb


@router.patch("/{kb_id}")
def update(kb_id: str, body: KnowledgeBasePatch, key: KeyInfo = Depends(admin),
           rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    if body.description is not None:
        store.set_description(rt.db, kb_id, body.description, key.workspace_id)
    if body.config is not None:
        return _service(rt).update_config(kb_id, body.config, key.workspace_id)
    return store.get_kb(rt.db, kb_id, key.workspace_id)


@router.delete("/{kb_id}")
def delete(kb_id: str, key: KeyInfo = Depends(admin), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    _service(rt).delete(kb_id, key.workspace_id)
    return {"id": kb_id, "object": "knowledge_base", "deleted": True}


# --- documents ----------------------------------------------------------------------------------------------

_UPLOAD_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"], "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "One or more files; a file's name may be a relative path."},
        "metadata": {"type": "string", "default": "{}",
                     "description": "JSON object of metadata for every file (filterable)."}}}}}}}


@router.post("/{kb_id}/documents", status_code=202, openapi_extra=_UPLOAD_FORM)
async def upload(kb_id: str, request: Request, who: Caller = Depends(metered_admin), rt: Runtime = Depends(runtime)
                 ) -> dict[str, Any]:
    """Files as multipart/form-data, each streamed to disk as it arrives (at most TEMPER_MAX_FILE_MB)."""
    service = _service(rt)
    await run_in_threadpool(store.get_kb, rt.db, kb_id, who.workspace_id, counted=False)  # 404 before the body
    form = await multipart.read_form(request, service.blobs.staging(), file_limit=service.max_file_bytes)
    try:
        try:
            meta = orjson.loads(form.fields.get("metadata", "{}"))
        except orjson.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise InvalidRequest("'metadata' must be a JSON object.", param="metadata", code="invalid_metadata")
        files = [f for f in form.files if f.field == "files"]
        if not files:
            raise InvalidRequest("Send one or more files in the 'files' field.", param="files", code="no_files")
        uploads = [Upload(f.filename, f.path, f.size, f.sha256, f.media_type) for f in files if f.path is not None]
        return await run_in_threadpool(service.add_files, kb_id, uploads, metadata=meta,
                                       workspace_id=who.workspace_id, caller=who)
    finally:
        form.discard()  # the files not moved into the store: skipped, refused, or another field's


@router.post("/{kb_id}/documents/text", status_code=202)
def add_text(kb_id: str, body: TextIn, who: Caller = Depends(metered_admin), rt: Runtime = Depends(runtime)
             ) -> dict[str, Any]:
    return _service(rt).add_text(kb_id, body.title, body.text, metadata=body.metadata, workspace_id=who.workspace_id,
                                 caller=who)


@router.post("/{kb_id}/documents/urls", status_code=202)
def add_urls(kb_id: str, body: UrlsIn, who: Caller = Depends(metered_admin), rt: Runtime = Depends(runtime)
             ) -> dict[str, Any]:
    return _service(rt).add_urls(kb_id, body.urls, metadata=body.metadata, workspace_id=who.workspace_id,
                                 caller=who)


@router.post("/{kb_id}/sources", status_code=202)
def add_database(kb_id: str, body: DatabaseIn, who: Caller = Depends(metered_admin), rt: Runtime = Depends(runtime)
                 ) -> dict[str, Any]:
    """A database query as documents, synced now (a job) and again on ``/sync``: only rows with a larger key."""
    return _service(rt).add_database(kb_id, body.name, body.model_dump(exclude={"name"}), workspace_id=who.workspace_id,
                                     caller=who)


@router.get("/{kb_id}/sources")
def sources(kb_id: str, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    return {"object": "list", "data": store.list_sources(rt.db, kb_id, key.workspace_id)}


@router.post("/{kb_id}/sources/{source_id}/sync", status_code=202)
def sync(kb_id: str, source_id: str, who: Caller = Depends(metered_admin), rt: Runtime = Depends(runtime)
         ) -> dict[str, Any]:
    return _service(rt).sync_source(kb_id, source_id, who.workspace_id, caller=who)


@router.post("/{kb_id}/documents/retry", status_code=202)
def retry(kb_id: str, body: RetryIn, who: Caller = Depends(metered_admin), rt: Runtime = Depends(runtime)
          ) -> dict[str, Any]:
    return _service(rt).retry(kb_id, body.document_ids, who.workspace_id, caller=who)


@router.get("/{kb_id}/documents")
def documents(kb_id: str, status: str | None = None, limit: int = Query(100, ge=1, le=1000),
              offset: Offset = 0, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)
              ) -> dict[str, Any]:
    items = store.list_documents(rt.db, kb_id, workspace_id=key.workspace_id, status=status, limit=limit + 1,
                                 offset=offset)
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "limit": limit,
            "offset": offset}


@router.get("/{kb_id}/documents/{doc_id}")
def document(kb_id: str, doc_id: str, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)
             ) -> dict[str, Any]:
    return store.get_document(rt.db, kb_id, doc_id, key.workspace_id)


@router.get("/{kb_id}/documents/{doc_id}/chunks")
def chunks(kb_id: str, doc_id: str, limit: int = Query(200, ge=1, le=2000), offset: Offset = 0,
           key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    items = store.live_chunks(rt.db, kb_id, doc_id, workspace_id=key.workspace_id, limit=limit + 1, offset=offset)
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "limit": limit,
            "offset": offset}


@router.delete("/{kb_id}/documents/{doc_id}")
def delete_document(kb_id: str, doc_id: str, key: KeyInfo = Depends(admin), rt: Runtime = Depends(runtime)
                    ) -> dict[str, Any]:
    _service(rt).delete_document(kb_id, doc_id, key.workspace_id)
    return {"id": doc_id, "object": "knowledge_base.document", "deleted": True}


@router.get("/{kb_id}/jobs")
def kb_jobs(kb_id: str, status: str | None = None, limit: int = Query(20, ge=1, le=200),
            key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict[str, Any]:
    store.get_kb(rt.db, kb_id, key.workspace_id)
    items = jobs.list_jobs(rt.db, workspace_id=key.workspace_id, resource_id=kb_id, status=status, limit=limit)
    return {"object": "list", "data": [_progress(j, key) for j in items]}


def _progress(job: dict[str, Any], key: KeyInfo) -> dict[str, Any]:
    """A knowledge base's job as its readers see it: members get the progress, not who started it or where."""
    return job if key.is_admin else {**job, "payload": {}, "worker": None}


# --- retrieval and answers ----------------------------------------------------------------------------------

@router.post("/{kb_id}/retrieve")
async def retrieve(kb_id: str, body: RetrieveIn, who: Caller = Depends(metered), rt: Runtime = Depends(runtime)
                   ) -> dict[str, Any]:
    found = await _service(rt).retrieve(kb_id, body.query, retrieval=body.overrides(), flt=body.filter,
                                        history=body.turns(), workspace_id=who.workspace_id,
                                        caller=who)
    return {"object": "list", "query": found.query, "rewrites": found.rewrites, "reranker": found.reranker,
            "ordered_by": found.ordered_by, "query_cache_hit": found.query_cache_hit,
            "data": [h.as_dict() for h in found.hits]}


@router.post("/{kb_id}/answer", response_model=None)
async def answer(kb_id: str, body: AnswerIn, who: Caller = Depends(metered), rt: Runtime = Depends(runtime)
                 ) -> dict[str, Any] | StreamingResponse:
    service = _service(rt)
    kwargs: dict[str, Any] = dict(retrieval=body.overrides(), answer=body.answer, flt=body.filter,
                                  history=body.turns(), workspace_id=who.workspace_id, caller=who)
    if not body.stream:
        return await service.answer(kb_id, body.query, **kwargs)
    events = service.answer_stream(kb_id, body.query, **kwargs)
    first = await anext(events)  # retrieval errors (a bad filter, a missing model) are still a plain 4xx here
    return StreamingResponse(_sse(first, events), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def _sse(first: dict[str, Any], events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Server-sent events, one JSON object per ``data:`` line; an error after the start becomes an event."""
    yield b"data: " + orjson.dumps(first) + b"\n\n"
    try:
        async for event in events:
            yield b"data: " + orjson.dumps(event) + b"\n\n"
    except TemperError as e:
        yield b"data: " + orjson.dumps(e.body()) + b"\n\n"
    yield b"data: [DONE]\n\n"
