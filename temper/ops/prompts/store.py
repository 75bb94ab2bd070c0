"""Prompts: immutable numbered versions, movable labels, ``{{variable}}`` placeholders and a model config.

A version is never changed once written. A label (``production``, ``staging``) points at one version and
moves; ``latest`` is implicit: the highest version. A template is a string (type ``text``) or a list of
``{"role", "content"}`` messages (type ``chat``); its variables are found on save.
"""
from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from temper.errors import Conflict, InvalidRequest, NotFound
from temper.ids import new_id
from temper.store.db import bump_revision, session
from temper.store.tables import DEFAULT_WORKSPACE, Prompt, PromptLabel, PromptVersion, utcnow

LATEST = "latest"
TYPES = ("text", "chat")
ROLES = ("system", "developer", "user", "assistant")
RESERVED_NAMES = ("templates", "from-template")  # words of the management API's routes
_NAME_RE = re.compile(r"\w[\w.-]{0,99}")  # \w is Unicode: Chinese names are fine
_LABEL_RE = re.compile(r"[a-z0-9_-]{1,50}")
_VAR_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_RETRIES = 5

Template = str | list[dict[str, str]]


@dataclass
class Version:
    id: str
    prompt: str
    version: int
    type: str
    template: Template
    variables: list[str]
    model_config: dict[str, Any]
    message: str
    created_by: str | None
    created_at: datetime | None
    labels: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**self.__dict__, "created_at": _iso(self.created_at)}


@dataclass
class PromptInfo:
    id: str
    workspace_id: str
    name: str
    description: str
    tags: list[str]
    latest_version: int
    labels: dict[str, int]
    created_at: datetime | None
    updated_at: datetime | None  # when the latest version was written
    versions: list[Version] | None = None  # newest first; filled by get_prompt

    def as_dict(self) -> dict:
        d = {**self.__dict__, "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at)}
        if self.versions is None:
            del d["versions"]
        else:
            d["versions"] = [v.as_dict() for v in self.versions]
        return d


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).isoformat()


# --- validation --------------------------------------------------------------------------------------


def check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name) or name in RESERVED_NAMES:
        raise InvalidRequest(f"Invalid prompt name {name!r}: use 1-100 letters (any script), digits, '_', '.' "
                             f"or '-', starting with a letter or digit; {' and '.join(RESERVED_NAMES)} "
                             "are reserved.", param="name", code="invalid_name", params={"name": name})


def check_label(label: str) -> None:
    if label == LATEST:
        raise InvalidRequest("'latest' is implicit (always the newest version) and cannot be set or removed.",
                             param="label", code="reserved_label")
    if not _LABEL_RE.fullmatch(label):
        raise InvalidRequest(f"Invalid label {label!r}: use 1-50 of a-z, 0-9, '_' and '-'.", param="label",
                             code="invalid_label", params={"label": label})


def variables_of(template: Template) -> list[str]:
    """The ``{{name}}`` placeholders of a template, in order of first use."""
    texts = [template] if isinstance(template, str) else [m["content"] for m in template]
    return list(dict.fromkeys(v for t in texts for v in _VAR_RE.findall(t)))


def _template(type_: str | None, template: Any) -> tuple[str, Template]:
    """A checked ``(type, template)``; the type follows from the template when not given."""
    type_ = type_ or ("text" if isinstance(template, str) else "chat")
    if type_ not in TYPES:
        raise InvalidRequest(f"type must be one of {', '.join(TYPES)}, not {type_!r}.", param="type",
                             code="not_one_of", params={"allowed": ", ".join(TYPES)})
    if type_ == "text":
        if not isinstance(template, str) or not template.strip():
            raise InvalidRequest("A text prompt's template must be a non-empty string.", param="template",
                                 code="empty_template")
        return type_, template
    if not isinstance(template, list) or not template:
        raise InvalidRequest("A chat prompt's template must be a non-empty list of {role, content} messages.",
                             param="template", code="invalid_chat_template")
    for i, m in enumerate(template):
        if not isinstance(m, dict) or set(m) != {"role", "content"} or not isinstance(m["content"], str):
            raise InvalidRequest(f"Message {i} must be an object with exactly 'role' and 'content' (a string).",
                                 param=f"template.{i}", code="invalid_message", params={"index": i})
        if m["role"] not in ROLES:
            raise InvalidRequest(f"Message {i} has role {m['role']!r}; use one of {', '.join(ROLES)}.",
                                 param=f"template.{i}.role", code="invalid_message_role",
                                 params={"index": i, "role": m["role"], "allowed": ", ".join(ROLES)})
    if not any(m["content"].strip() for m in template):
        raise InvalidRequest("A chat prompt needs at least one message with content.", param="template",
                             code="empty_chat_template")
    return type_, [{"role": m["role"], "content": m["content"]} for m in template]


