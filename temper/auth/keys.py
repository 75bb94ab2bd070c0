"""API keys: generated once, stored as SHA-256 hashes, with per-key limits and budgets."""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from temper.errors import Conflict, InvalidRequest, NotFound
from temper.ids import new_id
from temper.store.db import bump_revision, session
from temper.store.tables import DEFAULT_WORKSPACE, ApiKey, ConsoleSession, Workspace, as_utc, utcnow

KEY_PREFIX = "sk-temper-"
ADMIN_KEY_ID = "key_admin"


@dataclass
class KeyInfo:
    id: str
    workspace_id: str
    name: str
    prefix: str
    is_admin: bool = False
    allowed_models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    token_budget: int | None = None
    tokens_used: int = 0
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime | None = None

    def allows(self, *names: str) -> bool:
        """Whether the key may use a model known by any of ``names`` (its id, aliases, the name asked)."""
        return self.allowed_models is None or any(n in self.allowed_models for n in names)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("expires_at", "revoked_at", "created_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(id=row.id, workspace_id=row.workspace_id, name=row.name, prefix=row.prefix,
                   is_admin=row.is_admin, allowed_models=row.allowed_models, rpm=row.rpm, tpm=row.tpm,
                   token_budget=row.token_budget, tokens_used=row.tokens_used,
                   expires_at=as_utc(row.expires_at), revoked_at=as_utc(row.revoked_at),
                   created_at=as_utc(row.created_at))


def _positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise InvalidRequest(f"{name} must be a positive integer", param=name, code="not_positive")


def create_key(db: str, *, name: str = "", workspace_id: str = DEFAULT_WORKSPACE,
               allowed_models: list[str] | None = None, rpm: int | None = None, tpm: int | None = None,
               token_budget: int | None = None, expires_at: datetime | None = None,
               secret: str | None = None, is_admin: bool = False) -> tuple[KeyInfo, str]:
    """Create a key; returns its info and the plaintext, which is never stored or shown again.

    ``secret`` imports an existing key (e.g. when moving clients over from another gateway)."""
    if secret is not None and (len(secret) < 16 or len(secret) > 256 or not secret.isascii()
                               or not secret.isprintable() or " " in secret):
        # ASCII only: a key travels in an HTTP header, whose bytes are not UTF-8
        raise InvalidRequest("an imported key must be 16 to 256 printable ASCII characters without spaces",
                             param="key", code="invalid_imported_key")
    for field, value in (("rpm", rpm), ("tpm", tpm), ("token_budget", token_budget)):
        _positive(field, value)
    if expires_at is not None:
        expires_at = as_utc(expires_at)
        if expires_at <= utcnow():
            raise InvalidRequest("expires_at must be in the future", param="expires_at", code="expiry_in_past")
    plain = secret or KEY_PREFIX + secrets.token_urlsafe(32)
    with session(db) as s:
        if s.get(Workspace, workspace_id) is None:
            raise InvalidRequest(f"There is no workspace {workspace_id!r}.", param="workspace_id",
                                 code="workspace_not_found", params={"workspace_id": workspace_id})
        if s.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(plain))) is not None:
            raise Conflict("that key already exists", param="key", code="key_exists")
    row = ApiKey(id=new_id("key"), workspace_id=workspace_id, name=name, key_hash=hash_key(plain),
                 prefix=plain[:14], is_admin=is_admin, allowed_models=allowed_models or None, rpm=rpm, tpm=tpm,
                 token_budget=token_budget, tokens_used=0, expires_at=expires_at, created_at=utcnow())
    with session(db) as s:
        s.add(row)
        bump_revision(s, "keys")
    return _info(row), plain


def list_keys(db: str, workspace_id: str | None = None, include_revoked: bool = True) -> list[KeyInfo]:
    with session(db) as s:
        q = select(ApiKey).order_by(ApiKey.created_at)
        if workspace_id:
            q = q.where(ApiKey.workspace_id == workspace_id)
        if not include_revoked:
            q = q.where(ApiKey.revoked_at.is_(None))
        return [_info(r) for r in s.scalars(q)]


