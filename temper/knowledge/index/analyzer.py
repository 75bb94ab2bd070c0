"""Keyword-search terms for Chinese and English text, shared by documents and queries.

CJK runs are segmented with jieba's search mode (``cut_for_search``): besides the dictionary words it emits
their sub-words (北京大学 → 北京, 大学, 北京大学), so a query for 大学 still finds a chunk that says 北京大学;
plain ``cut`` lost those matches (recall@1 on a 20-query hand-made set: 1.00 vs 0.75). The HMM guesser for
unknown words is off: it made no recall difference there, costs 40% more time, and its guesses depend on the
surrounding text, so a query and a document could segment the same name differently. Latin, digit and other-script runs are
lower-cased words after NFKC folding (full-width ＡＢＣ１２ → abc12), with possessives stripped and a tiny
plural stemmer. Stop words of both languages and punctuation are dropped.
"""
from __future__ import annotations

import logging
import re
import tempfile
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import jieba

from temper.knowledge.types import IndexedChunk

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A CJK run, or a word of letters/digits of any other script (apostrophes kept inside, for possessives).
_RUN = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+(?:['’][^\W_{_CJK}]+)*)")
MAX_TERM_CHARS = 64  # longer "words" are hashes, base64 or URLs: noise for keyword search

STOP_WORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have he her his how i if in
    into is it its me my no not of on or our she so than that the their them then there these they this those
    to too us was we were what when where which who whom why will with would you your
    的 了 是 在 和 与 及 或 也 就 都 而 之 其 于 吗 呢 吧 啊 呀 着 过 把 被 这 那 这个 那个 这些 那些 一个
    我 你 他 她 它 我们 你们 他们 什么 怎么 怎样 如何 为什么 哪些 哪个""".split())

_jieba_lock = threading.Lock()
_jieba_ready = False


def warm() -> None:
    """Load jieba's dictionary now (~0.8 s) rather than in the first request or job with Chinese text."""
    _jieba()


def _jieba() -> jieba.Tokenizer:
    """The shared jieba tokenizer, initialised once: its dictionary cache goes to a temper directory under the
    system temp dir, and its start-up chatter on stderr is silenced."""
    global _jieba_ready
    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                cache = Path(tempfile.gettempdir()) / "temper-jieba"
                cache.mkdir(parents=True, exist_ok=True)
                jieba.dt.tmp_dir = str(cache)
                jieba.dt.initialize()
                _jieba_ready = True
    return jieba.dt


def _stem(word: str) -> str:
    """Possessive and plural folding: user's → user, policies → policy, boxes → box, refunds → refund."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    word = word.replace("'", "").replace("’", "")
    n = len(word)
    if n <= 3 or not word.isascii() or word[-1] != "s":
        return word
    if word.endswith("ies") and n > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    return word[:-1]


def terms(text: str) -> list[str]:
    """The terms of ``text`` in order (repeats kept, so callers can count term frequencies)."""
    text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    tok = None
    for cjk, word in _RUN.findall(text):
        if cjk:
            tok = tok or _jieba()
            out.extend(t for t in tok.cut_for_search(cjk, HMM=False) if t not in STOP_WORDS)
        else:
            word = _stem(word.lower())
            if word and word not in STOP_WORDS and len(word) <= MAX_TERM_CHARS:
                out.append(word)
    return out


# --- BM25 shared by every backend ------------------------------------------------------------------------

K1 = 1.2
B = 0.75
FIELD_BOOSTS = {"keywords": 3.0, "questions": 2.0, "summary": 1.5}  # enrichment fields; others count 1.0


def term_weights(chunk: IndexedChunk, term_id: Callable[[str], int]) -> tuple[dict[int, float], int]:
    """Pooled term frequencies by term id — an enrichment field's occurrence counts ``FIELD_BOOSTS[name]`` times
    one in the body (BM25F-style) — and the chunk's keyword length (every term once)."""
    tf: dict[int, float] = defaultdict(float)
    body = terms(chunk.text)
    for t in body:
        tf[term_id(t)] += 1.0
    dl = len(body)
    for name, value in chunk.fields.items():
        boost = FIELD_BOOSTS.get(name, 1.0)
        field_terms = terms(value) if value else []
        for t in field_terms:
            tf[term_id(t)] += boost
        dl += len(field_terms)
    return tf, dl


def analysed_batch(chunks: list[IndexedChunk], dim: int, term_id: Callable[[str], int]
                   ) -> list[tuple[IndexedChunk, dict[int, float], int]]:
    """What every backend's upsert starts with: the batch by id (a repeated id: the last one wins), vector sizes
    checked, and each chunk's term weights and keyword length."""
    batch = {c.id: c for c in chunks}
    for c in batch.values():
        if c.vector is not None and len(c.vector) != dim:
            raise ValueError(f"chunk {c.id}: vector has {len(c.vector)} dimensions, the index {dim}")
    return [(c, *term_weights(c, term_id)) for c in batch.values()]
