"""Request validation for the OpenAI-compatible endpoints, field by field as in the OpenAI reference.

Hand-written checks rather than pydantic models: the hot path must stay well under 0.5 ms of CPU, and
unknown fields must survive untouched so they reach remote upstreams.
"""
from __future__ import annotations

import re
from typing import Any

from temper.errors import InvalidRequest

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_NUM = (int, float)


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}
    ts = t if isinstance(t, tuple) else (t,)
    return " or ".join(dict.fromkeys(names.get(x, x.__name__) for x in ts))


def _field(req: dict, name: str, types: type | tuple[type, ...], *, required: bool = False) -> Any:
    v = req.get(name)
    if v is None:
        if required:
            raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        return None
    # bool is an int in Python; never accept it where a number is meant
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,))):
        raise InvalidRequest(f"Invalid type for '{name}': expected {_type_name(types)}, but got "
                             f"{_type_name(type(v))}.", param=name, code="invalid_type")
    return v


def _range(req: dict, name: str, lo: float, hi: float, types: type | tuple[type, ...] = _NUM) -> Any:
    v = _field(req, name, types)
    if v is not None and not lo <= v <= hi:
        raise InvalidRequest(f"Invalid value for '{name}': {v} is not between {lo:g} and {hi:g}.", param=name,
                             code="invalid_value")
    return v


def _stop(req: dict) -> None:
    stop = _field(req, "stop", (str, list))
    if isinstance(stop, list):
        if len(stop) > 4 or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("'stop' must be a string or an array of at most 4 strings.", param="stop",
                                 code="invalid_stop")


def _common(req: dict, context_length: int | None) -> tuple[bool, bool]:
    """Fields shared by chat and completions; returns (stream, include_usage)."""
    stream = bool(_field(req, "stream", bool))
    opts = _field(req, "stream_options", dict)
    if opts is not None and not stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             param="stream_options", code="stream_options_without_stream")
    include_usage = bool(opts and opts.get("include_usage"))
    _range(req, "temperature", 0, 2)
    _range(req, "top_p", 0, 1)
    _range(req, "n", 1, 128, int)
    _range(req, "presence_penalty", -2, 2)
    _range(req, "frequency_penalty", -2, 2)
    _field(req, "seed", int)
    _field(req, "user", str)
    _stop(req)
    for name in ("max_tokens", "max_completion_tokens"):
        v = _field(req, name, int)
        if v is not None and v < 1:
            raise InvalidRequest(f"Invalid '{name}': integer below minimum value. Expected a value >= 1, "
                                 f"but got {v} instead.", param=name, code="integer_below_min_value")
        if v is not None and context_length and v > context_length:
            raise InvalidRequest(f"{name} is too large: {v}. This model supports at most {context_length} "
                                 "completion tokens.", param=name, code="invalid_value")
    return stream, include_usage


def _content(m: dict, i: int) -> None:
    c = m.get("content")
    param = f"messages[{i}].content"
    if c is None:
        if m["role"] == "assistant":  # an assistant turn may carry only tool calls or a refusal
            return
        raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                             code="missing_required_parameter")
    if isinstance(c, str):
        return
    if not isinstance(c, list):
        raise InvalidRequest(f"Invalid type for '{param}': expected string or array.", param=param,
                             code="invalid_type")
    for j, part in enumerate(c):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(f"Invalid '{param}[{j}]': expected an object with a 'type'.",
                                 param=f"{param}[{j}]", code="invalid_type")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequest(f"Missing required parameter: '{param}[{j}].text'.", param=f"{param}[{j}].text",
                                 code="missing_required_parameter")


def _messages(req: dict) -> None:
    msgs = _field(req, "messages", list, required=True)
    if not msgs:
        raise InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum length 1.",
                             param="messages", code="empty_array")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InvalidRequest(f"Invalid type for 'messages[{i}]': expected an object.", param=f"messages[{i}]",
                                 code="invalid_type")
        role = m.get("role")
        if role not in _ROLES:
            raise InvalidRequest(f"Invalid value for 'messages[{i}].role': {role!r}. Supported values are: "
                                 "'system', 'developer', 'user', 'assistant', 'tool' and 'function'.",
                                 param=f"messages[{i}].role", code="invalid_value")
        _content(m, i)
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise InvalidRequest(f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                                 param=f"messages[{i}].tool_call_id", code="missing_required_parameter")


