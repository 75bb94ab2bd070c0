"""Console users: a username and password (scrypt) for people who should not handle API keys.

Each user gets a personal API key whose secret is generated and thrown away: the key exists so that
what a user does in the console is authorised, limited and metered exactly like API traffic, and
shows in usage under the user's name. Removing a user revokes that key, which ends their sessions.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import func, select

from temper.auth.keys import KeyInfo, create_key, get_key, revoke_key
from temper.errors import AuthenticationError, Conflict, InvalidRequest, NotFound
from temper.ids import new_id
from temper.store.db import session
from temper.store.tables import DEFAULT_WORKSPACE, User, utcnow

ROLES = ("admin", "member")
MIN_PASSWORD = 10
_NAME_RE = re.compile(r"^[\w.@+-]{1,100}$")  # \w is Unicode: Chinese names are fine
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass
class UserInfo:
    id: str
    workspace_id: str
    username: str
    role: str
    key_id: str
    created_at: datetime | None

    def as_dict(self) -> dict:
        return {**self.__dict__, "created_at": self.created_at.isoformat() if self.created_at else None}


def _info(row: User) -> UserInfo:
    return UserInfo(id=row.id, workspace_id=row.workspace_id, username=row.username, role=row.role,
                    key_id=row.key_id, created_at=row.created_at)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def _password_ok(password: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"the password must be at least {MIN_PASSWORD} characters", param="password",
                             code="password_too_short", params={"min": MIN_PASSWORD})


def create_user(db: str, username: str, password: str, role: str = "member",
                workspace_id: str = DEFAULT_WORKSPACE) -> UserInfo:
    username = username.strip()
    if not _NAME_RE.match(username):
        raise InvalidRequest("a username is 1-100 letters, digits or . _ @ + -", param="username",
                             code="invalid_username")
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", param="role",
                             code="not_one_of", params={"allowed": ", ".join(ROLES)})
    _check_password(password)
    with session(db) as s:
        if s.scalar(select(User.id).where(func.lower(User.username) == username.lower())) is not None:
            raise Conflict(f"user {username!r} already exists", param="username",
                           code="user_exists", params={"username": username})
    key, _ = create_key(db, name=f"{username} (console)", workspace_id=workspace_id, is_admin=role == "admin")
    row = User(id=new_id("usr"), workspace_id=workspace_id, username=username,
               password_hash=hash_password(password), role=role, key_id=key.id, created_at=utcnow())
    with session(db) as s:
        s.add(row)
    return _info(row)


def list_users(db: str, workspace_id: str | None = None) -> list[UserInfo]:
    with session(db) as s:
        q = select(User).order_by(User.created_at)
        if workspace_id:
            q = q.where(User.workspace_id == workspace_id)
        return [_info(r) for r in s.scalars(q)]


def _find(db: str, user: str) -> User | None:
    with session(db) as s:
        return s.scalar(select(User).where((User.id == user) | (func.lower(User.username) == user.lower())))


def remove_user(db: str, user: str) -> UserInfo:
    """Delete a user (by id or name) and revoke their personal key, ending their sessions."""
    row = _find(db, user)
    if row is None:
        raise NotFound(f"user {user!r} not found", param="user", code="user_not_found", params={"user": user})
    revoke_key(db, row.key_id)
    with session(db) as s:
        s.delete(s.get(User, row.id))
    return _info(row)


def set_password(db: str, user: str, password: str) -> UserInfo:
    _check_password(password)
    row = _find(db, user)
    if row is None:
        raise NotFound(f"user {user!r} not found", param="user", code="user_not_found", params={"user": user})
    with session(db) as s:
        s.get(User, row.id).password_hash = hash_password(password)
    return _info(row)


@lru_cache(maxsize=1)
def _unknown_user_hash() -> str:
    return hash_password(secrets.token_hex(16))


def verify_user(db: str, username: str, password: str) -> KeyInfo:
    """The personal key of the user with this password; 401 otherwise, in the same time and with the
    same message whether or not the user exists."""
    row = _find(db, username.strip())
    stored = row.password_hash if row else _unknown_user_hash()
    if not _password_ok(password, stored) or row is None:
        raise AuthenticationError("Wrong username or password.", code="invalid_credentials")
    key = get_key(db, row.key_id)
    if key.revoked_at is not None:
        raise AuthenticationError(f"The account {row.username!r} is disabled: its personal key was revoked.",
                                  code="account_disabled", params={"username": row.username})
    return key
