"""Load plugins explicitly: the built-ins, then the ``temper`` entry-point group. No import side effects."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from temper import hookspecs
from temper.config import Settings
from temper.jobs.kinds import JobKind, registry
from temper.knowledge.ingest import ParserRegistry

if TYPE_CHECKING:
    from temper.models.provider import Provider


def plugin_manager() -> pluggy.PluginManager:
    from temper.jobs import builtin as builtin_jobs
    from temper.knowledge import jobs as knowledge_jobs
    from temper.knowledge.ingest import builtin as parsers
    from temper.models.providers import builtin

    pm = pluggy.PluginManager("temper")
    pm.add_hookspecs(hookspecs)
    pm.register(builtin)
    pm.register(parsers)
    pm.register(builtin_jobs)
    pm.register(knowledge_jobs)
    pm.load_setuptools_entrypoints("temper")
    return pm


def providers(pm: pluggy.PluginManager, settings: Settings) -> dict[str, Provider]:
    """All providers by name; a duplicate name is a startup error, never a silent overwrite."""
    out: dict[str, Provider] = {}
    for batch in pm.hook.register_providers(settings=settings):
        for p in batch:
            if p.name in out:
                raise RuntimeError(f"two plugins register the provider {p.name!r}")
            out[p.name] = p
    return out


def parser_registry(pm: pluggy.PluginManager, settings: Settings) -> ParserRegistry:
    """The knowledge-base parsers of every plugin; a name or extension claimed twice is a startup error."""
    return ParserRegistry([p for batch in pm.hook.register_parsers(settings=settings) for p in batch])


def job_kinds(pm: pluggy.PluginManager, settings: Settings) -> dict[str, JobKind]:
    """The job kinds of every plugin, by name; a name registered twice is a startup error."""
    return registry(k for batch in pm.hook.register_job_kinds(settings=settings) for k in batch)