def get_key(db: str, key_id: str) -> KeyInfo:
    with session(db) as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"API key {key_id!r} not found", param="key_id",
                           code="key_not_found", params={"key_id": key_id})
        return _info(row)


def active_key(db: str, key_id: str) -> KeyInfo | None:
    """A usable key by id (the admin key included); None when it is unknown, revoked or expired."""
    if key_id == ADMIN_KEY_ID:
        return admin_info()
    with session(db) as s:
        row = s.get(ApiKey, key_id)
        info = _info(row) if row is not None and row.revoked_at is None else None
    if info is not None and info.expires_at is not None and info.expires_at <= utcnow():
        return None
    return info


EDITABLE = ("name", "allowed_models", "rpm", "tpm", "token_budget", "expires_at")


def update_key(db: str, key_id: str, changes: dict) -> KeyInfo:
    """Change a key's name, models and limits (the fields in ``changes``; a null lifts a limit or, for
    ``allowed_models``, allows every model). A revoked key cannot be changed."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidRequest(f"cannot change {', '.join(sorted(unknown))}", param=sorted(unknown)[0],
                             code="field_not_editable", params={"fields": ", ".join(sorted(unknown))})
    for field in ("rpm", "tpm", "token_budget"):
        _positive(field, changes.get(field))
    if changes.get("expires_at") is not None:
        changes["expires_at"] = as_utc(changes["expires_at"])
        if changes["expires_at"] <= utcnow():
            raise InvalidRequest("expires_at must be in the future", param="expires_at", code="expiry_in_past")
    if "allowed_models" in changes:
        changes["allowed_models"] = changes["allowed_models"] or None
    if "name" in changes:
        changes["name"] = changes["name"] or ""
    with session(db) as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"API key {key_id!r} not found", param="key_id",
                           code="key_not_found", params={"key_id": key_id})
        if row.revoked_at is not None:
            raise InvalidRequest("a revoked key cannot be changed", param="key_id", code="key_revoked")
        for field, value in changes.items():
            setattr(row, field, value)
        bump_revision(s, "keys")
        s.flush()
        return _info(row)


def revoke_key(db: str, key_id: str) -> KeyInfo:
    """Revoke a key and end the console sessions opened with it."""
    with session(db) as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"API key {key_id!r} not found", param="key_id",
                           code="key_not_found", params={"key_id": key_id})
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            bump_revision(s, "keys")
        if s.execute(delete(ConsoleSession).where(ConsoleSession.key_id == key_id)).rowcount:
            bump_revision(s, "sessions")
        return _info(row)


def active_keys_by_hash(db: str) -> dict[str, KeyInfo]:
    """Every non-revoked key, by hash: the server's in-memory key ring."""
    with session(db) as s:
        rows = s.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))
        return {r.key_hash: _info(r) for r in rows}


def ensure_admin_key(home: Path, configured: str | None) -> tuple[str, bool]:
    """The admin key: ``TEMPER_ADMIN_KEY`` if set, else ``home/admin_key`` (created, mode 0600, on first use).

    Returns ``(key, created_now)`` so the caller can print a new key exactly once.
    """
    if configured:
        return configured, False
    path = home / "admin_key"
    if path.exists():
        return path.read_text().strip(), False
    key = KEY_PREFIX + "admin-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, True


def admin_info() -> KeyInfo:
    return KeyInfo(id=ADMIN_KEY_ID, workspace_id=DEFAULT_WORKSPACE, name="admin", prefix="admin", is_admin=True)


def add_tokens_used(s: Session, spent: dict[str, int]) -> None:
    """Add to keys' lifetime token counts, in the caller's transaction (the usage rows' own)."""
    for key_id, n in spent.items():
        if n:
            s.execute(update(ApiKey).where(ApiKey.id == key_id).values(tokens_used=ApiKey.tokens_used + n))


def tokens_used_by_key(db: str) -> dict[str, int]:
    with session(db) as s:
        return {k: v for k, v in s.execute(select(ApiKey.id, ApiKey.tokens_used))}

