"""Helpers the parsers share: decoding text, cleaning whitespace, rendering tables, actionable errors."""
from __future__ import annotations

import re

import charset_normalizer

from temper.knowledge.limits import budget_text, check_unzipped
from temper.knowledge.types import Block, ParseError

_CJK = "\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_BREAK_IN_CJK = re.compile(f"(?<=[{_CJK}])[ \t]*\n\\s*(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\xad"))
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def clean(text: str) -> str:
    """One paragraph on one line: whitespace runs become one space, and a line break between two CJK
    characters disappears (CJK has no spaces between words, so a wrapped line joins without one)."""
    text = _BREAK_IN_CJK.sub("", text.translate(_INVISIBLE))
    return _SPACES.sub(" ", text).strip()


def clean_lines(text: str) -> str:
    """Code and tables: keep the lines, drop trailing spaces and the blank lines around them."""
    lines = [line.rstrip() for line in text.translate(_INVISIBLE).replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def stem(filename: str) -> str:
    name = re.split(r"[\\/]", filename)[-1]
    return name.rsplit(".", 1)[0] if "." in name.strip(".") else name


def decode_text(data: bytes, filename: str) -> str:
    """Decode a text file: a BOM wins, then strict UTF-8, then GB18030 when every non-ASCII character is
    common Simplified Chinese (GB2312; Western legacy bytes decode to rare GBK-only characters, so they
    fail this), then charset-normalizer's guess. Cut at the document's text budget (``limits``)."""
    if not data.strip():
        raise ParseError(f"{filename} is empty")
    text = _decode(data)
    if text is None or "\x00" in text:
        raise ParseError(f"{filename} does not look like text (binary data or an unknown encoding); "
                         "save it as UTF-8 text and upload again")
    return budget_text(text.replace("\r\n", "\n").replace("\r", "\n"))


def _decode(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    for attempt in (_utf8, _gb2312_range):
        text = attempt(data)
        if text is not None:
            return text
    best = charset_normalizer.from_bytes(data).best()
    return str(best) if best is not None else None


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _gb2312_range(data: bytes) -> str | None:
    try:
        text = data.decode("gb18030")
        text.encode("gb2312")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return None
    return text


def check_office(data: bytes, filename: str, kind: str, extension: str) -> None:
    """Turn the usual wrong inputs for an Office Open XML file into a message that says what to do; refuse
    one that would expand past the limit before anything is expanded."""
    if not data:
        raise ParseError(f"{filename} is empty")
    if data.startswith(_OLE):
        raise ParseError(f"{filename} is a legacy binary Office file (.doc/.xls/.ppt) or a password-protected "
                         f"one; save it as {extension} without a password and upload it again")
    if not data.startswith(b"PK"):
        raise ParseError(f"{filename} is not a {kind} ({extension}) file: it is not a zip package")
    check_unzipped(data, filename)


def require_blocks(blocks: list[Block], filename: str) -> list[Block]:
    if not blocks:
        raise ParseError(f"{filename} contains no text")
    return blocks


def markdown_table(rows: list[list[str]]) -> str:
    """Rows of cell texts as a Markdown table; the first row is the header. Empty rows are dropped; no rows
    at all gives ``""``."""
    rows = [cells for cells in ([clean(cell).replace("|", "\\|") for cell in row] for row in rows) if any(cells)]
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)
