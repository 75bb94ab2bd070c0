"""Unit tests for the Hermes-style tool-call rendering and parsing."""
from __future__ import annotations

import json

import pytest

from temper.errors import InvalidRequest
from temper.models.providers import tool_calls as tc

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def test_validate_tools_modes() -> None:
    assert tc.validate_tools(None, None) == ([], None)
    fns, mode = tc.validate_tools([WEATHER, TIME], None)
    assert [f["name"] for f in fns] == ["get_weather", "get_time"] and mode == "auto"
    assert tc.validate_tools([WEATHER], "none")[1] is None
    assert tc.validate_tools([WEATHER], "required")[1] == "required"
    assert tc.validate_tools([WEATHER], {"type": "function", "function": {"name": "get_weather"}})[1] == "get_weather"


@pytest.mark.parametrize("tools,choice,param", [
    (None, "required", "tool_choice"),
    ([{"type": "function"}], None, "tools[0]"),
    ([WEATHER], {"type": "function", "function": {"name": "nope"}}, "tool_choice"),
    ([WEATHER], "sometimes", "tool_choice"),
])
def test_validate_tools_rejects(tools: object, choice: object, param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        tc.validate_tools(tools, choice)
    assert err.value.param == param


def test_render_tools_prompt_lists_functions() -> None:
    text = tc.render_tools_prompt([WEATHER["function"]], "get_weather")
    assert "<tools>" in text and '"name": "get_weather"' in text and "<tool_call>" in text
    assert "must call the function 'get_weather'" in text


def test_grammar_only_when_forced() -> None:
    fns = [WEATHER["function"], TIME["function"]]
    assert tc.tool_call_grammar(fns, "auto") is None
    named = tc.tool_call_grammar(fns, "get_weather")
    assert named.startswith('root ::= "<tool_call>\\n" call "\\n</tool_call>"')
    assert "get_weather" in named and "get_time" not in named
    required = tc.tool_call_grammar(fns, "required")
    assert "get_weather" in required and "get_time" in required


def test_grammar_rejects_bad_schema() -> None:
    bad = {"name": "f", "parameters": {"type": "nonsense"}}
    with pytest.raises(InvalidRequest) as err:
        tc.tool_call_grammar([bad], "f")
    assert err.value.param == "tools"


def test_parse_single_and_multiple_calls() -> None:
    content, calls = tc.parse_tool_calls('<tool_call>\n{"name": "get_weather", "arguments": {"city": "巴黎"}}\n</tool_call>')
    assert content is None and len(calls) == 1
    call = calls[0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "巴黎"}

    text = ('Let me check.\n<tool_call>{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}</tool_call>\n'
            '<tool_call>{"name": "get_time", "parameters": {}}</tool_call>')
    content, calls = tc.parse_tool_calls(text, {"get_weather", "get_time"})
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
    assert calls[1]["function"]["arguments"] == "{}"
    assert calls[0]["id"] != calls[1]["id"]


def test_parse_unterminated_block_with_complete_json() -> None:
    _, calls = tc.parse_tool_calls('<tool_call>{"name": "get_time", "arguments": {}}')
    assert calls and calls[0]["function"]["name"] == "get_time"


@pytest.mark.parametrize("text", [
    "no tools here",
    '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',
    '<tool_call>{"name": "unknown", "arguments": {}}</tool_call>',
    '<tool_call>["not", "an", "object"]</tool_call>',
])
def test_parse_falls_back_to_content(text: str) -> None:
    assert tc.parse_tool_calls(text, {"get_weather"}) == (text, [])


def test_prepare_messages_normalises() -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    ]
    out = tc.prepare_messages(messages, tool_role=False, tools_prompt="# Tools")
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"] == "Be brief.\n\n# Tools"
    assert out[2]["content"].count("<tool_call>") == 2 and '"city": "Rome"' in out[2]["content"]
    assert out[3]["content"] == "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nrain\n</tool_response>"

    native = tc.prepare_messages(messages, tool_role=True, tools_prompt=None)
    assert [m["role"] for m in native] == ["system", "user", "assistant", "tool", "tool"]


def test_prepare_messages_inserts_system_and_rejects_images() -> None:
    out = tc.prepare_messages([{"role": "user", "content": "hi"}], tool_role=False, tools_prompt="# Tools")
    assert out[0] == {"role": "system", "content": "# Tools"}
    with pytest.raises(InvalidRequest) as err:
        tc.prepare_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                            tool_role=False, tools_prompt=None)
    assert err.value.param == "messages[0].content"
    with pytest.raises(InvalidRequest):
        tc.prepare_messages([], tool_role=False, tools_prompt=None)
