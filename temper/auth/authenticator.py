"""Who is calling: a Bearer key (hashed and looked up in memory), the server's admin key, or a console
session (its cookie, with a CSRF token on state-changing requests). One ``Authenticator`` per server holds
the active keys and the sessions seen, refreshed when another process changes them (``Runtime.reload``)."""
from __future__ import annotations

import asyncio
import hmac
from datetime import datetime, timezone

from temper.auth.keys import ADMIN_KEY_ID, KeyInfo, active_keys_by_hash, admin_info, hash_key
from temper.auth.sessions import SESSION_COOKIE, SessionInfo, find_session
from temper.errors import AuthenticationError, PermissionDenied

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # need no CSRF token


class Authenticator:
    def __init__(self, db: str, admin_key: str) -> None:
        self.db = db
        self.admin = admin_info()
        self._admin_hash = hash_key(admin_key)
        self._keys: dict[str, KeyInfo] = {}  # by hash
        self._keys_by_id: dict[str, KeyInfo] = {}
        self._sessions: dict[str, SessionInfo] = {}  # cookie token -> session, cleared when one ends anywhere

    def reload_keys(self) -> None:
        self._keys = active_keys_by_hash(self.db)
        self._keys_by_id = {k.id: k for k in self._keys.values()}

    def forget_sessions(self, token: str | None = None) -> None:
        """Drop one cached session (signed out here), or all of them (one ended somewhere)."""
        if token is None:
            self._sessions = {}
        else:
            self._sessions.pop(token, None)

    def authenticate(self, authorization: bytes | None) -> KeyInfo:
        """The key for a ``Bearer`` header; raises 401 for missing, unknown, revoked or expired keys."""
        if not authorization or not authorization[:7].lower() == b"bearer ":
            raise AuthenticationError("You didn't provide an API key. Provide it in the Authorization header "
                                      "(Authorization: Bearer YOUR_KEY).", code="missing_api_key")
        token = authorization[7:].strip().decode("latin-1")
        digest = hash_key(token)
        key = self._keys.get(digest)
        if key is None:
            if hmac.compare_digest(digest, self._admin_hash):
                return self.admin
            raise AuthenticationError(f"Incorrect API key provided: {token[:10]}…. Check the key, or create one "
                                      "with `temper keys create`.")
        return _unexpired(key)

    def session(self, token: str | None) -> SessionInfo:
        """The live console session for a cookie token; 401 when there is none."""
        sess = self._sessions.get(token) if token else None
        if sess is None and token:
            sess = find_session(self.db, token)
            if sess is not None:
                self._sessions[token] = sess
        if sess is None or sess.expired:
            raise AuthenticationError("You are not signed in. Sign in to the console, or provide an API key in "
                                      "the Authorization header (Authorization: Bearer YOUR_KEY).",
                                      code="missing_api_key")
        return sess

    def identify(self, authorization: bytes | None, session_token: str | None, csrf: str | None,
                 method: str) -> KeyInfo:
        """The caller of any surface: a Bearer key when one is sent, else the console session."""
        if authorization or not session_token:
            return self.authenticate(authorization)
        return self.authenticate_session(session_token, csrf, method in SAFE_METHODS)

    async def identify_headers(self, authorization: bytes | None, cookie: bytes | None, csrf: bytes | None,
                               method: str) -> KeyInfo:
        """``identify`` from raw request headers, on the event loop: a Bearer key is checked in memory; a session
        not seen before is read from the database, so that path runs in a thread."""
        if authorization or not cookie:
            return self.authenticate(authorization)
        return await asyncio.to_thread(self.identify, None, cookie_value(cookie.decode("latin-1")),
                                       csrf.decode("latin-1") if csrf else None, method)

    def key_by_id(self, key_id: str) -> KeyInfo | None:
        """An active key (the admin key included) by id."""
        return self.admin if key_id == ADMIN_KEY_ID else self._keys_by_id.get(key_id)

    def authenticate_session(self, token: str | None, csrf: str | None, safe: bool) -> KeyInfo:
        """The key a console session acts as. State-changing requests (``safe`` False) must echo the
        session's CSRF token in the ``x-csrf-token`` header."""
        sess = self.session(token)
        if not safe and not hmac.compare_digest((csrf or "").encode(), sess.csrf_token.encode()):
            raise PermissionDenied("Missing or wrong CSRF token: reload the console page and try again.",
                                   code="csrf_failed")
        key = self.key_by_id(sess.key_id)
        if key is None:
            raise AuthenticationError("The key this session was opened with has been revoked. Sign in again.",
                                      code="invalid_api_key")
        return _unexpired(key)


def _unexpired(key: KeyInfo) -> KeyInfo:
    if key.expires_at is not None and key.expires_at <= datetime.now(timezone.utc):
        raise AuthenticationError(f"API key {key.prefix}… expired at {key.expires_at.isoformat()}.",
                                  code="expired_api_key",
                                  params={"key_prefix": key.prefix, "expired_at": key.expires_at.isoformat()})
    return key


def cookie_value(header: str | None, name: str = SESSION_COOKIE) -> str | None:
    """One cookie's value from a ``Cookie`` header."""
    for part in (header or "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v or None
    return None
