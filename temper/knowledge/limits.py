"""Bounds on what one document may cost: the text it yields, its title, its metadata, how far an archive
(DOCX, XLSX, PPTX) may expand; and the guard an ingestion job sets around parsing and chunking, so that a
cancel stops them between steps and a parser stops reading once the document's text budget is spent.

Text past the budget, long titles and metadata values are cut, with a warning recorded on the document
(``warnings`` in its metadata): most of a long book is still worth searching. An archive that would expand
past its bound fails the document: it cannot be half-opened, and it is far more often a bomb than a book.
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from temper.knowledge.types import ParsedDocument, ParseError

if TYPE_CHECKING:
    from temper.config import Settings

WARNINGS = "warnings"  # the document metadata key that lists what was cut
_MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    text_chars: int = 10_000_000  # extracted text per document
    title_chars: int = 500  # a document's (or a part's) title; also each metadata string value
    metadata_bytes: int = 8 * 1024  # a document's metadata, as JSON
    unzipped_bytes: int = 100 * _MB  # an Office package's members, uncompressed

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(text_chars=settings.kb_max_text_chars, title_chars=settings.kb_max_title_chars,
                   metadata_bytes=settings.kb_max_metadata_kb * 1024, unzipped_bytes=settings.kb_max_unzipped_mb * _MB)


def clip(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= chars else text[:max(chars - 1, 0)] + "…"


def metadata_size(metadata: dict[str, Any]) -> int:
    return len(orjson.dumps(metadata, option=orjson.OPT_NON_STR_KEYS, default=str))


def bounded_metadata(metadata: dict[str, Any], limits: Limits) -> tuple[dict[str, Any], list[str]]:
    """Metadata within the limits: strings cut to the title length, and, in order, each field left out that
    no longer fits; and what was done, for the document's warnings."""
    out: dict[str, Any] = {}
    cut: list[str] = []
    left_out: list[str] = []
    size = 2
    for key, value in metadata.items():
        if isinstance(value, str) and len(value) > limits.title_chars:
            value = clip(value, limits.title_chars)
            cut.append(str(key))
        n = metadata_size({key: value})
        if size + n > limits.metadata_bytes:
            left_out.append(str(key))
            continue
        out[key] = value
        size += n
    warnings = []
    if cut:
        warnings.append(f"metadata values cut to {limits.title_chars} characters: {_names(cut)}")
    if left_out:
        warnings.append(f"metadata left out (over {limits.metadata_bytes // 1024} KiB): {_names(left_out)}")
    return out, warnings


def _names(keys: list[str]) -> str:
    shown = ", ".join(clip(k, 40) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def cap_text(parts: list[ParsedDocument], chars: int) -> bool:
    """Keep the first ``chars`` characters of the parts' blocks, in reading order (cut in place); whether
    anything was cut."""
    left = chars
    for i, part in enumerate(parts):
        for j, block in enumerate(part.blocks):
            if len(block.text) > left:
                block.text = block.text[:left]
                del part.blocks[j + 1:]
                del parts[i + 1:]
                return True
            left -= len(block.text)
    return False


# --- the guard around one document's parsing and chunking -----------------------------------------------------

class Stopped(Exception):
    """Raised by ``checkpoint`` inside parsing or chunking: the job doing it is stopping (cancelled)."""


@dataclass
class Guard:
    limits: Limits
    stopped: Callable[[], bool]
    chars: int = 0  # kept by parsers so far
    cut: bool = False  # a parser stopped reading at the text budget (or a text file was cut there)


_guard: ContextVar[Guard | None] = ContextVar("temper_ingest_guard", default=None)


@contextmanager
def guarded(limits: Limits, stopped: Callable[[], bool]) -> Iterator[Guard]:
    """Parsing and chunking in this context stop (``Stopped``) once ``stopped()`` says so, and parsers
    stop reading past ``limits.text_chars``."""
    guard = Guard(limits, stopped)
    token = _guard.set(guard)
    try:
        yield guard
    finally:
        _guard.reset(token)


def current() -> Limits:
    """The limits of the document being ingested here (the defaults outside an ingestion job)."""
    guard = _guard.get()
    return guard.limits if guard is not None else Limits()


def checkpoint() -> None:
    """Called by parsers and the chunker between steps: raises ``Stopped`` once the job is stopping."""
    guard = _guard.get()
    if guard is not None and guard.stopped():
        raise Stopped()


def room(chars: int) -> bool:
    """Asked by a parser's loop before it keeps ``chars`` more characters: False once the document's text
    budget is spent (drop them and stop reading: the rest is cut; the text that crossed the budget is cut
    exactly after parsing, ``cap_text``). Also a ``checkpoint``."""
    guard = _guard.get()
    if guard is None:
        return True
    checkpoint()
    if guard.chars >= guard.limits.text_chars:
        guard.cut = True
        return False
    guard.chars += chars
    return True


def budget_text(text: str) -> str:
    """A decoded text file cut at the text budget before it is parsed (its markup only makes it longer
    than the text it yields)."""
    limit = current().text_chars
    if len(text) <= limit:
        return text
    guard = _guard.get()
    if guard is not None:
        guard.cut = True
    return text[:limit]


def check_unzipped(data: bytes, filename: str) -> None:
    """Refuse an Office package whose members would expand past the limit, from the sizes its directory
    declares (``zipfile`` never reads a member past its declared size), before anything is expanded."""
    limit = current().unzipped_bytes
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            total = sum(member.file_size for member in package.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a readable package: the parser says so in its own words
    if total > limit:
        raise ParseError(f"{filename} expands to {total / _MB:,.0f} MiB when unzipped, more than the "
                         f"{limit / _MB:,.0f} MiB a document may (TEMPER_KB_MAX_UNZIPPED_MB); split it or "
                         "remove large embedded media")
