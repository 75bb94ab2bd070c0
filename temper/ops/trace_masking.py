"""Whether a workspace's traces are stored with personal data masked: the server's default
(TEMPER_TRACE_MASK_PII, on unless set otherwise), or the workspace's own choice either way.

Whatever is stored, only admins read it as stored: everyone else reads traces masked (server/api/traces.py).
"""
from __future__ import annotations

from typing import Any

import pluggy
from sqlalchemy import Engine, select, update

from temper.errors import NotFound
from temper.ops.pii import Masker, fail_closed, mask_pii
from temper.store.db import get_engine, session
from temper.store.tables import Workspace


def masker_for(pm: pluggy.PluginManager | None) -> Masker:
    """A plugin's ``mask_trace_payload`` if one is installed, else the built-in detectors."""
    if pm is not None and pm.hook.mask_trace_payload.get_hookimpls():
        hook = pm.hook.mask_trace_payload
        return fail_closed(lambda text: hook(text=text) or text)
    return mask_pii


def workspace_choices(engine: Engine) -> dict[str, bool]:
    """The workspaces that chose for themselves: id → mask."""
    with engine.connect() as conn:
        return {ws: mask for ws, mask in conn.execute(
            select(Workspace.id, Workspace.trace_mask_pii).where(Workspace.trace_mask_pii.is_not(None)))}


def _state(workspace_id: str, choice: bool | None, default: bool) -> dict[str, Any]:
    return {"object": "trace_settings", "workspace_id": workspace_id,
            "mask_pii": default if choice is None else choice, "mask_pii_workspace": choice,
            "mask_pii_server_default": default}


def get_masking(db: str, workspace_id: str, default: bool) -> dict[str, Any]:
    """The workspace's masking: ``mask_pii`` in effect, its own choice (None: the server's default) and that
    default."""
    with session(db) as s:
        ws = s.get(Workspace, workspace_id)
        if ws is None:
            raise NotFound(f"No workspace with id {workspace_id!r}.", param="workspace_id", code="workspace_not_found",
                           params={"workspace_id": workspace_id})
        return _state(workspace_id, ws.trace_mask_pii, default)


def set_masking(db: str, workspace_id: str, mask: bool | None, default: bool) -> dict[str, Any]:
    """Store the workspace's traces masked (True), verbatim (False), or as the server's default says (None).
    Spans stored from then on follow it; what is stored already stays as it is."""
    with get_engine(db).begin() as conn:
        if conn.execute(update(Workspace).where(Workspace.id == workspace_id)
                        .values(trace_mask_pii=mask)).rowcount == 0:
            raise NotFound(f"No workspace with id {workspace_id!r}.", param="workspace_id", code="workspace_not_found",
                           params={"workspace_id": workspace_id})
    return _state(workspace_id, mask, default)
