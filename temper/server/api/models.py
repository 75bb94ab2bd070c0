"""Management API: the model catalogue."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from temper.auth.keys import KeyInfo
from temper.errors import ModelNotFound
from temper.models.catalog import ModelEntry, add_model, edited_entry, entry_from_spec, remove_model
from temper.models.health import Check, forget_check, health_by_model, probe
from temper.server.api.deps import Offset, admin, caller, page, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/models", tags=["models"])


class DeploymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str = "openai_compat"
    base_url: str | None = None
    upstream_model: str | None = None
    api_key_env: str | None = None
    weight: float = Field(1.0, gt=0)
    timeout_s: float = Field(600.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class ModelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    modality: Literal["chat", "completion", "embedding", "rerank"] | None = None
    provider: str | None = Field(None, description="Shortcut for a single deployment (with base_url etc.).")
    base_url: str | None = None
    upstream_model: str | None = None
    api_key_env: str | None = Field(None, description="Environment variable on the server that holds the upstream "
                                    "API key (the console never sees the key).")
    timeout_s: float | None = Field(None, gt=0)
    deployments: list[DeploymentIn] | None = None
    aliases: list[str] | None = None
    fallbacks: list[str] | None = None
    context_length: int | None = Field(None, gt=0)
    parameters: str | None = None
    input_price: float | None = Field(None, ge=0, description="Price per 1M input tokens; null: no price set.")
    output_price: float | None = Field(None, ge=0, description="Price per 1M output tokens; null: no price set.")
    tags: list[str] | None = None
    status: Literal["active", "disabled"] | None = None
    description: str | None = None


class ModelIn(ModelFields):
    id: str


class Health(BaseModel):
    state: Literal["unknown", "healthy", "unhealthy", "unreachable"]
    code: str | None = None
    message: str = ""
    status: int | None = None
    latency_ms: float | None = None
    checked_at: str | None = None


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(pattern=r"^https?://", max_length=2000)
    upstream_model: str = Field(min_length=1, max_length=200, description="The model's name at the upstream.")
    api_key_env: str | None = Field(None, max_length=200)
    modality: Literal["chat", "completion", "embedding", "rerank"] = "chat"


class CheckOut(BaseModel):
    ok: bool
    state: Literal["healthy", "unhealthy", "unreachable"]
    code: str | None = Field(description="null when ok; else key_missing, unreachable, timeout, bad_key, "
                             "model_not_listed or upstream_error.")
    message: str
    status: int | None = Field(description="The upstream's HTTP status, if it answered.")
    latency_ms: float | None
    method: str = Field(description="What was asked: models (GET /models), or chat, completion, embedding or "
                        "rerank (a 1-token call, for an upstream without a model list).")
    checked_at: str


class ModelOut(BaseModel):
    id: str
    modality: str
    provider: str
    deployments: list[dict[str, Any]]
    aliases: list[str]
    fallbacks: list[str]
    context_length: int | None
    parameters: str | None
    input_price: float | None = Field(description="Per 1M input tokens; null: no price set (0: free).")
    output_price: float | None
    tags: list[str]
    status: str = Field(description="active (enabled) or disabled; whether it answers is in health.")
    description: str
    builtin: bool
    workspace_id: str
    created: int
    health: Health | None = Field(description="The last reachability check of a remote model; null for a local "
                                  "one, which always answers.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]
    total: int
    limit: int
    offset: int
    has_more: bool


def _visible(key: KeyInfo, e: ModelEntry) -> bool:
    return key.is_admin or key.allows(e.id, *e.aliases)


def _shown(e: ModelEntry, key: KeyInfo, health: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A model as this caller may see it: members get each deployment's provider only (no upstream URL, model
    or key variable) and the health state without its message."""
    d = e.as_dict()
    d["health"] = (health.get(e.id) or {"state": "unknown"}) if e.remote else None
    if not key.is_admin:
        d["deployments"] = [{"provider": dep["provider"]} for dep in d["deployments"]]
        if d["health"]:
            d["health"] = {k: d["health"].get(k) for k in ("state", "checked_at")}
    return d


