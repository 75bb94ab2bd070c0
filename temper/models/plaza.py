"""Assemble the model plaza from plugins and the store (used by the server and the CLI alike)."""
from __future__ import annotations

import pluggy

from temper.config import Settings
from temper.models.catalog import Catalog, stored_entries
from temper.plugins import builtin_models


def build_catalog(settings: Settings, pm: pluggy.PluginManager) -> Catalog:
    return Catalog(builtin_models(pm, settings), stored_entries(settings.db_url))
