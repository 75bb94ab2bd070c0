"""``temper chat MODEL PROMPT``: streams an answer from a running server."""
from __future__ import annotations

import orjson
import typer

from temper.cli.common import clean_errors, console, err
from temper.cli.client import Client


@clean_errors
def chat(model: str, prompt: str,
         system: str = typer.Option(None, help="A system message."),
         max_tokens: int = typer.Option(256, help="Maximum tokens to generate."),
         temperature: float = typer.Option(None, help="Sampling temperature."),
         url: str = typer.Option(None, help="Server base URL (default http://TEMPER_HOST:TEMPER_PORT).")) -> None:
    """Send one message and stream the answer."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    if temperature is not None:
        body["temperature"] = temperature
    usage = None
    with Client(url).stream("POST", "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = orjson.loads(line[6:])
            if "error" in ev:
                err.print(f"\n[red]error:[/red] {ev['error'].get('message')}")
                raise typer.Exit(1)
            for ch in ev.get("choices") or ():
                console.print((ch.get("delta") or {}).get("content") or "", end="", highlight=False, markup=False)
            usage = ev.get("usage") or usage
    console.print()
    if usage:
        err.print(f"[dim]{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens[/dim]")
