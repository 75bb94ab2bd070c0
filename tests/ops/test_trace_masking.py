"""Personal data in the span store: masked by default, verbatim in a workspace that opts out (and masked again
for readers who may not see it), through the sink in this process and the writer process."""
from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from temper.errors import NotFound
from temper.ops import tracing
from temper.ops.exporter import SpanExporter
from temper.ops.pii import mask_pii
from temper.ops.span_store import SpanStoreSink
from temper.ops.span_writer import WriterProcess
from temper.ops.trace_masking import get_masking, set_masking
from temper.ops.traces import TraceFilter, export_traces, get_trace, list_traces
from temper.store.db import migrate, session
from temper.store.tables import DEFAULT_WORKSPACE, TraceRow, Workspace

SECRETS = ("zhang.san@example.com", "138 1234 5678", "4111-1111-1111-1111", "11010519491231002X")
QUESTION = ("我是张三，邮箱 zhang.san@example.com，手机 138 1234 5678，卡号 4111-1111-1111-1111，"
            "身份证 11010519491231002X。")


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 't.db'}"
    migrate(url)
    with session(url) as s:
        s.add(Workspace(id="ws_other", name="Other"))
    return url


def record(ex: SpanExporter, workspace_id: str = DEFAULT_WORKSPACE) -> str:
    """One gateway-like call with personal data in its request, answer, error and a child span."""
    tracing.install(ex)
    try:
        body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": QUESTION}]})
        with tracing.span("chat m", "gateway", workspace_id=workspace_id, input=body) as root:
            with tracing.span("chat m", "llm", input=QUESTION) as child:
                child.set(output="已记下 zhang.san@example.com")
            answer = {"role": "assistant", "content": "好的，138 1234 5678 已登记。"}
            root.set(output=orjson.dumps({"choices": [{"message": answer}]}))
            root.fail("upstream refused 4111-1111-1111-1111", "refused")
        ex.drain()
    finally:
        tracing.install(None)
    return root.trace_hex


def stored_text(db: str, trace_id: str) -> str:
    """Everything stored for the trace, as one string."""
    with session(db) as s:
        r = s.get(TraceRow, trace_id)
        return " ".join(str(v) for v in (r.raw_input, r.raw_output, r.input, r.output, r.error, r.spans))


def shown_text(trace: dict) -> str:
    return orjson.dumps(trace).decode()


@pytest.fixture(params=["thread", "process"])
def exporter(db: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The server's two ways to the store, masking as the server's default (TEMPER_TRACE_MASK_PII) says."""
    sink = SpanStoreSink(db, 8000, mask_pii) if request.param == "thread" else WriterProcess(db, 8000, True)
    ex = SpanExporter([sink])
    yield ex
    ex.close()


def test_personal_data_is_masked_before_it_is_stored(db: str, exporter: SpanExporter) -> None:
    trace_id = record(exporter)
    text = stored_text(db, trace_id)
    for secret in SECRETS:
        assert secret not in text
    for token in ("<email>", "<phone>", "<card-number>", "<id-number>"):
        assert token in text
    t = get_trace(db, trace_id)
    assert "<card-number>" in t["error"] and "<email>" in t["spans"][1]["output"]


def test_a_workspace_that_opts_out_stores_verbatim_and_others_still_mask(db: str, exporter: SpanExporter) -> None:
    assert get_masking(db, DEFAULT_WORKSPACE, True)["mask_pii"] is True
    state = set_masking(db, DEFAULT_WORKSPACE, False, True)
    assert state["mask_pii"] is False and state["mask_pii_workspace"] is False
    verbatim, other = record(exporter), record(exporter, "ws_other")
    text = stored_text(db, verbatim)
    for secret in SECRETS:
        assert secret in text
    assert all(secret not in stored_text(db, other) for secret in SECRETS)
    # back to the server's default: masked again, from the next span on
    assert set_masking(db, DEFAULT_WORKSPACE, None, True)["mask_pii"] is True
    assert all(secret not in stored_text(db, record(exporter)) for secret in SECRETS)
    assert all(secret in stored_text(db, verbatim) for secret in SECRETS)  # what is stored stays


def test_a_workspace_can_opt_in_where_the_server_stores_verbatim(db: str) -> None:
    ex = SpanExporter([SpanStoreSink(db, 8000, mask_pii, mask_by_default=False)])
    try:
        assert all(secret in stored_text(db, record(ex)) for secret in SECRETS)
        set_masking(db, DEFAULT_WORKSPACE, True, False)
        assert all(secret not in stored_text(db, record(ex)) for secret in SECRETS)
    finally:
        ex.close()


def test_unknown_workspaces_are_refused(db: str) -> None:
    with pytest.raises(NotFound):
        set_masking(db, "ws_nowhere", False, True)
    with pytest.raises(NotFound):
        get_masking(db, "ws_nowhere", True)


def test_a_reader_with_a_masker_never_sees_what_was_stored_verbatim(db: str) -> None:
    ex = SpanExporter([SpanStoreSink(db)])  # no masking at all
    try:
        trace_id = record(ex)
    finally:
        ex.close()
    full = shown_text(get_trace(db, trace_id))
    assert all(secret in full for secret in SECRETS)
    masked = get_trace(db, trace_id, masker=mask_pii)
    page, _ = list_traces(db, TraceFilter(), masker=mask_pii)
    export = b"".join(export_traces(db, TraceFilter(), masker=mask_pii)).decode()
    brief = b"".join(export_traces(db, TraceFilter(), spans=False, masker=mask_pii)).decode()
    for text in (shown_text(masked), shown_text(page), export, brief):
        for secret in SECRETS:
            assert secret not in text
    assert masked["input"].startswith("我是张三，邮箱 <email>") and "<phone>" in page[0]["output"]
    assert "<card-number>" in masked["error"] and "<email>" in masked["spans"][1]["output"]


def test_a_number_cut_by_the_cap_is_masked_whole(db: str) -> None:
    ex = SpanExporter([SpanStoreSink(db, payload_chars=120, masker=mask_pii)])
    tracing.install(ex)
    try:
        with tracing.span("root", input="x" * 110 + " 4111 1111 1111 1111 " + "y" * 100_000) as s:
            pass
        ex.drain()
    finally:
        tracing.install(None)
    stored = get_trace(db, s.trace_hex)["spans"][0]["input"]
    assert "4111" not in stored and "1111" not in stored and stored.endswith("<card-num… [100011 more characters]")
