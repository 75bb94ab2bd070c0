"""Management API: API keys (the plaintext is returned once, at creation)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from temper.auth.keys import create_key, get_key, list_keys, revoke_key, update_key
from temper.server.api.deps import MAX_COUNT, Offset, admin, page, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/keys", tags=["keys"], dependencies=[Depends(admin)])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    workspace_id: str = "ws_default"
    allowed_models: list[str] | None = Field(None, description="Model ids or aliases; all models when null.")
    rpm: int | None = Field(None, gt=0, le=MAX_COUNT, description="Requests per minute.")
    tpm: int | None = Field(None, gt=0, le=MAX_COUNT, description="Tokens per minute.")
    token_budget: int | None = Field(None, gt=0, le=MAX_COUNT, description="Total tokens this key may use.")
    expires_at: datetime | None = None


class KeyPatch(BaseModel):
    """The fields to change; a null lifts a limit (``allowed_models``: every model; ``expires_at``: never)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    allowed_models: list[str] | None = None
    rpm: int | None = Field(None, gt=0, le=MAX_COUNT)
    tpm: int | None = Field(None, gt=0, le=MAX_COUNT)
    token_budget: int | None = Field(None, gt=0, le=MAX_COUNT)
    expires_at: datetime | None = None


class KeyOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    prefix: str
    is_admin: bool
    allowed_models: list[str] | None
    rpm: int | None
    tpm: int | None
    token_budget: int | None
    tokens_used: int
    expires_at: str | None
    revoked_at: str | None
    created_at: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret key. It is shown only in this response.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyOut]
    total: int
    limit: int
    offset: int
    has_more: bool


@router.get("", response_model=KeyList)
def keys(rt: Runtime = Depends(runtime), limit: int = Query(100, ge=1, le=1000), offset: Offset = 0,
         include_revoked: bool = True) -> dict:
    items = [k.as_dict() for k in list_keys(rt.db, include_revoked=include_revoked)]
    return page(items, limit, offset)


@router.post("", response_model=KeyCreated, status_code=201)
def create(body: KeyIn, rt: Runtime = Depends(runtime)) -> dict:
    info, plain = create_key(rt.db, **body.model_dump())
    rt.reload()
    return info.as_dict() | {"key": plain}


@router.get("/{key_id}", response_model=KeyOut)
def show(key_id: str, rt: Runtime = Depends(runtime)) -> dict:
    return get_key(rt.db, key_id).as_dict()


@router.patch("/{key_id}", response_model=KeyOut)
def edit(key_id: str, body: KeyPatch, rt: Runtime = Depends(runtime)) -> dict:
    """Change a key's name, models, limits, budget or expiry; it applies to the key's next request."""
    info = update_key(rt.db, key_id, body.model_dump(exclude_unset=True))
    rt.reload()
    return info.as_dict()


@router.delete("/{key_id}", response_model=KeyOut)
def revoke(key_id: str, rt: Runtime = Depends(runtime)) -> dict:
    info = revoke_key(rt.db, key_id)
    rt.reload()
    return info.as_dict()
