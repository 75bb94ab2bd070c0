"""Management API: prompt templates with immutable versions, movable labels, rendering, diffs, a starter library.

Any caller may read and render; creating, versioning, labelling and deleting need the admin key.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from temper.auth.keys import KeyInfo
from temper.ops.prompts.library import create_from_template, list_templates
from temper.ops.prompts.store import (add_version, create_prompt, delete_prompt, diff, get_prompt, get_version,
                                      list_prompts, remove_label, render, set_label)
from temper.server.api.deps import Offset, admin, caller, page, runtime
from temper.server.runtime import Runtime

MAX_VERSION = 2 ** 31 - 1  # a version number is a 32-bit integer in the database

router = APIRouter(prefix="/api/v1/prompts", tags=["prompts"])
Lang = Literal["zh", "en"]


class Body(BaseModel):
    """A request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class Message(Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class NewVersion(Body):
    """A new version: the template and model config of the newest version are kept when not given."""

    type: Literal["text", "chat"] | None = Field(None, description="Follows from the template when not given.")
    template: str | list[Message] | None = Field(
        None, description="A string (text) or {role, content} messages (chat) with {{variable}} placeholders.")
    config: dict[str, Any] | None = Field(None, alias="model_config",
                                          description="E.g. {\"model\", \"temperature\", \"max_tokens\"}.")
    message: str = Field("", description="What changed (like a commit message).")
    labels: list[str] = Field(default_factory=list, description="Labels to point at this version.")

    def template_value(self) -> str | list[dict[str, str]] | None:
        if isinstance(self.template, list):
            return [m.model_dump() for m in self.template]
        return self.template


class PromptIn(NewVersion):
    """A new prompt with its version 1."""

    name: str = Field(description="Letters of any script, digits, '_', '.', '-'; 1-100.")
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    template: str | list[Message]  # type: ignore[assignment]


class FromTemplate(Body):
    template_id: str
    lang: Lang
    name: str | None = Field(None, description="Defaults to TEMPLATE_ID-LANG.")


class RenderIn(Body):
    label: str | None = None
    version: int | None = Field(None, ge=1, le=MAX_VERSION)
    variables: dict[str, Any] = Field(default_factory=dict)


class LabelIn(Body):
    version: int = Field(ge=1, le=MAX_VERSION)


class VersionOut(BaseModel):
    id: str
    prompt: str
    version: int
    type: str
    template: str | list[dict[str, str]]
    variables: list[str]
    config: dict[str, Any] = Field(alias="model_config")
    message: str
    created_by: str | None
    created_at: str | None
    labels: list[str] = Field(description="The labels that point at this version ('latest' is implicit).")


class PromptOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    description: str
    tags: list[str]
    latest_version: int
    labels: dict[str, int] = Field(description="label -> version")
    created_at: str | None
    updated_at: str | None


class PromptDetail(PromptOut):
    versions: list[VersionOut] = Field(description="Newest first.")


class PromptList(BaseModel):
    object: Literal["list"] = "list"
    data: list[PromptOut]
    total: int
    limit: int
    offset: int
    has_more: bool


class TemplateOut(BaseModel):
    id: str
    lang: str
    name: str = Field(description="The prompt name used by from-template when none is given.")
    title: str
    description: str
    type: str
    template: list[dict[str, str]]
    variables: list[str]
    config: dict[str, Any] = Field(alias="model_config")
    tags: list[str]


class TemplateList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TemplateOut]


class Rendered(BaseModel):
    prompt: str
    version: int
    type: str
    messages: list[dict[str, str]] | None = Field(None, description="Chat prompts.")
    text: str | None = Field(None, description="Text prompts.")
    config: dict[str, Any] = Field(alias="model_config")


class LabelOut(BaseModel):
    prompt: str
    label: str
    version: int


class DiffOut(BaseModel):
    from_: int = Field(alias="from")
    to: int
    diff: str = Field(description="Unified diff of the two versions' readable form; empty when equal.")


class Deleted(BaseModel):
    id: str
    name: str
    deleted: bool = True


def _author(key: KeyInfo) -> str:
    return key.name or key.id


