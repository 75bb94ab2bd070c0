"""Span inputs and outputs as stored text: serialised, masked, capped; and the readable preview of a trace.

Runs in the exporter thread, never on the request path: the gateway hands over raw request bodies and
response bytes (or the list of streamed chunks) as they are.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from temper.ops.pii import Masker

PREVIEW_CHARS = 300
MASK_MARGIN = 256  # characters past a cut that masking still reads, so that an address or number across it is found


def to_text(value: Any) -> str | None:
    """Bytes, str, or anything JSON-serialisable → text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list) and value and isinstance(value[0], (bytes, bytearray)):
        return b"".join(value).decode("utf-8", "replace")  # streamed SSE chunks
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
    except TypeError:
        return repr(value)


def cap(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def stored(value: Any, limit: int, masker: Masker | None) -> str | None:
    """What a span's input/output becomes in the store: masked (only as far as it is kept), then capped."""
    text = to_text(value)
    if text is None or masker is None:
        return cap(text, limit)
    if len(text) <= limit:
        return masker(text)
    return f"{masker(text[:limit + MASK_MARGIN])[:limit]}… [{len(text) - limit} more characters]"


def _json(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, str)):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def parsed(value: Any) -> Any:
    """A JSON body with ``\\uXXXX`` escapes (Python clients send Chinese that way) as an object, so that it is
    stored as the characters they stand for; anything else unchanged (no parse, no re-serialisation)."""
    if isinstance(value, (bytes, bytearray)) and value[:1] in (b"{", b"[") and b"\\u" in value:
        obj = _json(value)
        return value if obj is None else obj
    return value


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p["text"] for p in content
                        if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def never_raises(render: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """A stored payload can be anything a client sent (the gateway stores rejected requests too): a shape the
    renderer does not expect shows as the raw text, never as an error that breaks a whole page of traces."""
    def safe(value: Any) -> str | None:
        try:
            return render(value)
        except Exception:  # noqa: BLE001 - any payload must render
            return to_text(value)
    safe.__doc__ = render.__doc__
    return safe


@never_raises
def readable_input(value: Any) -> str | None:
    """The part of a request a person reads first: the last user message, the prompt, the query."""
    obj = _json(value)
    if isinstance(obj, dict):
        messages = obj.get("messages")
        if isinstance(messages, list):
            for m in reversed(messages):
                if isinstance(m, dict) and m.get("role") == "user":
                    return _content(m.get("content"))
            return _content(messages[-1].get("content")) if messages and isinstance(messages[-1], dict) else ""
        for field in ("prompt", "query", "input", "question"):
            v = obj.get(field)
            if isinstance(v, str):
                return v
            if isinstance(v, list) and v:
                return v[0] if isinstance(v[0], str) else to_text(v)
    return to_text(value)


# The text of a streamed delta: its "content" (chat) or "text" (completion) string, escapes and all. Finding
# these in the joined bytes and decoding them in one parse costs a quarter of parsing every event.
_DELTA_TEXT = re.compile(rb'"(?:content|text)"\s*:\s*"([^"\\]*(?:\\.[^"\\]*)*)"')


def _stream_text(chunks: list) -> str:
    """Join the content deltas of a streamed chat or completion answer (SSE frames, or event dicts)."""
    if isinstance(chunks[0], dict):
        return "".join((c.get("delta") or {}).get("content") or c.get("text") or ""
                       for ev in chunks for c in ev.get("choices") or ())
    pieces = _DELTA_TEXT.findall(b"".join(chunks))
    if not pieces:
        return ""
    try:
        return "".join(orjson.loads(b'["' + b'","'.join(pieces) + b'"]'))
    except orjson.JSONDecodeError:
        return ""


@never_raises
def readable_output(value: Any) -> str | None:
    """The answer text of a response (streamed or not), or a one-line summary for vectors and rankings."""
    if isinstance(value, list) and value and isinstance(value[0], (bytes, bytearray, dict)):
        if isinstance(value[0], dict) and "choices" not in value[0]:
            return to_text(value)
        return _stream_text(value)
    obj = _json(value)
    if isinstance(obj, dict):
        choices = obj.get("choices")
        if isinstance(choices, list) and choices:
            c = choices[0]
            msg = c.get("message") or {}
            if msg.get("tool_calls"):
                return to_text(msg["tool_calls"])
            return _content(msg.get("content")) if msg else (c.get("text") or "")
        data = obj.get("data")
        if obj.get("object") == "list" and isinstance(data, list) and data and "embedding" in data[0]:
            return f"{len(data)} embedding(s) × {len(data[0]['embedding'])}"
        if isinstance(obj.get("results"), list):
            top = obj["results"][:3]
            return "top: " + ", ".join(f"#{r.get('index')} {r.get('relevance_score', 0):.3f}" for r in top)
    return to_text(value)