def _matches(e: ModelEntry, q: str) -> bool:
    text = " ".join([e.id, e.provider, e.description, e.parameters or "", *e.tags, *e.aliases]).casefold()
    return all(word in text for word in q.casefold().split())


@router.get("", response_model=ModelList)
def list_models(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
                limit: int = Query(100, ge=1, le=1000), offset: Offset = 0,
                q: str | None = Query(None, max_length=200, description="Words that must all appear in the id, "
                                      "provider, description, size, tags or aliases."),
                modality: Literal["chat", "completion", "embedding", "rerank"] | None = None,
                tag: str | None = None, status: Literal["active", "disabled"] | None = None) -> dict:
    health = health_by_model(rt.db)
    items = [_shown(e, key, health) for e in rt.catalog.list() if _visible(key, e) and (not q or _matches(e, q))
             and (modality is None or e.modality == modality) and (tag is None or tag in e.tags)
             and (status is None or e.status == status)]
    return page(items, limit, offset)


async def _stored(rt: Runtime, model_id: str, key: KeyInfo) -> dict:
    """The model just written, as the API shows it; its reachability is checked in the background."""
    await run_in_threadpool(rt.reload)
    entry = rt.catalog.get(model_id)
    rt.health.soon(entry)
    return _shown(entry, key, {})


@router.post("", response_model=ModelOut, status_code=201)
async def create_model(body: ModelIn, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict:
    spec = body.model_dump(exclude_none=True)
    spec.setdefault("modality", "chat")
    entry = await run_in_threadpool(add_model, rt.db, rt.catalog, entry_from_spec(spec), providers=rt.providers)
    return await _stored(rt, entry.id, key)


@router.post("/test-connection", response_model=CheckOut, dependencies=[Depends(admin)])
async def test_connection(body: ConnectionIn) -> dict:
    """Make one cheap call to an upstream, as the server would with this key variable: its model list (or a
    1-token call when it has none). Answers 200 whatever the outcome; ``ok`` and ``code`` say it."""
    check = await probe(body.base_url, body.upstream_model, body.api_key_env, body.modality)
    return check.as_dict()


@router.post("/{model_id:path}/check", response_model=CheckOut, dependencies=[Depends(admin)])
async def check_model(model_id: str, rt: Runtime = Depends(runtime)) -> dict:
    """Check a model's reachability now (each remote deployment) and keep the result as its health."""
    entry = rt.catalog.get(model_id)
    check = await rt.health.check(entry)
    return (check or Check(True, None, "A local model.", method="local")).as_dict()


@router.get("/{model_id:path}", response_model=ModelOut)
def get_model(model_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller)) -> dict:
    entry = rt.catalog.get(model_id)
    if not _visible(key, entry):
        raise ModelNotFound(f"model {model_id!r} not found", param="model", params={"model": model_id})
    return _shown(entry, key, health_by_model(rt.db))


@router.patch("/{model_id:path}", response_model=ModelOut)
async def update_model(model_id: str, body: ModelFields, rt: Runtime = Depends(runtime),
                       key: KeyInfo = Depends(admin)) -> dict:
    """Change the fields given; a null clears one (a price: no price set; the key variable: no key)."""
    entry = edited_entry(rt.catalog.get(model_id), body.model_dump(exclude_unset=True))
    await run_in_threadpool(add_model, rt.db, rt.catalog, entry, providers=rt.providers, replace=True)
    await run_in_threadpool(forget_check, rt.db, entry.id)
    return await _stored(rt, entry.id, key)


@router.delete("/{model_id:path}", dependencies=[Depends(admin)])
def delete_model(model_id: str, rt: Runtime = Depends(runtime)) -> dict:
    remove_model(rt.db, rt.catalog, model_id)
    forget_check(rt.db, model_id)
    rt.reload()
    return {"id": model_id, "object": "model", "deleted": True}
