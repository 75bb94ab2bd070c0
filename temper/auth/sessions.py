"""Console sign-in sessions.

Signing in with a key (the admin key or an API key) creates a session: a random token that the browser
keeps in an HTTP-only cookie and that is stored here only as a hash, plus a CSRF token the console sends
back in a header on every state-changing request. A session acts with the rights, limits and metering of
the key it was opened with; revoking the key ends its sessions.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from temper.auth.keys import KeyInfo, hash_key
from temper.ids import new_id
from temper.store.db import bump_revision, session
from temper.store.tables import ConsoleSession, as_utc, utcnow

SESSION_COOKIE = "temper_session"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class SessionInfo:
    id: str
    key_id: str
    workspace_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= datetime.now(timezone.utc)


def _info(row: ConsoleSession) -> SessionInfo:
    return SessionInfo(id=row.id, key_id=row.key_id, workspace_id=row.workspace_id, csrf_token=row.csrf_token,
                       created_at=as_utc(row.created_at), expires_at=as_utc(row.expires_at))


def create_session(db: str, key: KeyInfo, ttl: timedelta, user_agent: str = "") -> tuple[SessionInfo, str]:
    """Open a session for ``key``; returns it and the cookie token (never stored in plain)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + ttl
    if key.expires_at is not None:
        expires = min(expires, key.expires_at)
    row = ConsoleSession(id=new_id("sess"), workspace_id=key.workspace_id, token_hash=hash_key(token),
                         key_id=key.id, csrf_token=secrets.token_urlsafe(32), user_agent=user_agent[:300],
                         created_at=now, expires_at=expires)
    with session(db) as s:
        s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
        s.add(row)
    return _info(row), token


def find_session(db: str, token: str) -> SessionInfo | None:
    """The live session for a cookie token, or None when unknown or expired."""
    with session(db) as s:
        row = s.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == hash_key(token)))
        info = _info(row) if row is not None else None
    return None if info is None or info.expired else info


def end_session(db: str, token: str) -> bool:
    with session(db) as s:
        gone = s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == hash_key(token))).rowcount
        if gone:
            bump_revision(s, "sessions")
    return bool(gone)
