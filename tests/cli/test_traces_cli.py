"""``temper traces ...`` and ``temper stats`` in-process, on traces recorded with the tracing API."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from temper.cli.main import app
from temper.config import get_settings
from temper.models.metering import UsageWriter, usage_row
from temper.ops import tracing
from temper.ops.exporter import SpanExporter
from temper.ops.span_store import SpanStoreSink
from temper.store.db import migrate


@pytest.fixture
def traces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.setenv("TEMPER_HOME", str(tmp_path))
    monkeypatch.delenv("TEMPER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    db = get_settings().db_url
    migrate(db)
    ex = SpanExporter([SpanStoreSink(db)])
    tracing.install(ex)
    ids = []
    for i, model in enumerate(["small", "small", "big"]):
        with tracing.span(f"chat {model}", "gateway", {tracing.REQUEST_MODEL: model, tracing.KEY_ID: "key_a",
                                                       tracing.INPUT_TOKENS: 10 * (i + 1), tracing.OUTPUT_TOKENS: 5,
                                                       tracing.COST: 0.5},
                          input=f"question {i} 问题") as root:
            with tracing.span(f"chat {model}", "llm") as child:
                if model == "big":
                    child.fail("upstream timed out", "upstream_timeout")
            if model == "big":
                root.fail("upstream timed out", "upstream_timeout")
            root.set(output=f"answer {i}")
        ids.append(root.trace_hex)
    tracing.install(None)
    ex.drain()
    yield ids
    get_settings.cache_clear()


def run(*args: str) -> str:
    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def test_list_filters(traces: list[str]) -> None:
    out = run("traces", "list")
    assert all(t in out for t in traces)
    out = run("traces", "list", "--status", "error")
    assert traces[2] in out and traces[0] not in out
    out = run("traces", "list", "--q", "问题", "--model", "small")
    assert traces[0] in out and traces[1] in out and traces[2] not in out
    r = CliRunner().invoke(app, ["traces", "list", "--status", "bad"])
    assert r.exit_code == 1 and "--status must be ok or error" in r.output


def test_show_prints_the_tree_with_timings(traces: list[str]) -> None:
    out = run("traces", "show", traces[2], "--attributes")
    lines = out.splitlines()
    assert traces[2] in lines[0] and "error" in lines[0]
    assert any("chat big" in x and "gateway" in x for x in lines)
    child = next(x for x in lines if "llm" in x)
    assert "upstream timed out" in child and "+" in child and "ms" in child
    assert "gen_ai.request.model = big" in out and "question 2 问题" in out
    r = CliRunner().invoke(app, ["traces", "show", "f" * 32])
    assert r.exit_code == 1 and "No trace with id" in r.output


def test_export_writes_jsonl(traces: list[str], tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    assert "wrote 2 traces" in run("traces", "export", "--out", str(out), "--model", "small")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [traces[1], traces[0]]
    assert [len(r["spans"]) for r in rows] == [2, 2] and rows[0]["spans"][1]["kind"] == "llm"


def test_stats_per_model(traces: list[str]) -> None:
    """``temper stats`` counts requests (usage rows, written here by the server's writer), not traces."""
    writer = UsageWriter(get_settings().db_url)
    for i, (model, status) in enumerate([("small", 200), ("small", 200), ("big", 502)]):
        row = usage_row(f"req_{i}", "ws_default", "key_a", "chat", model)
        row |= {"status": status, "prompt_tokens": 10 * (i + 1), "completion_tokens": 5, "latency_ms": 12.0,
                "created_at": datetime.now(timezone.utc)}
        writer.record(row)
    writer.flush()
    out = run("stats", "--by", "model")
    small = next(x for x in out.splitlines() if "small" in x)
    big = next(x for x in out.splitlines() if "big" in x)
    assert small.split("│")[2].strip() == "2" and small.split("│")[3].strip() == "0"
    assert big.split("│")[3].strip() == "1" and "100.0" in big
    assert "30/10" in small  # 10 + 20 input tokens, 5 + 5 output


def test_masking_shows_and_sets_the_workspace_choice(traces: list[str]) -> None:
    assert "ws_default: traces stored masked (server default)" in run("traces", "masking")
    assert "ws_default: traces stored verbatim (workspace's choice)" in run("traces", "masking", "--off")
    assert "stored verbatim (workspace's choice)" in run("traces", "masking")
    assert "stored masked (workspace's choice)" in run("traces", "masking", "--on")
    assert "stored masked (server default)" in run("traces", "masking", "--server-default")
    for args in (["--off", "--server-default"], ["--workspace", "ws_nowhere"]):
        r = CliRunner().invoke(app, ["traces", "masking", *args])
        assert r.exit_code == 1, r.output
