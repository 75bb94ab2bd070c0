"""What a running server holds in memory: catalogue snapshot, key ring, limits, usage writer, router.

Changes made elsewhere (the CLI, another replica) are picked up by polling revision counters in the
database every ``catalog_poll_s`` seconds, off the request path.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import datetime, timezone

from temper.auth.keys import KeyInfo, active_keys_by_hash, admin_info, ensure_admin_key, hash_key
from temper.config import Settings
from temper.errors import AuthenticationError
from temper.models.catalog import Catalog
from temper.models.metering import Limits, MemoryLimitStore, UsageWriter, spent_by_key
from temper.models.plaza import build_catalog
from temper.models.router import Router
from temper.plugins import plugin_manager, providers
from temper.store.db import migrate, revisions

log = logging.getLogger("temper.server")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = settings.db_url
        self.pm = plugin_manager()
        self.providers = providers(self.pm, settings)
        self.catalog: Catalog = Catalog([], [])
        self.keys: dict[str, KeyInfo] = {}
        self.spent: dict[str, int] = {}
        self.admin_key, self.admin_key_created = ensure_admin_key(settings.home_dir, settings.admin_key)
        self.admin_hash = hash_key(self.admin_key)
        self.admin = admin_info()
        self.limits = Limits(MemoryLimitStore())
        self.usage = UsageWriter(self.db, settings.usage_flush_s)
        self.router = Router(self.providers, lambda: self.catalog)
        self._revs: dict[str, int] = {}
        self._poller: asyncio.Task | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, migrate, self.db)
        await loop.run_in_executor(None, self.reload, True)
        self.usage.start()
        self._poller = loop.create_task(self._poll())

    async def stop(self) -> None:
        if self._poller:
            self._poller.cancel()
        await self.usage.close()
        for p in self.providers.values():
            await p.aclose()

    def reload(self, force: bool = False) -> None:
        """Re-read what changed since the last look (everything when ``force``)."""
        revs = revisions(self.db)
        if force or revs.get("catalog") != self._revs.get("catalog"):
            self.catalog = build_catalog(self.settings, self.pm)
        if force or revs.get("keys") != self._revs.get("keys"):
            self.keys = active_keys_by_hash(self.db)
            if force:
                self.spent = spent_by_key(self.db)
        self._revs = revs

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.catalog_poll_s)
            try:
                await loop.run_in_executor(None, self.reload)
            except Exception:  # noqa: BLE001 - a transient DB error must not stop the poller
                log.exception("reloading the catalogue failed")

    def authenticate(self, authorization: bytes | None) -> KeyInfo:
        """The key for a ``Bearer`` header; raises 401 for missing, unknown, revoked or expired keys."""
        if not authorization or not authorization[:7].lower() == b"bearer ":
            raise AuthenticationError("You didn't provide an API key. Provide it in the Authorization header "
                                      "(Authorization: Bearer YOUR_KEY).", code="missing_api_key")
        token = authorization[7:].strip().decode("latin-1")
        digest = hash_key(token)
        key = self.keys.get(digest)
        if key is None:
            if hmac.compare_digest(digest, self.admin_hash):
                return self.admin
            raise AuthenticationError(f"Incorrect API key provided: {token[:10]}…. Check the key, or create one "
                                      "with `temper keys create`.")
        if key.expires_at is not None and key.expires_at <= datetime.now(timezone.utc):
            raise AuthenticationError(f"API key {key.prefix}… expired at {key.expires_at.isoformat()}.",
                                      code="expired_api_key")
        return key
