"""Shared dependencies of the management API: the runtime, the caller, pagination.

A caller is a key: sent as ``Authorization: Bearer`` (scripts, the CLI) or carried by a console session
cookie (the browser), in which case state-changing requests must also send the CSRF header.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from temper.auth.keys import KeyInfo
from temper.auth.sessions import CSRF_HEADER, SESSION_COOKIE
from temper.errors import InvalidRequest, PermissionDenied
from temper.server.runtime import Runtime


async def runtime(request: Request) -> Runtime:
    """Async, so that FastAPI calls it on the event loop rather than in the shared thread pool."""
    return request.app.state.runtime


def caller(request: Request) -> KeyInfo:
    """Any valid key or console session: admins and members."""
    rt: Runtime = request.app.state.runtime
    authorization = request.headers.get("authorization")
    return rt.auth.identify(authorization.encode("latin-1") if authorization else None,
                            request.cookies.get(SESSION_COOKIE), request.headers.get(CSRF_HEADER), request.method)


def admin(request: Request) -> KeyInfo:
    key = caller(request)
    if not key.is_admin:
        raise PermissionDenied("This needs the admin key.", code="admin_required")
    return key


def own_key(key: KeyInfo, key_id: str | None, what: str) -> str | None:
    """The key filter a caller may use: admins any (or none), members only their own key."""
    if key.is_admin:
        return key_id
    if key_id and key_id != key.id:
        raise InvalidRequest(f"You can only see the {what} of your own key.", param="key_id", code="key_not_allowed")
    return key.id


MAX_OFFSET = 1_000_000_000  # rows skipped by a page; past a 64-bit SQL integer a database fails, not the request
MAX_HOURS = 24 * 3660  # how far back a time filter may reach (ten years)
MAX_COUNT = 10 ** 15  # limits and budgets: beyond any real use, within every database's 64-bit integers
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


def page(items: list, limit: int, offset: int) -> dict:
    return {"object": "list", "data": items[offset:offset + limit], "total": len(items), "limit": limit,
            "offset": offset, "has_more": offset + limit < len(items)}
