"""The starter library: industry prompt templates in Chinese and English, ready to copy into a workspace."""
from __future__ import annotations

from typing import Any

from temper.errors import InvalidRequest, NotFound
from temper.ops.prompts.starter import TEMPLATES
from temper.ops.prompts.store import PromptInfo, create_prompt, variables_of
from temper.store.tables import DEFAULT_WORKSPACE

LANGS = ("zh", "en")


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise InvalidRequest(f"lang must be one of {', '.join(LANGS)}, not {lang!r}.", param="lang",
                             code="not_one_of", params={"allowed": ", ".join(LANGS)})


def _entry(t: dict[str, Any], lang: str) -> dict[str, Any]:
    own = t[lang]
    return {"id": t["id"], "lang": lang, "name": f"{t['id']}-{lang}", "title": own["title"],
            "description": own["description"], "type": "chat", "template": own["messages"],
            "variables": variables_of(own["messages"]), "model_config": dict(t["model_config"]),
            "tags": list(t["tags"])}


def list_templates(lang: str | None = None) -> list[dict[str, Any]]:
    """Every template in ``lang`` (both languages when None): id, lang, suggested name, title, description,
    type, template, variables, model config and tags."""
    if lang is not None:
        _check_lang(lang)
    return [_entry(t, code) for t in TEMPLATES for code in LANGS if lang in (None, code)]


def get_template(template_id: str, lang: str) -> dict[str, Any]:
    _check_lang(lang)
    for t in TEMPLATES:
        if t["id"] == template_id:
            return _entry(t, lang)
    raise NotFound(f"No starter template {template_id!r}; there are {', '.join(t['id'] for t in TEMPLATES)}.",
                   param="template_id", code="template_not_found", params={"template_id": template_id})


def create_from_template(db: str, template_id: str, lang: str, name: str | None = None,
                         created_by: str | None = None, workspace_id: str = DEFAULT_WORKSPACE) -> PromptInfo:
    """Copy a starter template into the workspace as a new prompt (version 1); named ``ID-LANG`` by default."""
    t = get_template(template_id, lang)
    return create_prompt(db, name or t["name"], t["template"], type=t["type"], description=t["description"],
                         tags=[*t["tags"], "starter"], model_config=t["model_config"],
                         message=f"From the starter library: {template_id} ({lang})", created_by=created_by,
                         workspace_id=workspace_id)
