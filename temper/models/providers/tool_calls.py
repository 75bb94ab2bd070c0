"""Tool calling for local chat models that have no native tool API (Hermes/Qwen style).

The tool definitions are rendered into the system prompt and the model is asked to
answer with ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks, which
:func:`parse_tool_calls` turns back into OpenAI ``tool_calls``. For ``tool_choice``
``"required"`` or a named function, :func:`tool_call_grammar` builds a GBNF grammar
that forces one well-formed call whose arguments follow the function's schema.

Everything here is pure (no model), so it is unit-tested on its own.
"""
from __future__ import annotations

import json
import re
import secrets
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from temper.errors import InvalidRequest

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def validate_tools(tools: Any, tool_choice: Any) -> tuple[list[dict], str | None]:
    """Check ``tools``/``tool_choice`` and return (functions, mode).

    ``functions`` are the ``function`` objects of the offered tools; ``mode`` is None
    when tools must not be offered (no tools or ``"none"``), else ``"auto"``,
    ``"required"`` or the name of the one function that must be called.
    """
    if tools is None:
        if tool_choice not in (None, "none"):
            raise InvalidRequest("'tool_choice' requires 'tools'", param="tool_choice",
                                 code="tool_choice_without_tools")
        return [], None
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools", code="invalid_type")
    functions = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest(f"tools[{i}] must be a function tool with a name", param=f"tools[{i}]",
                                 code="invalid_tool")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest(f"tools[{i}].function.parameters must be an object", param=f"tools[{i}]",
                                 code="invalid_type")
        functions.append(fn)
    if not functions or tool_choice == "none":
        return functions, None
    if tool_choice is None or tool_choice in ("auto", "required"):
        return functions, tool_choice or "auto"
    name = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) else None
    if not isinstance(name, str):
        raise InvalidRequest("'tool_choice' must be 'none', 'auto', 'required' or a function", param="tool_choice",
                             code="invalid_tool_choice")
    if name not in {fn["name"] for fn in functions}:
        raise InvalidRequest(f"tool_choice names unknown function {name!r}", param="tool_choice",
                             code="unknown_tool", params={"name": name})
    return functions, name


def render_tools_prompt(functions: list[dict], mode: str) -> str:
    """The system-prompt section that describes the tools and the call format."""
    lines = [
        "# Tools",
        "",
        "You may call one or more functions to assist with the user query.",
        "",
        "You are provided with function signatures within <tools></tools> XML tags:",
        "<tools>",
        *(json.dumps({"type": "function", "function": fn}, ensure_ascii=False) for fn in functions),
        "</tools>",
        "",
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:",
        "<tool_call>",
        '{"name": <function-name>, "arguments": <args-json-object>}',
        "</tool_call>",
    ]
    if mode == "required":
        lines.append("You must call at least one function.")
    elif mode != "auto":
        lines.append(f"You must call the function {mode!r}.")
    return "\n".join(lines)


def tool_call_grammar(functions: list[dict], mode: str) -> str | None:
    """GBNF forcing one ``<tool_call>`` for ``"required"`` or a named function, else None."""
    if mode == "auto":
        return None
    chosen = functions if mode == "required" else [fn for fn in functions if fn["name"] == mode]
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"const": fn["name"]},
                "arguments": fn.get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for fn in chosen
    ]
    schema = variants[0] if len(variants) == 1 else {"anyOf": variants}
    try:
        body = json_schema_to_gbnf(json.dumps(schema), prop_order=["name", "arguments"])
    except Exception as exc:  # the converter raises assorted errors on bad schemas
        raise InvalidRequest(f"invalid function parameters schema: {exc}", param="tools",
                             code="invalid_json_schema") from exc
    body = re.sub(r"^root ::=", "call ::=", body, count=1, flags=re.MULTILINE)
    return f'root ::= "{TOOL_OPEN}\\n" call "\\n{TOOL_CLOSE}"\n{body}'


def parse_tool_calls(text: str, names: set[str] | None = None) -> tuple[str | None, list[dict]]:
    """Split model output into (content, tool_calls).

    A block that is not a JSON object with a (known) ``name`` makes the whole output
    plain content: half a tool call is worse than none. An unterminated final block
    (generation cut by ``max_tokens``) is accepted if its JSON is complete.
    """
    start = text.find(TOOL_OPEN)
    if start < 0:
        return text, []
    calls = []
    for match in _BLOCK.finditer(text, start):
        try:
            obj = json.loads(match.group(1))
        except ValueError:
            return text, []
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) \
                or (names is not None and obj["name"] not in names):
            return text, []
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                json.loads(args)
            except ValueError:
                return text, []
        else:
            args = json.dumps(args, ensure_ascii=False)
        calls.append({"id": f"call_{secrets.token_hex(12)}", "type": "function",
                      "function": {"name": obj["name"], "arguments": args}})
    content = text[:start].strip()
    return content or None, calls


def prepare_messages(messages: Any, *, tool_role: bool, tools_prompt: str | None) -> list[dict]:
    """Normalise OpenAI chat messages into plain ``{role, content}`` dicts for a template.

    Content part arrays are joined, ``developer`` becomes ``system``, assistant
    ``tool_calls`` are written out as ``<tool_call>`` text, and tool results become
    ``<tool_response>`` user text unless the template knows a ``tool`` role
    (consecutive user messages are then merged, for templates that insist on
    alternating roles). ``tools_prompt`` is appended to the system message.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages", code="empty_array")
    out: list[dict] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]", code="invalid_type")
        role = msg.get("role")
        content = _text(msg.get("content"), i)
        if role == "developer":
            role = "system"
        if role == "assistant" and msg.get("tool_calls"):
            content = "\n".join([content, *(_call_text(tc, i) for tc in msg["tool_calls"])]).strip()
        elif role == "tool" and not tool_role:
            role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
        elif role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(f"messages[{i}].role {role!r} is not supported", param=f"messages[{i}].role",
                                 code="unsupported_role", params={"role": role})
        if role == "user" and out and out[-1]["role"] == "user" and content.startswith("<tool_response>"):
            out[-1]["content"] += "\n" + content
            continue
        out.append({"role": role, "content": content})
    if tools_prompt:
        if out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content']}\n\n{tools_prompt}".lstrip()
        else:
            out.insert(0, {"role": "system", "content": tools_prompt})
    return out


def _text(content: Any, i: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal") \
                    or not isinstance(part.get(part["type"]), str):
                raise InvalidRequest(f"messages[{i}].content: only text parts are supported",
                                     param=f"messages[{i}].content", code="text_only")
            parts.append(part[part["type"]])
        return "".join(parts)
    raise InvalidRequest(f"messages[{i}].content must be a string or an array", param=f"messages[{i}].content",
                         code="invalid_type")


def _call_text(tool_call: Any, i: int) -> str:
    fn = tool_call.get("function") if isinstance(tool_call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest(f"messages[{i}].tool_calls is malformed", param=f"messages[{i}].tool_calls",
                             code="invalid_value")
    args = fn.get("arguments") or "{}"
    try:
        args = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        pass  # keep the client's raw string
    return f"{TOOL_OPEN}\n{json.dumps({'name': fn['name'], 'arguments': args}, ensure_ascii=False)}\n{TOOL_CLOSE}"
