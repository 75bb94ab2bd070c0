"""Plain text: paragraphs are separated by blank lines."""
from __future__ import annotations

import re
from typing import Any

from temper.knowledge.ingest.common import clean, decode_text, require_blocks, stem
from temper.knowledge.types import Block, ParsedDocument


class PlainTextParser:
    name = "text"
    extensions = (".txt",)
    media_types = ("text/plain",)

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        text = decode_text(data, filename)
        paragraphs = (clean(p) for p in re.split(r"\n[ \t\u3000]*\n", text))
        blocks = [Block(p) for p in paragraphs if p]
        return [ParsedDocument(title=stem(filename), blocks=require_blocks(blocks, filename))]
