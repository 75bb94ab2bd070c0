"""Job kinds: what a plugin registers (``register_job_kinds``) so that any runner can run its jobs.

A kind names its handler as ``"module:qualname"`` rather than holding the function, because the handler runs
in another process (a worker process of the server, or a Ray worker on another machine), which imports it.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temper.jobs.context import JobContext

Handler = Callable[[dict[str, Any], "JobContext"], "str | None"]  # (spec, ctx) -> the final message
KIND_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")  # fits jobs.kind (40 characters)
HANDLER_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its handler and what one job of it needs (CPU and GPU slots, fractions allowed)."""

    name: str  # e.g. "kb.ingest"
    handler: str  # "package.module:function", a module-level ``def handler(spec, ctx) -> str | None``
    cpus: float = 1
    gpus: float = 0
    unit: str = "items"  # what progress counts
    description: str = ""

    def __post_init__(self) -> None:
        if not KIND_NAME.match(self.name):
            raise ValueError(f"job kind name {self.name!r}: lower-case letters, digits and . _ -, at most 40")
        if not HANDLER_REF.match(self.handler):
            raise ValueError(f"job kind {self.name!r}: handler must be 'module:function', not {self.handler!r}")
        if self.cpus <= 0 or self.gpus < 0:
            raise ValueError(f"job kind {self.name!r}: cpus must be above 0 (a job runs in a process) and gpus "
                             f"cannot be negative")


@lru_cache(maxsize=256)
def load_handler(ref: str) -> Handler:
    """The function a ``"module:qualname"`` reference names (imported once per process)."""
    module, _, qualname = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{ref} is not a function")
    return target


def registry(kinds: Iterable[JobKind]) -> dict[str, JobKind]:
    """Kinds by name; a name registered twice is an error, never a silent overwrite."""
    out: dict[str, JobKind] = {}
    for kind in kinds:
        if kind.name in out:
            raise RuntimeError(f"two plugins register the job kind {kind.name!r}")
        out[kind.name] = kind
    return out
