"""A request's tokens, estimated before any work from its size alone, so admission can reserve them.

Cheap by design (it runs on the event loop for every request): characters / 3 for input (about right for
English, low for Chinese), plus the output the request may ask for. The charge settles the reservation
with the real count, so an estimate only has to be of the right size.
"""
from __future__ import annotations

from typing import Any

from temper.models.provider import Operation

CHARS_PER_TOKEN = 3
EMBED_INPUT_TOKENS = 512  # local embedding models read at most this much of each input
OUTPUT_RESERVE = 256  # tokens reserved per choice when a chat request sets no max_tokens
COMPLETION_DEFAULT = 16  # /v1/completions' default max_tokens


def _chars(value: Any) -> int:
    """Characters of text in a message content, a prompt or a list of them (token arrays: one per token)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int):
        return CHARS_PER_TOKEN
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    if isinstance(value, dict):
        return _chars(value.get("text") if "text" in value else value.get("content"))
    return 0


def _tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN + 1


def estimate_tokens(op: Operation, req: dict[str, Any]) -> int:
    """The tokens ``req`` (already validated) may use: its input plus ``n`` × its output limit."""
    if op == "embedding":
        items = req.get("input")
        return sum(min(_tokens(_chars(x)), EMBED_INPUT_TOKENS) for x in (items if isinstance(items, list) else [items]))
    if op == "rerank":
        query = min(_tokens(_chars(req.get("query"))), EMBED_INPUT_TOKENS)
        return query + sum(min(_tokens(_chars(d)), EMBED_INPUT_TOKENS) for d in req.get("documents") or ())
    prompt = _tokens(_chars(req.get("messages") if op == "chat" else req.get("prompt")))
    limit = req.get("max_completion_tokens") or req.get("max_tokens")
    per_choice = limit if isinstance(limit, int) else (OUTPUT_RESERVE if op == "chat" else COMPLETION_DEFAULT)
    n = req.get("n") if isinstance(req.get("n"), int) and req["n"] > 0 else 1
    prompts = req.get("prompt")
    if op == "completion" and isinstance(prompts, list) and all(isinstance(p, str) for p in prompts):
        n *= max(1, len(prompts))  # a choice per prompt
    return prompt + n * per_choice
