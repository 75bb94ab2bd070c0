"""Management API: console users (username + password; each runs as a personal key)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from temper.auth.users import create_user, list_users, remove_user, set_password
from temper.server.api.deps import Offset, admin, page, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/users", tags=["users"], dependencies=[Depends(admin)])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=500)
    role: Literal["admin", "member"] = "member"
    workspace_id: str = "ws_default"


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=500)


class UserOut(BaseModel):
    id: str
    workspace_id: str
    username: str
    role: str
    key_id: str = Field(description="The personal key the user's console requests run as (its secret is never shown).")
    created_at: str | None


class UserList(BaseModel):
    object: Literal["list"] = "list"
    data: list[UserOut]
    total: int
    limit: int
    offset: int
    has_more: bool


@router.get("", response_model=UserList)
def users(rt: Runtime = Depends(runtime), limit: int = Query(100, ge=1, le=1000),
          offset: Offset = 0) -> dict:
    return page([u.as_dict() for u in list_users(rt.db)], limit, offset)


@router.post("", response_model=UserOut, status_code=201)
def create(body: UserIn, rt: Runtime = Depends(runtime)) -> dict:
    user = create_user(rt.db, body.username, body.password, body.role, body.workspace_id)
    rt.reload()
    return user.as_dict()


@router.put("/{user}/password", response_model=UserOut)
def password(user: str, body: PasswordIn, rt: Runtime = Depends(runtime)) -> dict:
    return set_password(rt.db, user, body.password).as_dict()


@router.delete("/{user}", response_model=UserOut)
def delete(user: str, rt: Runtime = Depends(runtime)) -> dict:
    removed = remove_user(rt.db, user)
    rt.reload()
    return removed.as_dict()