def _number(cfg: dict, key: str, low: float, high: float | None, integer: bool = False) -> None:
    value = cfg.get(key)
    if value is None:
        return
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequest(f"model_config.{key} must be {'an integer' if integer else 'a number'} {bound}.",
                             param=f"model_config.{key}",
                             code="integer_out_of_range" if integer else "number_out_of_range",
                             params={"min": low, "max": high})


def _model_config(cfg: Any) -> dict[str, Any]:
    """Checks the well-known keys (model, temperature, top_p, max_tokens); passes others through."""
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise InvalidRequest("model_config must be an object.", param="model_config", code="invalid_type")
    if "model" in cfg and (not isinstance(cfg["model"], str) or not cfg["model"]):
        raise InvalidRequest("model_config.model must be a model id or alias.", param="model_config.model",
                             code="invalid_type")
    _number(cfg, "temperature", 0, 2)
    _number(cfg, "top_p", 0, 1)
    _number(cfg, "max_tokens", 1, None, integer=True)
    return dict(cfg)


def _tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise InvalidRequest("tags must be a list of non-empty strings.", param="tags", code="invalid_tags")
    return list(dict.fromkeys(tags))


# --- rows --------------------------------------------------------------------------------------------


def _prompt(s: Session, name: str, workspace_id: str) -> Prompt:
    row = s.scalar(select(Prompt).where(Prompt.workspace_id == workspace_id, Prompt.name == name))
    if row is None:
        raise NotFound(f"Prompt {name!r} not found.", param="name", code="prompt_not_found", params={"name": name})
    return row


def _labels(s: Session, prompt_id: str) -> dict[str, int]:
    q = select(PromptLabel.label, PromptLabel.version).where(PromptLabel.prompt_id == prompt_id)
    return {label: version for label, version in s.execute(q.order_by(PromptLabel.label))}


def _version_row(s: Session, prompt: Prompt, version: int | None = None, label: str | None = None) -> PromptVersion:
    """A version by number, by label (``latest`` included), or the newest when neither is given."""
    if version is not None and label is not None:
        raise InvalidRequest("Give a version or a label, not both.", param="label", code="version_and_label")
    if label is not None and label != LATEST:
        version = s.scalar(select(PromptLabel.version).where(PromptLabel.prompt_id == prompt.id,
                                                             PromptLabel.label == label))
        if version is None:
            raise NotFound(f"Prompt {prompt.name!r} has no label {label!r}.", param="label", code="label_not_found",
                           params={"name": prompt.name, "label": label})
    q = select(PromptVersion).where(PromptVersion.prompt_id == prompt.id)
    q = q.where(PromptVersion.version == version) if version is not None else q.order_by(
        PromptVersion.version.desc()).limit(1)
    row = s.scalar(q)
    if row is None:
        raise NotFound(f"Prompt {prompt.name!r} has no version {version}.", param="version",
                       code="version_not_found", params={"name": prompt.name, "version": version})
    return row


def _version(row: PromptVersion, name: str, labels: dict[str, int]) -> Version:
    return Version(id=row.id, prompt=name, version=row.version, type=row.type, template=row.template,
                   variables=list(row.variables), model_config=dict(row.model_config_), message=row.message,
                   created_by=row.created_by, created_at=row.created_at,
                   labels=[label for label, v in labels.items() if v == row.version])


def _new_version(prompt_id: str, number: int, type_: str, template: Template, config: dict[str, Any],
                 message: str, created_by: str | None) -> PromptVersion:
    return PromptVersion(id=new_id("promptv"), prompt_id=prompt_id, version=number, type=type_, template=template,
                         variables=variables_of(template), model_config_=config, message=message,
                         created_by=created_by, created_at=utcnow())


def _put_label(s: Session, prompt_id: str, label: str, version: int) -> None:
    row = s.get(PromptLabel, (prompt_id, label))
    if row is None:
        s.add(PromptLabel(prompt_id=prompt_id, label=label, version=version, updated_at=utcnow()))
    else:
        row.version, row.updated_at = version, utcnow()


def _info(row: Prompt, latest: tuple[int, datetime | None], labels: dict[str, int],
          versions: list[Version] | None = None) -> PromptInfo:
    return PromptInfo(id=row.id, workspace_id=row.workspace_id, name=row.name, description=row.description,
                      tags=list(row.tags), latest_version=latest[0], labels=labels, created_at=row.created_at,
                      updated_at=latest[1], versions=versions)


# --- capabilities ------------------------------------------------------------------------------------


