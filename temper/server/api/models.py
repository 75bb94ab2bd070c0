"""Management API: the model catalogue."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from temper.auth.keys import KeyInfo
from temper.errors import ModelNotFound
from temper.models.catalog import ModelEntry, add_model, entry_from_spec, remove_model
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
    api_key_env: str | None = Field(None, description="Environment variable that holds the upstream API key.")
    timeout_s: float | None = Field(None, gt=0)
    deployments: list[DeploymentIn] | None = None
    aliases: list[str] | None = None
    fallbacks: list[str] | None = None
    context_length: int | None = Field(None, gt=0)
    parameters: str | None = None
    input_price: float | None = Field(None, ge=0, description="Price per 1M input tokens.")
    output_price: float | None = Field(None, ge=0, description="Price per 1M output tokens.")
    tags: list[str] | None = None
    status: Literal["active", "disabled"] | None = None
    description: str | None = None


class ModelIn(ModelFields):
    id: str


class ModelOut(BaseModel):
    id: str
    modality: str
    provider: str
    deployments: list[dict[str, Any]]
    aliases: list[str]
    fallbacks: list[str]
    context_length: int | None
    parameters: str | None
    input_price: float
    output_price: float
    tags: list[str]
    status: str
    description: str
    builtin: bool
    workspace_id: str
    created: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]
    total: int
    limit: int
    offset: int
    has_more: bool


def _visible(key: KeyInfo, e: ModelEntry) -> bool:
    return key.is_admin or key.allows(e.id, *e.aliases)


def _shown(e: ModelEntry, key: KeyInfo) -> dict[str, Any]:
    """A model as this caller may see it: members get each deployment's provider only (no upstream URL, model
    or key variable)."""
    d = e.as_dict()
    if not key.is_admin:
        d["deployments"] = [{"provider": dep["provider"]} for dep in d["deployments"]]
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
    items = [_shown(e, key) for e in rt.catalog.list() if _visible(key, e) and (not q or _matches(e, q))
             and (modality is None or e.modality == modality) and (tag is None or tag in e.tags)
             and (status is None or e.status == status)]
    return page(items, limit, offset)


@router.post("", response_model=ModelOut, status_code=201, dependencies=[Depends(admin)])
def create_model(body: ModelIn, rt: Runtime = Depends(runtime)) -> dict:
    spec = body.model_dump(exclude_none=True)
    spec.setdefault("modality", "chat")
    entry = add_model(rt.db, rt.catalog, entry_from_spec(spec), providers=rt.providers)
    rt.reload()
    return rt.catalog.get(entry.id).as_dict()


@router.get("/{model_id:path}", response_model=ModelOut)
def get_model(model_id: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller)) -> dict:
    entry = rt.catalog.get(model_id)
    if not _visible(key, entry):
        raise ModelNotFound(f"model {model_id!r} not found", param="model")
    return _shown(entry, key)


@router.patch("/{model_id:path}", response_model=ModelOut, dependencies=[Depends(admin)])
def update_model(model_id: str, body: ModelFields, rt: Runtime = Depends(runtime)) -> dict:
    current = rt.catalog.get(model_id).as_dict()
    current["deployments"] = [d.__dict__ for d in rt.catalog.get(model_id).deployments]
    for k in ("provider", "builtin"):
        current.pop(k)
    changes = body.model_dump(exclude_none=True)
    if any(k in changes for k in ("provider", "base_url", "upstream_model", "api_key_env", "timeout_s")):
        current.pop("deployments")
    entry = add_model(rt.db, rt.catalog, entry_from_spec(current | changes), providers=rt.providers, replace=True)
    rt.reload()
    return rt.catalog.get(entry.id).as_dict()


@router.delete("/{model_id:path}", dependencies=[Depends(admin)])
def delete_model(model_id: str, rt: Runtime = Depends(runtime)) -> dict:
    remove_model(rt.db, rt.catalog, model_id)
    rt.reload()
    return {"id": model_id, "object": "model", "deleted": True}