@router.get("", response_model=PromptList)
def prompts(rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
            q: str | None = Query(None, description="Every word must appear in the name, description or tags."),
            limit: int = Query(100, ge=1, le=1000), offset: Offset = 0) -> dict:
    return page([p.as_dict() for p in list_prompts(rt.db, q, key.workspace_id)], limit, offset)


@router.post("", response_model=PromptDetail, status_code=201)
def create(body: PromptIn, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict:
    return create_prompt(rt.db, body.name, body.template_value(), type=body.type, description=body.description,
                         tags=body.tags, model_config=body.config, message=body.message, labels=body.labels,
                         created_by=_author(key), workspace_id=key.workspace_id).as_dict()


@router.get("/templates", response_model=TemplateList)
def templates(lang: Lang | None = None, _: KeyInfo = Depends(caller)) -> dict:
    """The starter library (customer service, insurance Q&A, contract review, summarisation, extraction)."""
    return {"object": "list", "data": list_templates(lang)}


@router.post("/from-template", response_model=PromptDetail, status_code=201)
def from_template(body: FromTemplate, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict:
    return create_from_template(rt.db, body.template_id, body.lang, body.name, created_by=_author(key),
                                workspace_id=key.workspace_id).as_dict()


@router.get("/{name}", response_model=PromptDetail)
def show(name: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller)) -> dict:
    return get_prompt(rt.db, name, key.workspace_id).as_dict()


@router.delete("/{name}", response_model=Deleted)
def delete(name: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict:
    info = delete_prompt(rt.db, name, key.workspace_id)
    return {"id": info.id, "name": info.name, "deleted": True}


@router.post("/{name}/versions", response_model=VersionOut, status_code=201)
def new_version(name: str, body: NewVersion, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict:
    return add_version(rt.db, name, body.template_value(), type=body.type, model_config=body.config,
                       message=body.message, labels=body.labels, created_by=_author(key),
                       workspace_id=key.workspace_id).as_dict()


@router.get("/{name}/versions/{version}", response_model=VersionOut)
def show_version(name: str, version: Annotated[int, Path(ge=1, le=MAX_VERSION)], rt: Runtime = Depends(runtime),
                 key: KeyInfo = Depends(caller)) -> dict:
    return get_version(rt.db, name, version, workspace_id=key.workspace_id).as_dict()


@router.get("/{name}/resolve", response_model=VersionOut)
def resolve(name: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
            label: str | None = Query(None, description="A label; 'latest' is the newest version."),
            version: int | None = Query(None, ge=1, le=MAX_VERSION)) -> dict:
    """The version a label (or number) points at; the newest when neither is given."""
    return get_version(rt.db, name, version, label, key.workspace_id).as_dict()


@router.post("/{name}/render", response_model=Rendered, response_model_exclude_none=True)
def render_prompt(name: str, body: RenderIn, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller)) -> dict:
    """Fill a version's variables (all are required; extra ones are ignored)."""
    v = get_version(rt.db, name, body.version, body.label, key.workspace_id)
    return {"prompt": v.prompt, "version": v.version, **render(v, body.variables)}


@router.put("/{name}/labels/{label}", response_model=LabelOut)
def put_label(name: str, label: str, body: LabelIn, rt: Runtime = Depends(runtime),
              key: KeyInfo = Depends(admin)) -> dict:
    return {"prompt": name, "label": label,
            "version": set_label(rt.db, name, label, body.version, key.workspace_id)}


@router.delete("/{name}/labels/{label}", response_model=LabelOut)
def delete_label(name: str, label: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(admin)) -> dict:
    return {"prompt": name, "label": label, "version": remove_label(rt.db, name, label, key.workspace_id)}


@router.get("/{name}/diff", response_model=DiffOut)
def diff_versions(name: str, rt: Runtime = Depends(runtime), key: KeyInfo = Depends(caller),
          from_: str = Query(alias="from", description="A version number or a label."),
          to: str = Query(description="A version number or a label.")) -> dict:
    return diff(rt.db, name, from_, to, key.workspace_id)