def create_prompt(db: str, name: str, template: Any, *, type: str | None = None, description: str = "",
                  tags: list[str] | None = None, model_config: dict[str, Any] | None = None, message: str = "",
                  labels: list[str] | tuple[str, ...] = (), created_by: str | None = None,
                  workspace_id: str = DEFAULT_WORKSPACE) -> PromptInfo:
    """Create a prompt with its version 1, optionally labelled."""
    check_name(name)
    type_, template = _template(type, template)
    config, tags = _model_config(model_config), _tags(tags)
    for label in labels:
        check_label(label)
    exists = Conflict(f"A prompt named {name!r} already exists.", param="name", code="prompt_exists",
                      params={"name": name})
    try:
        with session(db) as s:
            bump_revision(s, "prompts")
            if s.scalar(select(Prompt.id).where(Prompt.workspace_id == workspace_id, Prompt.name == name)):
                raise exists
            row = Prompt(id=new_id("prompt"), workspace_id=workspace_id, name=name, description=description,
                         tags=tags, created_at=utcnow())
            s.add(row)
            s.flush()
            s.add(_new_version(row.id, 1, type_, template, config, message, created_by))
            for label in labels:
                _put_label(s, row.id, label, 1)
    except IntegrityError:  # the same name created concurrently
        raise exists from None
    return get_prompt(db, name, workspace_id)


def add_version(db: str, name: str, template: Any = None, *, type: str | None = None,
                model_config: dict[str, Any] | None = None, message: str = "",
                labels: list[str] | tuple[str, ...] = (), created_by: str | None = None,
                workspace_id: str = DEFAULT_WORKSPACE) -> Version:
    """Add the next version; what is not given (template, model config) is taken from the newest version.

    ``labels`` move onto the new version. Concurrent callers get distinct numbers: the first statement is
    a write (which takes SQLite's write lock before the number is read), and a unique-index clash retries.
    """
    config = None if model_config is None else _model_config(model_config)
    for label in labels:
        check_label(label)
    for _ in range(_RETRIES):
        try:
            with session(db) as s:
                bump_revision(s, "prompts")
                prompt = _prompt(s, name, workspace_id)
                latest = _version_row(s, prompt)
                if template is None:
                    type_, tmpl = _template(type or latest.type, latest.template)
                else:
                    type_, tmpl = _template(type, template)
                row = _new_version(prompt.id, latest.version + 1, type_, tmpl,
                                   dict(latest.model_config_) if config is None else config, message, created_by)
                s.add(row)
                for label in labels:
                    _put_label(s, prompt.id, label, row.version)
                s.flush()
                return _version(row, name, _labels(s, prompt.id))
        except IntegrityError:
            continue
    raise Conflict(f"Could not number a new version of {name!r} (too many concurrent writers); try again.",
                   code="version_conflict")


def get_version(db: str, name: str, version: int | None = None, label: str | None = None,
                workspace_id: str = DEFAULT_WORKSPACE) -> Version:
    """One version by number or label (``latest`` = newest); the newest when neither is given."""
    with session(db) as s:
        prompt = _prompt(s, name, workspace_id)
        return _version(_version_row(s, prompt, version, label), name, _labels(s, prompt.id))


def get_prompt(db: str, name: str, workspace_id: str = DEFAULT_WORKSPACE) -> PromptInfo:
    """A prompt with all its versions (newest first) and labels."""
    with session(db) as s:
        row = _prompt(s, name, workspace_id)
        labels = _labels(s, row.id)
        rows = s.scalars(select(PromptVersion).where(PromptVersion.prompt_id == row.id)
                         .order_by(PromptVersion.version.desc()))
        versions = [_version(v, name, labels) for v in rows]
        return _info(row, (versions[0].version, versions[0].created_at), labels, versions)


def list_prompts(db: str, q: str | None = None, workspace_id: str = DEFAULT_WORKSPACE) -> list[PromptInfo]:
    """Prompts by name, with their newest version number and labels; ``q``: every word must appear in the
    name, description or tags."""
    in_ws = Prompt.workspace_id == workspace_id
    with session(db) as s:
        latest = {pid: (n, t) for pid, n, t in s.execute(
            select(PromptVersion.prompt_id, func.max(PromptVersion.version), func.max(PromptVersion.created_at))
            .join(Prompt, Prompt.id == PromptVersion.prompt_id).where(in_ws).group_by(PromptVersion.prompt_id))}
        labels: dict[str, dict[str, int]] = defaultdict(dict)
        for pid, label, version in s.execute(
                select(PromptLabel.prompt_id, PromptLabel.label, PromptLabel.version)
                .join(Prompt, Prompt.id == PromptLabel.prompt_id).where(in_ws).order_by(PromptLabel.label)):
            labels[pid][label] = version
        prompts = [_info(r, latest.get(r.id, (0, None)), labels[r.id])
                   for r in s.scalars(select(Prompt).where(in_ws).order_by(Prompt.name))]
    words = (q or "").casefold().split()
    return [p for p in prompts
            if all(w in " ".join([p.name, p.description, *p.tags]).casefold() for w in words)]


