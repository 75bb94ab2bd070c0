"""Prompt management capabilities on a fresh SQLite database: versions, labels, variables, diffs, the library."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from temper.errors import Conflict, InvalidRequest, NotFound
from temper.ops.prompts.library import create_from_template, list_templates
from temper.ops.prompts.store import (Version, add_version, create_prompt, delete_prompt, diff, get_prompt,
                                      get_version, list_prompts, remove_label, render, set_label)
from temper.store.db import migrate

CHAT = [{"role": "system", "content": "You answer for {{company}}."},
        {"role": "user", "content": "{{question}}"}]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'temper.db'}"
    migrate(url)
    return url


def test_versions_are_numbered_and_never_change(db: str) -> None:
    p = create_prompt(db, "support", CHAT, model_config={"model": "m1", "temperature": 0.2}, message="first",
                      description="Support replies", tags=["cs"], created_by="alice")
    assert (p.latest_version, p.labels, p.tags) == (1, {}, ["cs"])
    v1 = p.versions[0]
    assert (v1.version, v1.type, v1.variables, v1.created_by) == (1, "chat", ["company", "question"], "alice")

    v2 = add_version(db, "support", [*CHAT, {"role": "assistant", "content": "Sure."}], message="prefill")
    assert v2.version == 2 and v2.model_config == {"model": "m1", "temperature": 0.2}  # config kept
    v3 = add_version(db, "support", model_config={"temperature": 0.9})  # template kept, config replaced
    assert v3.template == v2.template and v3.model_config == {"temperature": 0.9}

    assert get_version(db, "support", 1).template == CHAT  # untouched by later versions
    assert get_version(db, "support", 1).model_config == {"model": "m1", "temperature": 0.2}
    detail = get_prompt(db, "support")
    assert [v.version for v in detail.versions] == [3, 2, 1] and detail.latest_version == 3
    assert detail.updated_at == detail.versions[0].created_at


def test_labels_move_and_latest_is_implicit(db: str) -> None:
    create_prompt(db, "faq", "Answer: {{q}}", labels=["production", "staging"])
    add_version(db, "faq", "Answer briefly: {{q}}", labels=["staging"])
    assert get_prompt(db, "faq").labels == {"production": 1, "staging": 2}
    assert get_version(db, "faq", label="production").version == 1
    assert get_version(db, "faq", label="latest").version == 2
    assert get_version(db, "faq").version == 2

    assert set_label(db, "faq", "production", 2) == 2
    v2 = get_version(db, "faq", 2)
    assert v2.labels == ["production", "staging"]
    assert remove_label(db, "faq", "staging") == 2
    assert get_prompt(db, "faq").labels == {"production": 2}

    add_version(db, "faq", "Answer in one line: {{q}}")
    assert get_version(db, "faq", label="latest").version == 3  # latest follows, production stays
    assert get_version(db, "faq", label="production").version == 2

    with pytest.raises(InvalidRequest, match="implicit"):
        set_label(db, "faq", "latest", 1)
    with pytest.raises(InvalidRequest, match="a-z"):
        set_label(db, "faq", "Prod", 1)
    with pytest.raises(NotFound, match="no version 9"):
        set_label(db, "faq", "canary", 9)
    with pytest.raises(NotFound, match="no label 'canary'"):
        get_version(db, "faq", label="canary")
    with pytest.raises(NotFound, match="no label 'staging'"):
        remove_label(db, "faq", "staging")
    with pytest.raises(InvalidRequest, match="not both"):
        get_version(db, "faq", 1, "production")


def test_render_fills_variables_and_names_the_missing_ones(db: str) -> None:
    create_prompt(db, "ask", CHAT, model_config={"max_tokens": 64})
    v = get_version(db, "ask")
    out = render(v, {"company": "Acme", "question": "{{company}}?", "unused": 1})
    assert out == {"type": "chat", "model_config": {"max_tokens": 64}, "messages": [
        {"role": "system", "content": "You answer for Acme."},
        {"role": "user", "content": "{{company}}?"}]}  # values are not expanded again; extras ignored
    with pytest.raises(InvalidRequest) as e:
        render(v, {"company": "Acme"})
    assert e.value.code == "missing_variables"
    assert e.value.message.startswith("Missing variables for 'ask' v1: question (")

    create_prompt(db, "plain", "Order {{ n }} of {{item}}, flags {{flags}}.")
    t = render(get_version(db, "plain"), {"n": 3, "item": "tea", "flags": {"gift": True}})
    assert t == {"type": "text", "text": 'Order 3 of tea, flags {"gift": true}.', "model_config": {}}


def test_chinese_names_variables_and_search(db: str) -> None:
    tmpl = [{"role": "system", "content": "你是{{公司}}的客服。"}, {"role": "user", "content": "问题：{{问题}}"}]
    p = create_prompt(db, "客服助手.v2-测试", tmpl, description="售后问答", tags=["客服"])
    assert p.name == "客服助手.v2-测试" and p.versions[0].variables == ["公司", "问题"]
    out = render(get_version(db, "客服助手.v2-测试"), {"公司": "甲公司", "问题": "怎么退货？"})
    assert out["messages"][0]["content"] == "你是甲公司的客服。"
    assert out["messages"][1]["content"] == "问题：怎么退货？"
    create_prompt(db, "other", "x")
    assert [x.name for x in list_prompts(db, q="售后")] == ["客服助手.v2-测试"]
    assert [x.name for x in list_prompts(db, q="客服 问答")] == ["客服助手.v2-测试"]
    assert list_prompts(db, q="客服 missing") == []
    assert {x.name for x in list_prompts(db)} == {"客服助手.v2-测试", "other"}


def test_diff_shows_template_and_config_changes(db: str) -> None:
    create_prompt(db, "d", CHAT, model_config={"temperature": 0.2}, labels=["production"])
    add_version(db, "d", [CHAT[0], {"role": "user", "content": "Question: {{question}}"}],
                model_config={"temperature": 0.7, "max_tokens": 100})
    d = diff(db, "d", "production", "latest")
    assert (d["from"], d["to"]) == (1, 2)
    lines = d["diff"].splitlines()
    assert lines[:2] == ["--- d v1", "+++ d v2"]
    assert "-model_config.temperature: 0.2" in lines and "+model_config.temperature: 0.7" in lines
    assert "+model_config.max_tokens: 100" in lines
    assert "-{{question}}" in lines and "+Question: {{question}}" in lines
    assert " [system]" in lines  # unchanged context
    assert diff(db, "d", 2, "2")["diff"] == ""


def test_concurrent_versions_get_distinct_numbers(db: str) -> None:
    create_prompt(db, "busy", "v {{n}}")
    got: list[int] = []
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(3):
                got.append(add_version(db, "busy", f"v{i}.{j} {{{{n}}}}").version)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == list(range(2, 26))
    assert get_prompt(db, "busy").latest_version == 25


@pytest.mark.parametrize("kwargs, exc, needle", [
    ({"name": "has space"}, InvalidRequest, "Invalid prompt name"),
    ({"name": ".hidden"}, InvalidRequest, "Invalid prompt name"),
    ({"name": "templates"}, InvalidRequest, "reserved"),
    ({"name": "x" * 101}, InvalidRequest, "Invalid prompt name"),
    ({"template": ""}, InvalidRequest, "non-empty string"),
    ({"template": [{"role": "robot", "content": "hi"}]}, InvalidRequest, "role 'robot'"),
    ({"template": [{"role": "user"}]}, InvalidRequest, "exactly 'role' and 'content'"),
    ({"template": "hi", "type": "chat"}, InvalidRequest, "list of"),
    ({"template": "hi", "type": "image"}, InvalidRequest, "type must be"),
    ({"model_config": {"temperature": 3}}, InvalidRequest, "temperature"),
    ({"model_config": {"max_tokens": 0}}, InvalidRequest, "max_tokens"),
    ({"model_config": {"max_tokens": 1.5}}, InvalidRequest, "integer"),
    ({"labels": ["latest"]}, InvalidRequest, "implicit"),
    ({"tags": "a"}, InvalidRequest, "tags"),
])
def test_bad_input_is_rejected_with_a_clear_message(db: str, kwargs: dict, exc: type, needle: str) -> None:
    args = {"name": "ok", "template": "hi"} | kwargs
    with pytest.raises(exc, match=needle):
        create_prompt(db, args.pop("name"), args.pop("template"), **args)
    assert list_prompts(db) == []


def test_duplicates_delete_and_workspaces(db: str) -> None:
    create_prompt(db, "same", "a")
    with pytest.raises(Conflict, match="already exists"):
        create_prompt(db, "same", "b")
    create_prompt(db, "same", "other workspace", workspace_id="ws_other")
    assert get_version(db, "same", workspace_id="ws_other").template == "other workspace"
    assert [p.name for p in list_prompts(db, workspace_id="ws_other")] == ["same"]

    add_version(db, "same", "a2", labels=["production"])
    gone = delete_prompt(db, "same")
    assert (gone.name, gone.latest_version, gone.labels) == ("same", 2, {"production": 2})
    with pytest.raises(NotFound, match="not found"):
        get_prompt(db, "same")
    with pytest.raises(NotFound):
        add_version(db, "same", "x")
    assert create_prompt(db, "same", "again").latest_version == 1  # the name is free again
    assert get_version(db, "same", workspace_id="ws_other").template == "other workspace"


def test_starter_library_in_both_languages(db: str) -> None:
    zh, en = list_templates("zh"), list_templates("en")
    ids = {"customer-service", "insurance-qa", "contract-review", "summarisation", "extraction"}
    assert {t["id"] for t in zh} == {t["id"] for t in en} == ids
    assert len(list_templates()) == 10
    for t in zh + en:
        roles = [m["role"] for m in t["template"]]
        assert t["type"] == "chat" and roles == ["system", "user"] and t["variables"], t["id"]
        assert len(t["template"][0]["content"]) > 200, t["id"]  # real instructions, not placeholders
        filled = render(_as_version(t), {v: "X" for v in t["variables"]})
        assert "{{" not in str(filled["messages"]), t["id"]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in t["template"][0]["content"]) for t in zh)
    assert not any(any("\u4e00" <= ch <= "\u9fff" for ch in t["template"][0]["content"]) for t in en)

    p = create_from_template(db, "insurance-qa", "zh")
    assert p.name == "insurance-qa-zh" and "starter" in p.tags and p.description.startswith("依据")
    assert p.versions[0].variables == ["product", "clauses", "question"]
    assert create_from_template(db, "extraction", "en", name="发票抽取").versions[0].model_config[
        "response_format"] == {"type": "json_object"}
    with pytest.raises(NotFound, match="customer-service"):
        create_from_template(db, "astrology", "en")
    with pytest.raises(InvalidRequest, match="lang"):
        list_templates("fr")


def _as_version(t: dict) -> Version:
    return Version(id="", prompt=t["name"], version=1, type=t["type"], template=t["template"],
                   variables=t["variables"], model_config=t["model_config"], message="", created_by=None,
                   created_at=None)
