"""Assemble the model plaza from plugins and the store (used by the server and the CLI alike)."""
from __future__ import annotations

import pluggy

from temper.config import Settings
from temper.models.catalog import Catalog, stored_entries


def build_catalog(settings: Settings, pm: pluggy.PluginManager) -> Catalog:
    builtins = [e for batch in pm.hook.register_models(settings=settings) for e in batch]
    return Catalog(builtins, stored_entries(settings.db_url))
