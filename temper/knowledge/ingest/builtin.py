"""The built-in parsers, registered through the plugin hook like any third-party parser."""
from __future__ import annotations

from temper.config import Settings
from temper.hookspecs import hookimpl
from temper.knowledge.ingest import builtin_parsers
from temper.knowledge.types import Parser


@hookimpl
def register_parsers(settings: Settings) -> list[Parser]:
    return builtin_parsers()
