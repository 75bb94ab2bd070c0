"""Plugin hooks (pluggy). Built-ins implement them exactly like third-party plugins do."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # types only: the hook specs import no capability at load time
    from temper.config import Settings
    from temper.jobs.kinds import JobKind
    from temper.knowledge.types import Parser
    from temper.models.catalog import ModelEntry
    from temper.models.provider import Provider

hookspec = pluggy.HookspecMarker("temper")
hookimpl = pluggy.HookimplMarker("temper")


@hookspec
def register_providers(settings: Settings) -> list[Provider]:  # type: ignore[empty-body]
    """Return provider instances; each ``name`` must be unique across plugins."""


@hookspec
def register_models(settings: Settings) -> list[ModelEntry]:  # type: ignore[empty-body]
    """Return built-in catalogue entries; ids must be unique across plugins."""


@hookspec(firstresult=True)
def mask_trace_payload(text: str) -> str | None:  # type: ignore[empty-body]
    """Return ``text`` with personal data masked before a span input/output is stored or exported.

    The first plugin that returns a string wins; it replaces the built-in detectors wherever masking applies
    (TEMPER_TRACE_MASK_PII and each workspace's choice; traces read by non-admins). It should not raise: a text
    it fails on is withheld.
    """


@hookspec
def register_parsers(settings: Settings) -> list[Parser]:  # type: ignore[empty-body]
    """Return knowledge-base parsers (one per format); names must be unique across plugins, and a file
    extension claimed twice is a startup error."""


@hookspec
def register_job_kinds(settings: Settings) -> list[JobKind]:  # type: ignore[empty-body]
    """Return job kinds (``temper.jobs.kinds.JobKind``): a name, an importable handler ``"module:function"``
    and the CPUs/GPUs one job needs; names must be unique across plugins."""