def set_label(db: str, name: str, label: str, version: int, workspace_id: str = DEFAULT_WORKSPACE) -> int:
    """Point ``label`` at ``version`` (creating or moving it); returns the version."""
    check_label(label)
    with session(db) as s:
        bump_revision(s, "prompts")
        prompt = _prompt(s, name, workspace_id)
        _put_label(s, prompt.id, label, _version_row(s, prompt, version).version)
    return version


def remove_label(db: str, name: str, label: str, workspace_id: str = DEFAULT_WORKSPACE) -> int:
    """Remove a label; returns the version it pointed at."""
    check_label(label)
    with session(db) as s:
        bump_revision(s, "prompts")
        prompt = _prompt(s, name, workspace_id)
        row = s.get(PromptLabel, (prompt.id, label))
        if row is None:
            raise NotFound(f"Prompt {name!r} has no label {label!r}.", param="label", code="label_not_found",
                           params={"name": name, "label": label})
        s.delete(row)
        return row.version


def delete_prompt(db: str, name: str, workspace_id: str = DEFAULT_WORKSPACE) -> PromptInfo:
    """Delete a prompt with all its versions and labels; returns what was deleted (without versions)."""
    with session(db) as s:
        bump_revision(s, "prompts")
        row = _prompt(s, name, workspace_id)
        newest = _version_row(s, row)
        info = _info(row, (newest.version, newest.created_at), _labels(s, row.id))
        s.execute(delete(PromptLabel).where(PromptLabel.prompt_id == row.id))
        s.execute(delete(PromptVersion).where(PromptVersion.prompt_id == row.id))
        s.delete(row)
    return info


# --- rendering and diffs -----------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(version: Version, variables: dict[str, Any]) -> dict[str, Any]:
    """Fill the placeholders: ``{"type", "messages"|"text", "model_config"}``.

    Every variable of the template must be given (extra ones are ignored); values that are not strings are
    written as JSON. Placeholders inside values are not expanded again."""
    missing = [v for v in version.variables if v not in variables]
    if missing:
        raise InvalidRequest(f"Missing variables for {version.prompt!r} v{version.version}: {', '.join(missing)} "
                             f"(the template uses {', '.join(version.variables)}).", param="variables",
                             code="missing_variables",
                             params={"prompt": version.prompt, "version": version.version,
                                     "missing": ", ".join(missing)})

    def fill(text: str) -> str:
        return _VAR_RE.sub(lambda m: _text(variables[m[1]]) if m[1] in variables else m[0], text)

    out: dict[str, Any] = {"type": version.type}
    if version.type == "text":
        out["text"] = fill(version.template)  # type: ignore[arg-type]
    else:
        out["messages"] = [{"role": m["role"], "content": fill(m["content"])} for m in version.template]
    out["model_config"] = dict(version.model_config)
    return out


def readable(version: Version) -> str:
    """A plain-text rendering of a version (type, model config, then each message) for diffs and the CLI."""
    lines = [f"type: {version.type}"]
    lines += [f"model_config.{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(version.model_config.items())]
    parts = [("text", version.template)] if isinstance(version.template, str) else [
        (m["role"], m["content"]) for m in version.template]
    for role, content in parts:
        lines += ["", f"[{role}]", *content.splitlines()]
    return "\n".join(lines)


def _ref(ref: int | str) -> dict[str, Any]:
    """A version number or a label, as ``get_version`` arguments."""
    if isinstance(ref, int) or re.fullmatch(r"[0-9]+", ref):
        return {"version": int(ref)}
    return {"label": ref}


def diff(db: str, name: str, a: int | str, b: int | str, workspace_id: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
    """A unified diff between two versions (numbers or labels): ``{"from", "to", "diff"}``; empty when equal."""
    va = get_version(db, name, workspace_id=workspace_id, **_ref(a))
    vb = get_version(db, name, workspace_id=workspace_id, **_ref(b))
    lines = difflib.unified_diff(readable(va).splitlines(), readable(vb).splitlines(),
                                 fromfile=f"{name} v{va.version}", tofile=f"{name} v{vb.version}", lineterm="")
    return {"from": va.version, "to": vb.version, "diff": "\n".join(lines)}
