"""Markdown (CommonMark + tables): headings, paragraphs, whole lists, tables and code as separate blocks."""
from __future__ import annotations

import re
import textwrap
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from temper.knowledge.ingest.common import clean, clean_lines, decode_text, require_blocks, stem
from temper.knowledge.types import Block, ParsedDocument

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_FIELD = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.+?)[ \t]*$", re.M)
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.M)
_KEPT_AS_SOURCE = {"bullet_list_open": "list", "ordered_list_open": "list", "table_open": "table"}


class MarkdownParser:
    name = "markdown"
    extensions = (".md", ".markdown")
    media_types = ("text/markdown", "text/x-markdown")

    def __init__(self) -> None:
        self._md = MarkdownIt("commonmark").enable(["table", "strikethrough"])

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        text = decode_text(data, filename)
        front: dict[str, str] = {}
        if match := _FRONT_MATTER.match(text):
            # YAML front matter (static-site generators): simple "key: value" fields become metadata.
            front = {k: v.strip("'\"") for k, v in _FRONT_FIELD.findall(match.group(1))}
            text = "\n" * match.group(0).count("\n") + text[match.end():]  # keep line numbers for token maps
        blocks = require_blocks(self._blocks(text), filename)
        h1 = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), None)
        title = front.get("title") or h1 or stem(filename)
        return [ParsedDocument(title=title, blocks=blocks, metadata={"front_matter": front} if front else {})]

    def _blocks(self, text: str) -> list[Block]:
        tokens = self._md.parse(text)
        lines = text.split("\n")
        blocks: list[Block] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if token.type == "heading_open":
                blocks.append(Block(_inline_text(tokens[i + 1]), "heading", level=int(token.tag[1])))
            elif token.type == "paragraph_open":
                blocks.append(Block(_inline_text(tokens[i + 1])))
            elif token.type in _KEPT_AS_SOURCE and token.map:
                # A whole list or table is one block, kept as its Markdown source (minus blockquote markers).
                source = _QUOTE_PREFIX.sub("", "\n".join(lines[token.map[0]:token.map[1]]))
                blocks.append(Block(clean_lines(textwrap.dedent(source)), _KEPT_AS_SOURCE[token.type]))
                i = _closing(tokens, i)
            elif token.type in ("fence", "code_block"):
                language = token.info.strip().split(" ")[0]
                blocks.append(Block(clean_lines(token.content), "code",
                                    metadata={"language": language} if language else {}))
            elif token.type == "html_block":
                blocks.append(Block(clean(re.sub(r"<[^>]*>", " ", token.content))))
            i += 1
        return [b for b in blocks if b.text]


def _closing(tokens: list[Token], i: int) -> int:
    close = tokens[i].type.replace("_open", "_close")
    return next(j for j in range(i + 1, len(tokens)) if tokens[j].type == close and tokens[j].level == tokens[i].level)


def _inline_text(inline: Token) -> str:
    """The plain text of an inline run: markup dropped, link text and image alt text kept."""
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "image"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return clean("".join(parts))
