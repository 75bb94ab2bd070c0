"""The model catalogue: built-in entries from plugins plus entries users add (persisted)."""
from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from temper.errors import Conflict, InvalidRequest, ModelNotFound
from temper.models.provider import Deployment
from temper.store.db import bump_revision, session
from temper.store.tables import DEFAULT_WORKSPACE, ModelRow, as_utc

MODALITIES = ("chat", "completion", "embedding", "rerank")
STATUSES = ("active", "disabled")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
INLINE = ("provider", "base_url", "upstream_model", "api_key_env", "timeout_s")  # one deployment, given inline


@dataclass
class ModelEntry:
    id: str
    modality: str
    deployments: list[Deployment]
    aliases: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    context_length: int | None = None
    parameters: str | None = None
    input_price: float | None = None   # per 1M input tokens; None: no price set (costs count as 0)
    output_price: float | None = None  # per 1M output tokens
    tags: list[str] = field(default_factory=list)
    status: str = "active"
    description: str = ""
    builtin: bool = False
    workspace_id: str = DEFAULT_WORKSPACE
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def provider(self) -> str:
        return self.deployments[0].provider if self.deployments else ""

    @property
    def remote(self) -> bool:
        """Whether any deployment is reached over the network (local built-ins always answer)."""
        return any(d.base_url for d in self.deployments)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * (self.input_price or 0.0) + completion_tokens * (self.output_price or 0.0)) / 1_000_000

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["provider"] = self.provider
        for dep in d["deployments"]:
            dep.pop("options", None)
        return d

    def openai_object(self) -> dict[str, Any]:
        return {"id": self.id, "object": "model", "created": self.created, "owned_by": "temper" if self.builtin
                else self.provider, "modality": self.modality, "context_length": self.context_length,
                "aliases": self.aliases, "status": self.status}


def validate_entry(e: ModelEntry) -> None:
    if not _ID_RE.match(e.id):
        raise InvalidRequest(f"invalid model id {e.id!r}: use letters, digits and . _ : / @ + -", param="id",
                             code="invalid_model_id", params={"id": e.id})
    if e.modality not in MODALITIES:
        raise InvalidRequest(f"modality must be one of {', '.join(MODALITIES)}", param="modality",
                             code="not_one_of", params={"allowed": ", ".join(MODALITIES)})
    if e.status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}", param="status",
                             code="not_one_of", params={"allowed": ", ".join(STATUSES)})
    if not e.deployments:
        raise InvalidRequest("a model needs at least one deployment", param="deployments", code="no_deployments")
    for a in e.aliases:
        if not _ID_RE.match(a):
            raise InvalidRequest(f"invalid alias {a!r}", param="aliases", code="invalid_alias", params={"alias": a})
    for d in e.deployments:
        if d.provider == "openai_compat" and not (d.base_url or "").startswith(("http://", "https://")):
            raise InvalidRequest("openai_compat deployments need a base_url starting with http:// or https://",
                                 param="base_url", code="invalid_base_url")
        if d.weight <= 0 or d.timeout_s <= 0:
            raise InvalidRequest("weight and timeout_s must be positive", param="deployments",
                                 code="deployment_not_positive")
    for name, price in (("input_price", e.input_price), ("output_price", e.output_price)):
        if price is not None and price < 0:
            raise InvalidRequest("prices must not be negative", param=name, code="negative_price")
    if e.context_length is not None and e.context_length <= 0:
        raise InvalidRequest("context_length must be positive", param="context_length", code="not_positive")


def entry_from_spec(spec: dict[str, Any]) -> ModelEntry:
    """Build an entry from API/CLI input: either ``deployments`` or one deployment given inline
    (``provider``, ``base_url``, ``upstream_model``, ``api_key_env``, ``timeout_s``)."""
    spec = dict(spec)
    inline = {k: spec.pop(k) for k in INLINE if k in spec}
    deps = spec.pop("deployments", None) or []
    if inline.get("provider") or inline.get("base_url"):
        inline.setdefault("provider", "openai_compat")
        deps = [{k: v for k, v in inline.items() if v is not None}, *deps]
    try:
        spec["deployments"] = [Deployment(**d) for d in deps]
        entry = ModelEntry(**{k: v for k, v in spec.items() if v is not None})
    except TypeError as e:
        raise InvalidRequest(f"invalid model specification: {e}",
                             code="invalid_model_spec", params={"reason": str(e)}) from None
    validate_entry(entry)
    return entry


_CLEARED: dict[str, Any] = {"aliases": [], "fallbacks": [], "tags": [], "description": "", "input_price": None,
                            "output_price": None, "context_length": None, "parameters": None}


def edited_entry(current: ModelEntry, changes: dict[str, Any]) -> ModelEntry:
    """``current`` with ``changes`` (fields given in a PATCH) applied: a null clears a field (a price, the
    context length, an alias list, the key variable); inline deployment fields change the first deployment
    and keep its other settings; ``deployments`` replaces them all."""
    spec = {k: v for k, v in asdict(current).items() if k not in ("builtin", "deployments")}
    deployments = [dict(d.__dict__) for d in current.deployments]
    inline = {k: changes.pop(k) for k in INLINE if k in changes}
    if changes.get("deployments") is not None:
        deployments = changes.pop("deployments")
    changes.pop("deployments", None)
    if inline:
        first = deployments[0] if deployments else {"provider": "openai_compat"}
        clearable = ("upstream_model", "api_key_env")  # null: the model's id; no key
        deployments = [first | {k: v for k, v in inline.items() if v is not None or k in clearable},
                       *deployments[1:]]
    for k, v in changes.items():
        if v is not None:
            spec[k] = v
        elif k in _CLEARED:
            spec[k] = _CLEARED[k]
    spec["deployments"] = [Deployment(**d) for d in deployments]
    try:
        entry = ModelEntry(**spec)
    except TypeError as e:
        raise InvalidRequest(f"invalid model specification: {e}",
                             code="invalid_model_spec", params={"reason": str(e)}) from None
    validate_entry(entry)
    return entry


