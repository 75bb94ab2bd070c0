"""``temper models ...``: changes are stored and picked up by a running server within a second."""
from __future__ import annotations

import json

import typer

from temper.cli.common import clean_errors, console, ready, table
from temper.models.catalog import add_model, entry_from_spec, remove_model
from temper.models.plaza import build_catalog
from temper.plugins import plugin_manager, providers

app = typer.Typer(no_args_is_help=True)


def _catalog():  # type: ignore[no-untyped-def]
    s = ready()
    pm = plugin_manager()
    return s, pm, build_catalog(s, pm)


def _price(p: float | None) -> str:
    return "-" if p is None else f"{p:g}"


@app.command("list")
@clean_errors
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every model in the plaza."""
    _, _, cat = _catalog()
    entries = cat.list()
    if as_json:
        console.print_json(json.dumps([e.as_dict() for e in entries]))
        return
    t = table("id", "modality", "provider", "context", "size", "$/1M in", "$/1M out", "aliases", "status")
    for e in entries:
        t.add_row(e.id, e.modality, e.provider, str(e.context_length or "-"), e.parameters or "-",
                  _price(e.input_price), _price(e.output_price), ", ".join(e.aliases), e.status)
    console.print(t)


@app.command()
@clean_errors
def show(model_id: str) -> None:
    """Show one model (by id or alias)."""
    _, _, cat = _catalog()
    console.print_json(json.dumps(cat.get(model_id).as_dict()))


@app.command()
@clean_errors
def add(model_id: str = typer.Argument(..., help="The id clients will call it by."),
        provider: str = typer.Option("openai_compat", help="Provider plugin name."),
        base_url: list[str] = typer.Option(None, "--base-url", help="Upstream base URL (repeat for several "
                                           "weighted deployments)."),
        upstream_model: str = typer.Option(None, help="Model name at the upstream (default: the id)."),
        api_key_env: str = typer.Option(None, help="Environment variable holding the upstream API key."),
        modality: str = typer.Option("chat", help="chat, completion, embedding or rerank."),
        alias: list[str] = typer.Option(None, "--alias", help="Another name for the model (repeatable)."),
        fallback: list[str] = typer.Option(None, "--fallback", help="Model to try when this one fails."),
        context_length: int = typer.Option(None, help="Context window in tokens."),
        input_price: float = typer.Option(None, help="Price per 1M input tokens (unset: no price set)."),
        output_price: float = typer.Option(None, help="Price per 1M output tokens (unset: no price set)."),
        timeout: float = typer.Option(600.0, help="Seconds to wait for the upstream's first byte."),
        tag: list[str] = typer.Option(None, "--tag", help="Tag (repeatable)."),
        replace: bool = typer.Option(False, help="Replace an existing stored entry."),
        ) -> None:
    """Add a model, e.g. a remote one: temper models add gpt-4o --base-url https://api.openai.com/v1
    --api-key-env OPENAI_API_KEY"""
    s, pm, cat = _catalog()
    deployments = [{"provider": provider, "base_url": url, "upstream_model": upstream_model,
                    "api_key_env": api_key_env, "timeout_s": timeout} for url in (base_url or [None])]
    entry = entry_from_spec({"id": model_id, "modality": modality, "deployments": deployments,
                             "aliases": alias or [], "fallbacks": fallback or [], "context_length": context_length,
                             "input_price": input_price, "output_price": output_price, "tags": tag or []})
    add_model(s.db_url, cat, entry, providers=providers(pm, s), replace=replace)
    console.print(f"added [bold]{model_id}[/bold] ({modality}, {provider}, {len(deployments)} deployment(s))")


@app.command()
@clean_errors
def remove(model_id: str) -> None:
    """Remove a model you added (built-ins can only be disabled)."""
    s, _, cat = _catalog()
    remove_model(s.db_url, cat, model_id)
    console.print(f"removed [bold]{model_id}[/bold]")
