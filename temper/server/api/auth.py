"""Management API: console sign-in (a session cookie opened with a key), who am I, sign-out."""
from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from temper.auth.keys import KeyInfo
from temper.auth.sessions import SESSION_COOKIE, SessionInfo, create_session, end_session
from temper.auth.users import verify_user
from temper.errors import AuthenticationError, InvalidRequest, PermissionDenied, RateLimited
from temper.server.api.deps import caller, runtime
from temper.server.runtime import Runtime

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class SignIn(BaseModel):
    """Either ``key`` (the admin key or an API key) or ``username`` + ``password`` (a console user)."""

    model_config = ConfigDict(extra="forbid")
    key: str | None = Field(None, min_length=1, max_length=500)
    username: str | None = Field(None, min_length=1, max_length=100)
    password: str | None = Field(None, min_length=1, max_length=500)


class Identity(BaseModel):
    role: Literal["admin", "member"]
    key_id: str
    key_name: str
    key_prefix: str
    workspace_id: str
    allowed_models: list[str] | None
    csrf_token: str | None = Field(None, description="Send it back as x-csrf-token on state-changing requests.")
    expires_at: str | None = None


class SessionStatus(BaseModel):
    signed_in: bool
    identity: Identity | None = Field(None, description="Who the caller is, when signed in.")


def _identity(key: KeyInfo, sess: SessionInfo | None) -> dict:
    return {"role": "admin" if key.is_admin else "member", "key_id": key.id, "key_name": key.name,
            "key_prefix": key.prefix, "workspace_id": key.workspace_id, "allowed_models": key.allowed_models,
            "csrf_token": sess.csrf_token if sess else None,
            "expires_at": sess.expires_at.isoformat() if sess else None}


async def same_origin(request: Request) -> None:
    """Refuse sign-ins posted from another site's page (login CSRF)."""
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") == "cross-site" or (
            origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host")):
        raise PermissionDenied("Sign-in must come from the console's own page.", code="cross_origin")


async def _take(rt: Runtime, bucket: str) -> None:
    """One of ``signin_attempts`` per 5 minutes from ``bucket`` (across replicas when the limit store is shared)."""
    per_5_min = rt.settings.signin_attempts
    _, wait = await rt.meter.store.take(bucket, per_5_min, per_5_min / 300, 1)
    if wait:
        raise RateLimited(f"Too many sign-in attempts. Try again in {math.ceil(wait)} s.",
                          params={"retry_after": math.ceil(wait)},
                          headers={"retry-after": str(math.ceil(wait))})


async def throttle(request: Request, rt: Runtime = Depends(runtime)) -> None:
    """Per client address, so guessing is slow. The address is the peer's, or what X-Forwarded-For says when
    the peer is one of ``trusted_proxies`` (uvicorn's proxy headers, set up by ``temper serve``)."""
    await _take(rt, f"signin:{request.client.host if request.client else '?'}")


def _secure(request: Request, rt: Runtime) -> bool:
    mode = rt.settings.cookie_secure
    if mode != "auto":
        return mode == "always"
    return request.url.scheme == "https" or request.url.hostname in LOOPBACK


@router.post("/session", response_model=Identity, status_code=201,
             dependencies=[Depends(same_origin), Depends(throttle)])
async def sign_in(body: SignIn, request: Request, response: Response, rt: Runtime = Depends(runtime)) -> dict:
    """Open a console session with a key, or a username and a password. Attempts are limited per client address
    and per username (429 with retry-after); when too many password checks are already waiting, 503 with
    retry-after. Passwords are checked on threads of their own, apart from other requests."""
    if body.key and not (body.username or body.password):
        key = rt.auth.authenticate(b"Bearer " + body.key.strip().encode("utf-8", "replace"))
    elif body.username and body.password and not body.key:
        await _take(rt, f"signin-user:{body.username.strip().lower()}")
        key = await rt.passwords.run(verify_user, rt.db, body.username, body.password)
    else:
        raise InvalidRequest("Send either a key, or a username and a password.", param="key",
                             code="signin_fields")
    ttl = timedelta(hours=rt.settings.session_ttl_h)
    sess, token = await asyncio.to_thread(create_session, rt.db, key, ttl, request.headers.get("user-agent", ""))
    response.set_cookie(SESSION_COOKIE, token, max_age=int(ttl.total_seconds()), path="/", httponly=True,
                        samesite="strict", secure=_secure(request, rt))
    return _identity(key, sess)


@router.get("/session", response_model=Identity)
def whoami(request: Request, key: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> dict:
    token = request.cookies.get(SESSION_COOKIE)
    sess = rt.auth.session(token) if token and not request.headers.get("authorization") else None
    return _identity(key, sess)


@router.get("/status", response_model=SessionStatus)
def status(request: Request, rt: Runtime = Depends(runtime)) -> dict:
    """Who am I, for a page that may not be signed in yet: ``signed_in`` false (200) when no session cookie is
    sent or it has ended, so that the console's first load is not a failed request. A key sent in the
    Authorization header must still be valid (401 otherwise); GET /session stays 401 when signed out."""
    if request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE):
        try:
            return {"signed_in": True, "identity": whoami(request, caller(request), rt)}
        except AuthenticationError:
            if request.headers.get("authorization"):
                raise
    return {"signed_in": False, "identity": None}


@router.delete("/session", status_code=204)
def sign_out(request: Request, _: KeyInfo = Depends(caller), rt: Runtime = Depends(runtime)) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_session(rt.db, token)
        rt.auth.forget_sessions(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request, rt))
    return response
