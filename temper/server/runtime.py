"""What a running server holds in memory: catalogue snapshot, key ring, limits, usage writer, router.

Changes made elsewhere (the CLI, another replica) are picked up by polling revision counters in the
database every ``catalog_poll_s`` seconds, off the request path.
"""
from __future__ import annotations

import asyncio
import logging

from temper.auth.authenticator import Authenticator
from temper.auth.keys import ensure_admin_key
from temper.auth.password_pool import PasswordPool
from temper.config import Settings
from temper.jobs.runner import Runner, make_runner
from temper.knowledge.index import analyzer
from temper.knowledge.indexes import settings_factory, shared
from temper.knowledge.limits import Limits
from temper.knowledge.service import KnowledgeService
from temper.models.catalog import Catalog
from temper.models.client import ModelClient
from temper.models.health import HealthMonitor
from temper.models.limits import limit_store
from temper.models.metering import Meter, UsageWriter
from temper.models.plaza import build_catalog
from temper.models.router import Router
from temper.ops import exporter, tracing
from temper.ops.loop_lag import LoopLag
from temper.ops.traces import delete_before, now_us
from temper.plugins import job_kinds, parser_registry, plugin_manager, providers
from temper.store.db import migrate, revisions

log = logging.getLogger("temper.server")
RETENTION_FIRST_S, RETENTION_EVERY_S = 60.0, 3600.0


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = settings.db_url
        self.pm = plugin_manager()
        self.providers = providers(self.pm, settings)
        self.catalog: Catalog = Catalog([], [])
        self.admin_key, self.admin_key_created = ensure_admin_key(settings.home_dir, settings.admin_key)
        self.auth = Authenticator(self.db, self.admin_key)
        self.passwords = PasswordPool(settings.signin_threads, settings.signin_queue)
        self.meter = Meter(UsageWriter(self.db, settings.usage_flush_s), limit_store(settings.redis_url))
        self.models = ModelClient(Router(self.providers, lambda: self.catalog), lambda: self.catalog, self.meter)
        self.health = HealthMonitor(self.db, lambda: self.catalog, settings.model_health_s)
        self.spans = exporter.from_settings(settings, self.pm) if settings.tracing else None
        self.knowledge: KnowledgeService | None = None  # made at start, on the running loop
        self.job_runner: Runner | None = None  # every job kind, in worker processes or on Ray
        self.loop_lag = LoopLag()
        self._revs: dict[str, int] = {}
        self._poller: asyncio.Task | None = None
        self._janitor: asyncio.Task | None = None
        self._health: asyncio.Task | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, migrate, self.db)
        await loop.run_in_executor(None, self.reload, True)
        await self.meter.load_spent(self.db)
        self.meter.usage.start()
        self.loop_lag.start()
        if self.spans is not None:
            self.spans.start()
            tracing.install(self.spans)
        self.job_runner = make_runner(self.settings, job_kinds(self.pm, self.settings), self.db)
        self.knowledge = KnowledgeService(self.db, self.settings.home_dir, self.models,
                                          parser_registry(self.pm, self.settings),
                                          index_factory=settings_factory(self.settings),
                                          url_allow=self.settings.kb_url_allow_list, wake=self.job_runner.wake,
                                          owns_indexes=not shared(self.settings), limits=Limits.of(self.settings),
                                          max_file_bytes=self.settings.max_file_mb * 1024 * 1024)
        self.knowledge.start()
        loop.run_in_executor(None, analyzer.warm)  # in the background: the server is up meanwhile
        if self.settings.run_jobs:
            await loop.run_in_executor(None, self.job_runner.start)
        self._poller = loop.create_task(self._poll())
        self._janitor = loop.create_task(self._retention())
        if self.settings.model_health_s:
            self._health = loop.create_task(self.health.run())

    async def stop(self) -> None:
        for task in (self._poller, self._janitor, self._health):
            if task:
                task.cancel()
        self.health.close()
        self.passwords.close()
        self.loop_lag.stop()
        loop = asyncio.get_running_loop()
        if self.job_runner is not None:
            await loop.run_in_executor(None, self.job_runner.stop)
        if self.knowledge is not None:
            self.knowledge.close()
        await self.meter.usage.close()
        await self.meter.store.aclose()
        if self.spans is not None:
            tracing.install(None)
            await loop.run_in_executor(None, self.spans.close)
        for p in self.providers.values():
            await p.aclose()

    def reload(self, force: bool = False) -> None:
        """Re-read what changed since the last look (everything when ``force``)."""
        revs = revisions(self.db)
        if force or revs.get("catalog") != self._revs.get("catalog"):
            self.catalog = build_catalog(self.settings, self.pm)
        if force or revs.get("keys") != self._revs.get("keys"):
            self.auth.reload_keys()
        if force or revs.get("sessions") != self._revs.get("sessions"):
            self.auth.forget_sessions()
        self._revs = revs

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.catalog_poll_s)
            try:
                keys = self._revs.get("keys")
                await loop.run_in_executor(None, self.reload)
                if self._revs.get("keys") != keys:  # a key may have a budget now: seed its running total
                    await self.meter.load_spent(self.db)
                await self.meter.catch_up(self.db)
            except Exception:  # noqa: BLE001 - a transient DB error must not stop the poller
                log.exception("reloading the catalogue failed")

    async def _retention(self) -> None:
        """Delete traces older than ``trace_retention_days``: shortly after start, then hourly."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(RETENTION_FIRST_S)
        while True:
            cutoff = now_us() - int(self.settings.trace_retention_days * 86_400_000_000)
            try:
                n = await loop.run_in_executor(None, delete_before, self.db, cutoff)
                if n:
                    log.info("retention: deleted %d traces older than %s days", n, self.settings.trace_retention_days)
            except Exception:  # noqa: BLE001 - retried next hour
                log.exception("deleting old traces failed")
            await asyncio.sleep(RETENTION_EVERY_S)
