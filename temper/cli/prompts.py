"""``temper prompts ...``: prompt templates with immutable versions, movable labels and diffs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from temper.cli.common import clean_errors, console, ready, table
from temper.errors import InvalidRequest
from temper.ops.prompts.library import create_from_template, list_templates
from temper.ops.prompts.store import (Version, add_version, create_prompt, delete_prompt, diff, get_prompt,
                                      get_version, list_prompts, remove_label, render, set_label)

app = typer.Typer(no_args_is_help=True)

TEMPLATE = typer.Option(None, "--template", help="A text template with {{variable}} placeholders.")
SYSTEM = typer.Option(None, "--system", help="The system message of a chat template.")
USER = typer.Option(None, "--user", help="The user message of a chat template.")
FILE = typer.Option(None, "--file", exists=True, dir_okay=False, help=(
    "A JSON file: a list of {role, content} messages, or an object with template and optionally type, "
    "model_config, description, tags, message, labels."))
MODEL = typer.Option(None, "--model", help="model_config.model")
TEMPERATURE = typer.Option(None, "--temperature", help="model_config.temperature")
MAX_TOKENS = typer.Option(None, "--max-tokens", help="model_config.max_tokens")
LABEL = typer.Option(None, "--label", help="Point this label at the new version (repeatable).")
MESSAGE = typer.Option("", "--message", "-m", help="What changed.")


def _fields(template: str | None, system: str | None, user: str | None, file: Path | None) -> dict[str, Any]:
    """The version fields given on the command line or in ``--file``."""
    given = [n for n, v in (("--template", template), ("--system/--user", system or user), ("--file", file)) if v]
    if len(given) > 1:
        raise InvalidRequest(f"Give only one of {', '.join(given)}.")
    if file:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as e:
            raise InvalidRequest(f"{file} is not valid JSON: {e}") from None
        if isinstance(data, dict) and "template" in data:
            return data
        if isinstance(data, list):
            return {"template": data}
        raise InvalidRequest(f"{file} must hold a list of messages or an object with a 'template'.")
    if template is not None:
        return {"template": template, "type": "text"}
    if system or user:
        return {"template": [{"role": r, "content": c} for r, c in (("system", system), ("user", user)) if c],
                "type": "chat"}
    return {}


def _config(base: dict[str, Any] | None, model: str | None, temperature: float | None,
            max_tokens: int | None) -> dict[str, Any] | None:
    """``base`` with the flags set on top; None when nothing is given (keep the current config)."""
    flags = {k: v for k, v in (("model", model), ("temperature", temperature), ("max_tokens", max_tokens))
             if v is not None}
    if base is None and not flags:
        return None
    return {**(base or {}), **flags}


def _labels(labels: dict[str, int]) -> str:
    return ", ".join(f"{k} → v{v}" for k, v in labels.items()) or "-"


def _print_version(v: Version, labels: dict[str, int]) -> None:
    console.print(f"[bold]{v.prompt}[/bold] v{v.version} ({v.type})", highlight=False)
    console.print(f"labels: {_labels(labels)}", highlight=False, markup=False)
    console.print(f"variables: {', '.join(v.variables) or '-'}", highlight=False, markup=False)
    console.print(f"model config: {json.dumps(v.model_config, ensure_ascii=False)}", highlight=False, markup=False)
    if v.message:
        console.print(f"message: {v.message}", highlight=False, markup=False)
    parts = [("text", v.template)] if isinstance(v.template, str) else [(m["role"], m["content"]) for m in v.template]
    for role, content in parts:
        console.print(Text(f"\n[{role}]", style="bold cyan"))
        console.print(content, highlight=False, markup=False)


@app.command()
@clean_errors
def create(name: str = typer.Argument(None, help="The prompt's name (with --from-template: ID-LANG by default)."),
           template: str = TEMPLATE, system: str = SYSTEM, user: str = USER, file: Path = FILE,
           model: str = MODEL, temperature: float = TEMPERATURE, max_tokens: int = MAX_TOKENS,
           description: str = typer.Option(None, "--description", help="What the prompt is for."),
           tag: list[str] = typer.Option(None, "--tag", help="A tag (repeatable)."),
           label: list[str] = LABEL, message: str = MESSAGE,
           from_template: str = typer.Option(None, "--from-template", help="Copy this starter template."),
           lang: str = typer.Option("en", "--lang", help="zh or en (with --from-template).")) -> None:
    """Create a prompt (version 1) from --template, --system/--user, --file or --from-template."""
    s = ready()
    fields = _fields(template, system, user, file)
    if from_template:
        if fields:
            raise InvalidRequest("--from-template cannot be combined with --template, --system, --user or --file.")
        p = create_from_template(s.db_url, from_template, lang, name, created_by="cli")
    else:
        if not name:
            raise InvalidRequest("Give the prompt a NAME.")
        if "template" not in fields:
            raise InvalidRequest("Give the template with --template, --system/--user or --file.")
        p = create_prompt(s.db_url, name, fields["template"], type=fields.get("type"),
                          description=description if description is not None else fields.get("description", ""),
                          tags=tag or fields.get("tags"),
                          model_config=_config(fields.get("model_config"), model, temperature, max_tokens),
                          message=message or fields.get("message", ""), labels=label or fields.get("labels", ()),
                          created_by="cli")
    console.print(f"created [bold]{p.name}[/bold] v1 (labels: {_labels(p.labels)})", highlight=False)


@app.command()
@clean_errors
def version(name: str, template: str = TEMPLATE, system: str = SYSTEM, user: str = USER, file: Path = FILE,
            model: str = MODEL, temperature: float = TEMPERATURE, max_tokens: int = MAX_TOKENS,
            label: list[str] = LABEL, message: str = MESSAGE) -> None:
    """Add a new version; what is not given (template, model config) is kept from the newest version."""
    s = ready()
    fields = _fields(template, system, user, file)
    config = fields.get("model_config")
    if config is None and any(x is not None for x in (model, temperature, max_tokens)):
        config = get_version(s.db_url, name).model_config
    v = add_version(s.db_url, name, fields.get("template"), type=fields.get("type"),
                    model_config=_config(config, model, temperature, max_tokens),
                    message=message or fields.get("message", ""), labels=label or fields.get("labels", ()),
                    created_by="cli")
    console.print(f"created [bold]{v.prompt}[/bold] v{v.version}" + (f" (labels: {', '.join(v.labels)})"
                                                                    if v.labels else ""), highlight=False)


@app.command()
@clean_errors
def label(name: str, label: str, version: int) -> None:
    """Point LABEL (e.g. production, staging) at VERSION."""
    s = ready()
    set_label(s.db_url, name, label, version)
    console.print(f"{name}: {label} → v{version}", highlight=False, markup=False)


@app.command()
@clean_errors
def unlabel(name: str, label: str) -> None:
    """Remove LABEL from the prompt."""
    s = ready()
    was = remove_label(s.db_url, name, label)
    console.print(f"{name}: removed {label} (was v{was})", highlight=False, markup=False)


@app.command()
@clean_errors
def show(name: str, version: int = typer.Option(None, "--version", help="This version."),
         label: str = typer.Option(None, "--label", help="The version this label points at ('latest': newest)."),
         as_json: bool = typer.Option(False, "--json", help="Print the version as JSON.")) -> None:
    """Show a version (the newest by default): template, variables, model config, labels."""
    s = ready()
    v = get_version(s.db_url, name, version, label)
    if as_json:
        console.print_json(json.dumps(v.as_dict(), ensure_ascii=False))
        return
    p = get_prompt(s.db_url, name)
    _print_version(v, p.labels)
    console.print(f"\n{len(p.versions or [])} version(s); newest v{p.latest_version}", highlight=False)


@app.command("diff")
@clean_errors
def diff_(name: str, a: str = typer.Argument(help="A version number or a label."),
          b: str = typer.Argument(help="A version number or a label.")) -> None:
    """A coloured unified diff between two versions."""
    s = ready()
    d = diff(s.db_url, name, a, b)
    if not d["diff"]:
        console.print(f"v{d['from']} and v{d['to']} are the same", highlight=False)
        return
    styles = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))
    for line in d["diff"].splitlines():
        console.print(Text(line, style=next((st for p, st in styles if line.startswith(p)), "")))


@app.command("list")
@clean_errors
def list_(q: str = typer.Option(None, "--q", help="Only prompts whose name, description or tags contain "
                                                  "every word.")) -> None:
    """List prompts with their newest version and labels."""
    s = ready()
    t = table("name", "latest", "labels", "tags", "description")
    for p in list_prompts(s.db_url, q):
        t.add_row(Text(p.name), f"v{p.latest_version}", Text(_labels(p.labels)), Text(", ".join(p.tags)),
                  Text(p.description))
    console.print(t)


@app.command()
@clean_errors
def templates(lang: str = typer.Option(None, "--lang", help="zh or en (both by default).")) -> None:
    """The starter library; copy one with `temper prompts create --from-template ID --lang zh|en`."""
    t = table("id", "lang", "title", "variables")
    for tp in list_templates(lang):
        t.add_row(tp["id"], tp["lang"], Text(tp["title"]), ", ".join(tp["variables"]))
    console.print(t)


@app.command("render")
@clean_errors
def render_(name: str, var: list[str] = typer.Option(None, "--var", help="NAME=VALUE (repeatable)."),
            version: int = typer.Option(None, "--version"), label: str = typer.Option(None, "--label")) -> None:
    """Fill a version's variables and print the result as JSON."""
    s = ready()
    values: dict[str, str] = {}
    for item in var or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--var takes NAME=VALUE, not {item!r}.")
        values[key] = value
    v = get_version(s.db_url, name, version, label)
    console.print_json(json.dumps({"prompt": v.prompt, "version": v.version, **render(v, values)},
                                  ensure_ascii=False))


@app.command()
@clean_errors
def delete(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete a prompt with all its versions and labels."""
    s = ready()
    if not yes:
        typer.confirm(f"Delete {name} and all its versions?", abort=True)
    p = delete_prompt(s.db_url, name)
    console.print(f"deleted {p.name} ({p.latest_version} version(s))", highlight=False, markup=False)