def _tools(req: dict) -> None:
    tools = _field(req, "tools", list)
    names = set()
    for i, t in enumerate(tools or ()):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            raise InvalidRequest(f"Invalid 'tools[{i}]': expected {{'type': 'function', 'function': {{...}}}}.",
                                 param=f"tools[{i}]", code="invalid_value")
        if not isinstance(fn.get("name"), str) or not _NAME_RE.match(fn["name"]):
            raise InvalidRequest(f"Invalid 'tools[{i}].function.name': must match ^[a-zA-Z0-9_-]{{1,64}}$.",
                                 param=f"tools[{i}].function.name", code="invalid_value")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise InvalidRequest(f"Invalid type for 'tools[{i}].function.parameters': expected an object.",
                                 param=f"tools[{i}].function.parameters", code="invalid_type")
        names.add(fn["name"])
    choice = _field(req, "tool_choice", (str, dict))
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        raise InvalidRequest(f"Invalid value for 'tool_choice': {choice!r}. Supported values are: 'none', 'auto' "
                             "and 'required'.", param="tool_choice", code="invalid_value")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise InvalidRequest("Invalid 'tool_choice': expected {'type': 'function', 'function': {'name': ...}}.",
                                 param="tool_choice", code="invalid_value")
        if name not in names:
            raise InvalidRequest(f"Invalid 'tool_choice': function {name!r} is not in 'tools'.",
                                 param="tool_choice", code="invalid_value")
    if choice is not None and not tools and choice != "none":
        raise InvalidRequest("'tool_choice' is only allowed when 'tools' are specified.", param="tool_choice",
                             code="tool_choice_without_tools")
    _field(req, "parallel_tool_calls", bool)


def _response_format(req: dict) -> None:
    rf = _field(req, "response_format", dict)
    if rf is None:
        return
    kind = rf.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(f"Invalid value for 'response_format.type': {kind!r}. Supported values are: 'text', "
                             "'json_object' and 'json_schema'.", param="response_format.type", code="invalid_value")
    if kind == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict) or not isinstance(js.get("name"), str):
            raise InvalidRequest("Missing required parameter: 'response_format.json_schema.name'.",
                                 param="response_format.json_schema", code="missing_required_parameter")
        if js.get("schema") is not None and not isinstance(js["schema"], dict):
            raise InvalidRequest("Invalid type for 'response_format.json_schema.schema': expected an object.",
                                 param="response_format.json_schema.schema", code="invalid_type")


def check_chat(req: dict, context_length: int | None) -> tuple[bool, bool]:
    _messages(req)
    stream, include_usage = _common(req, context_length)
    _tools(req)
    _response_format(req)
    if _field(req, "logprobs", bool) is not True and req.get("top_logprobs") is not None:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs",
                             code="top_logprobs_without_logprobs")
    _range(req, "top_logprobs", 0, 20, int)
    return stream, include_usage


def check_completion(req: dict, context_length: int | None) -> tuple[bool, bool]:
    prompt = req.get("prompt")
    if prompt is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if not isinstance(prompt, (str, list)) or (isinstance(prompt, list) and not prompt):
        raise InvalidRequest("Invalid 'prompt': expected a string, an array of strings or token arrays.",
                             param="prompt", code="invalid_type")
    stream, include_usage = _common(req, context_length)
    _range(req, "logprobs", 0, 5, int)
    _field(req, "echo", bool)
    _field(req, "suffix", str)
    return stream, include_usage


def check_embedding(req: dict) -> None:
    inp = req.get("input")
    if inp is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    items = inp if isinstance(inp, list) else [inp]
    if not items or len(items) > 2048:
        raise InvalidRequest("'input' must contain between 1 and 2048 items.", param="input", code="invalid_value")
    for x in items:
        if isinstance(x, str):
            if not x:
                raise InvalidRequest("'input' cannot contain an empty string.", param="input", code="invalid_value")
        elif not (isinstance(x, int) and not isinstance(x, bool)) and not (
                isinstance(x, list) and x and all(isinstance(t, int) and not isinstance(t, bool) for t in x)):
            raise InvalidRequest("'input' must be a string, an array of strings, or token arrays.", param="input",
                                 code="invalid_type")
    fmt = _field(req, "encoding_format", str)
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest(f"Invalid value for 'encoding_format': {fmt!r}. Supported values are: 'float' and "
                             "'base64'.", param="encoding_format", code="invalid_value")
    dims = _field(req, "dimensions", int)
    if dims is not None and dims < 1:
        raise InvalidRequest("'dimensions' must be at least 1.", param="dimensions", code="invalid_value")


def check_rerank(req: dict) -> None:
    q = _field(req, "query", str, required=True)
    if not q:
        raise InvalidRequest("'query' cannot be empty.", param="query", code="invalid_value")
    docs = _field(req, "documents", list, required=True)
    if not docs or len(docs) > 1000:
        raise InvalidRequest("'documents' must contain between 1 and 1000 items.", param="documents",
                             code="invalid_value")
    for i, d in enumerate(docs):
        text = d.get("text") if isinstance(d, dict) else d
        if not isinstance(text, str):
            raise InvalidRequest(f"Invalid 'documents[{i}]': expected a string or an object with 'text'.",
                                 param=f"documents[{i}]", code="invalid_type")
    _range(req, "top_n", 1, 1_000_000, int)
    _field(req, "return_documents", bool)

