"""``temper prompts ...`` in-process with Typer's runner, on a fresh data dir per test."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from temper.cli.main import app
from temper.config import get_settings


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TEMPER_HOME", str(tmp_path))
    monkeypatch.delenv("TEMPER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["prompts", *args])


def ok(*args: str) -> str:
    r = run(*args)
    assert r.exit_code == 0, r.output
    return r.stdout


def assert_clean_error(r: Result, needle: str) -> None:
    assert r.exit_code == 1, r.output
    assert needle in r.output, r.output
    assert "Traceback" not in r.output


def test_create_version_label_show_diff(home: Path) -> None:
    out = ok("create", "support", "--system", "You answer for {{company}}.", "--user", "{{question}}",
             "--temperature", "0.2", "--label", "production", "--description", "Support replies")
    assert "created support v1" in out and "production → v1" in out
    assert "created support v2 (labels: staging)" in ok("version", "support", "--temperature", "0.7", "--label",
                                                        "staging", "-m", "warmer")
    shown = ok("show", "support", "--label", "production")
    assert "support v1 (chat)" in shown and "variables: company, question" in shown
    assert '"temperature": 0.2' in shown and "production → v1, staging → v2" in shown
    assert "[system]" in shown and "You answer for {{company}}." in shown

    v2 = json.loads(ok("show", "support", "--version", "2", "--json"))
    assert v2["model_config"] == {"temperature": 0.7} and v2["message"] == "warmer"
    assert v2["template"][0] == {"role": "system", "content": "You answer for {{company}}."}  # kept from v1

    assert "support: production → v2" in ok("label", "support", "production", "2")
    d = ok("diff", "support", "1", "production")
    assert "--- support v1" in d and "-model_config.temperature: 0.2" in d and "+model_config.temperature: 0.7" in d
    assert "are the same" in ok("diff", "support", "2", "latest")
    assert "removed staging (was v2)" in ok("unlabel", "support", "staging")

    listing = ok("list")
    assert "support" in listing and "v2" in listing and "Support replies" in listing
    assert "support" not in ok("list", "--q", "nothing-like-this")


def test_text_file_and_render(home: Path) -> None:
    assert "created note v1" in ok("create", "note", "--template", "Summarise for {{audience}}: {{text}}")
    f = home / "v2.json"
    f.write_text(json.dumps({"template": [{"role": "user", "content": "给{{读者}}总结：{{text}}"}],
                             "model_config": {"max_tokens": 100}, "message": "中文版"}, ensure_ascii=False),
                 encoding="utf-8")
    assert "created note v2" in ok("version", "note", "--file", str(f))
    rendered = json.loads(ok("render", "note", "--var", "读者=经理", "--var", "text=销售额上升"))
    assert rendered["messages"] == [{"role": "user", "content": "给经理总结：销售额上升"}]
    assert rendered["model_config"] == {"max_tokens": 100} and rendered["version"] == 2
    text = json.loads(ok("render", "note", "--version", "1", "--var", "audience=x", "--var", "text=y"))
    assert text["text"] == "Summarise for x: y"
    assert_clean_error(run("render", "note", "--var", "text=y"), "Missing variables")
    assert_clean_error(run("render", "note", "--var", "novalue"), "NAME=VALUE")


def test_starter_library(home: Path) -> None:
    listing = ok("templates", "--lang", "zh")
    assert "客服助手" in listing and "合同审查" in listing and "Customer service" not in listing
    assert "created insurance-qa-zh v1" in ok("create", "--from-template", "insurance-qa", "--lang", "zh")
    assert "created 保险问答 v1" in ok("create", "保险问答", "--from-template", "insurance-qa", "--lang", "en")
    shown = ok("show", "insurance-qa-zh")
    assert "条款原文" in shown and "variables: product, clauses, question" in shown


@pytest.mark.parametrize("args, needle", [
    (("create", "x"), "Give the template"),
    (("create", "x", "--template", "a", "--system", "b"), "only one of"),
    (("create", "bad name", "--template", "a"), "Invalid prompt name"),
    (("create", "x", "--template", "a", "--temperature", "5"), "temperature"),
    (("create", "--from-template", "nope"), "No starter template"),
    (("create", "--from-template", "extraction", "--lang", "fr"), "lang must be"),
    (("show", "missing"), "not found"),
    (("version", "missing", "--template", "a"), "not found"),
    (("templates", "--lang", "fr"), "lang must be"),
])
def test_bad_input_gives_clean_message(args: tuple[str, ...], needle: str) -> None:
    assert_clean_error(run(*args), needle)


def test_label_errors_and_delete() -> None:
    ok("create", "p", "--template", "hi {{x}}")
    assert_clean_error(run("label", "p", "latest", "1"), "implicit")
    assert_clean_error(run("label", "p", "production", "3"), "no version 3")
    assert_clean_error(run("create", "p", "--template", "again"), "already exists")
    declined = CliRunner().invoke(app, ["prompts", "delete", "p"], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert "p v1" in ok("show", "p")
    assert "deleted p (1 version(s))" in ok("delete", "p", "--yes")
    assert_clean_error(run("show", "p"), "not found")
