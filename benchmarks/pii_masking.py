"""What masking personal data costs per stored payload (``temper.ops.pii.mask_pii``), on 8,000 characters
(TEMPER_TRACE_PAYLOAD_CHARS, the most of one input or output that is stored) of several kinds of text, and on
a typical short gateway call. Each figure is the median of --repeat runs of --number calls, in CPU µs.

    python benchmarks/pii_masking.py
    python benchmarks/pii_masking.py --number 500 --repeat 9
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from temper.ops.pii import mask_pii  # noqa: E402

CHARS = 8000
EN = ("Hi, I ordered on 2024-01-15 (order 20240115-7731) and paid with 4111 1111 1111 1111. Please write to "
      "zhang.san@example.com or call +1 (212) 555-0123 between 9:30 and 17:00; version 3.2.1 did not help. ")
ZH = ("您好，我的手机号是 138 1234 5678，邮箱 li.si@example.cn，身份证号 11010519491231002X。"
      "订单编号 20240115 于 2024 年 1 月 15 日发货，请在 10:30 前联系客服 010-12345678。")


def payloads() -> dict[str, str]:
    rng = random.Random(7)
    chat = orjson.dumps({"model": "m", "messages": [{"role": "system", "content": "背景资料。" * 300},
                                                    {"role": "user", "content": EN * 30}]}).decode()
    vectors = orjson.dumps({"object": "list", "data": [
        {"object": "embedding", "index": i, "embedding": [rng.uniform(-0.1, 0.1) for _ in range(384)]}
        for i in range(2)]}).decode()
    prose = "The quick brown fox jumps over the lazy dog, and nothing in this sentence is personal. "
    return {
        "English, personal data in every sentence": (EN * 50)[:CHARS],
        "Chinese, personal data in every sentence": (ZH * 100)[:CHARS],
        "chat request (JSON), Chinese context + English question": chat[:CHARS],
        "embeddings response (JSON floats)": vectors[:CHARS],
        "English prose, no digits or @": (prose * 100)[:CHARS],
        "short gateway call (request + answer, ~400 chars)": orjson.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "Say hello in one short sentence please."}],
             "max_tokens": 64}).decode() + orjson.dumps(
            {"id": "chatcmpl-1", "object": "chat.completion", "created": 1718000000, "model": "m",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"}}],
             "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}).decode(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--number", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    print("| payload | chars | µs per call (median) |\n| --- | --- | --- |")
    for name, text in payloads().items():
        runs = []
        for _ in range(a.repeat):
            t = time.process_time()
            for _ in range(a.number):
                mask_pii(text)
            runs.append((time.process_time() - t) / a.number * 1e6)
        print(f"| {name} | {len(text):,} | {statistics.median(runs):.0f} |")


if __name__ == "__main__":
    main()