def _from_row(r: ModelRow) -> ModelEntry:
    return ModelEntry(id=r.id, modality=r.modality, deployments=[Deployment(**d) for d in r.deployments],
                      aliases=list(r.aliases), fallbacks=list(r.fallbacks), context_length=r.context_length,
                      parameters=r.parameters, input_price=r.input_price, output_price=r.output_price,
                      tags=list(r.tags), status=r.status, description=r.description, workspace_id=r.workspace_id,
                      created=int(as_utc(r.created_at).timestamp()))  # SQLite's are naive, and UTC


def _deployment_dict(d: Deployment) -> dict[str, Any]:
    return {"provider": d.provider, "upstream_model": d.upstream_model, "base_url": d.base_url,
            "api_key_env": d.api_key_env, "weight": d.weight, "timeout_s": d.timeout_s, "options": d.options}


def stored_entries(db: str) -> list[ModelEntry]:
    with session(db) as s:
        return [_from_row(r) for r in s.scalars(select(ModelRow).order_by(ModelRow.id))]


class Catalog:
    """An immutable snapshot: built-ins overlaid by stored entries, indexed by id and alias."""

    def __init__(self, builtins: list[ModelEntry], stored: list[ModelEntry]) -> None:
        by_id: dict[str, ModelEntry] = {}
        for e in builtins:
            if e.id in by_id:
                raise ValueError(f"two plugins register the model {e.id!r}")
            by_id[e.id] = e
        for e in stored:
            by_id[e.id] = e  # a stored entry with a built-in's id overrides it (e.g. new price)
        self.entries = by_id
        self.names: dict[str, ModelEntry] = dict(by_id)
        for e in by_id.values():
            for a in e.aliases:
                self.names.setdefault(a, e)

    def resolve(self, name: str) -> ModelEntry:
        e = self.names.get(name)
        if e is None or e.status != "active":
            raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.",
                                param="model", params={"model": name})
        return e

    def get(self, model_id: str) -> ModelEntry:
        e = self.entries.get(model_id) or self.names.get(model_id)
        if e is None:
            raise ModelNotFound(f"model {model_id!r} not found", param="model", params={"model": model_id})
        return e

    def list(self) -> list[ModelEntry]:
        return sorted(self.entries.values(), key=lambda e: e.id)


def add_model(db: str, catalog: Catalog, entry: ModelEntry, *, providers: Iterable[str],
              replace: bool = False) -> ModelEntry:
    """Persist a new entry (or replace a stored one); names must not clash with other entries or aliases."""
    validate_entry(entry)
    known = set(providers)
    for d in entry.deployments:
        if d.provider not in known:
            raise InvalidRequest(f"unknown provider {d.provider!r}; installed: {', '.join(sorted(known))}",
                                 param="provider", code="unknown_provider",
                                 params={"provider": d.provider, "installed": ", ".join(sorted(known))})
    existing = catalog.names.get(entry.id)
    if existing is not None and not (replace or existing.builtin and existing.id == entry.id):
        raise Conflict(f"model {entry.id!r} already exists", param="id",
                       code="model_exists", params={"model": entry.id})
    for a in entry.aliases:
        owner = catalog.names.get(a)
        if owner is not None and owner.id != entry.id:
            raise Conflict(f"alias {a!r} is already used by {owner.id!r}", param="aliases",
                           code="alias_taken", params={"alias": a, "model": owner.id})
    for f in entry.fallbacks:
        if f not in catalog.names or f == entry.id:
            raise InvalidRequest(f"fallback {f!r} is not another model in the catalogue", param="fallbacks",
                                 code="invalid_fallback", params={"fallback": f})
    with session(db) as s:
        row = s.get(ModelRow, entry.id) or ModelRow(id=entry.id)
        row.workspace_id = entry.workspace_id
        row.modality, row.aliases, row.fallbacks = entry.modality, entry.aliases, entry.fallbacks
        row.deployments = [_deployment_dict(d) for d in entry.deployments]
        row.context_length, row.parameters = entry.context_length, entry.parameters
        row.input_price, row.output_price = entry.input_price, entry.output_price
        row.tags, row.status, row.description = entry.tags, entry.status, entry.description
        s.add(row)
        bump_revision(s, "catalog")
    entry.builtin = False
    return entry


def remove_model(db: str, catalog: Catalog, model_id: str) -> None:
    e = catalog.entries.get(model_id)
    if e is None:
        raise ModelNotFound(f"model {model_id!r} not found", param="model", params={"model": model_id})
    with session(db) as s:
        row = s.get(ModelRow, model_id)
        if row is None:
            raise InvalidRequest(f"{model_id!r} is a built-in model; disable it with status=disabled instead",
                                 param="model", code="builtin_model", params={"model": model_id})
        s.delete(row)
        bump_revision(s, "catalog")
