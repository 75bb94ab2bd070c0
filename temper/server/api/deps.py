"""Shared dependencies of the management API: the runtime and admin authentication."""
from __future__ import annotations

from fastapi import Request

from temper.auth.keys import KeyInfo
from temper.errors import PermissionDenied
from temper.server.runtime import Runtime


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def admin(request: Request) -> KeyInfo:
    rt: Runtime = request.app.state.runtime
    key = rt.authenticate(request.headers.get("authorization", "").encode("latin-1"))
    if not key.is_admin:
        raise PermissionDenied("This endpoint needs the admin key.", code="admin_required")
    return key


def page(items: list, limit: int, offset: int) -> dict:
    return {"object": "list", "data": items[offset:offset + limit], "total": len(items), "limit": limit,
            "offset": offset, "has_more": offset + limit < len(items)}
