"""Word (.docx, python-docx): headings from styles or outline levels, lists, tables, core properties."""
from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from typing import Any

import docx
from docx.document import Document
from docx.table import Table
from docx.text.paragraph import Paragraph

from temper.knowledge.ingest.common import check_office, clean, markdown_table, require_blocks, stem
from temper.knowledge.limits import room
from temper.knowledge.types import Block, ParsedDocument, ParseError

# Built-in heading styles by name, English and Chinese ("标题 1"); "Title" / "标题" is the document title.
_HEADING_STYLE = re.compile(r"^(?:heading|标题|標題)\s*([1-9])$", re.I)
_TITLE_STYLES = {"title", "标题", "標題"}
_LIST_STYLE = re.compile(r"^(?:list (?:bullet|number)|列表(?:项目符号|编号))", re.I)
_LIST_STYLE_LEVEL = re.compile(r"^(?:list|列表).*\s([2-9])$", re.I)
_ORDERED_STYLE = re.compile(r"number|编号", re.I)


class DocxParser:
    name = "docx"
    extensions = (".docx",)
    media_types = ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",)

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        check_office(data, filename, "Word", ".docx")
        try:
            document = docx.Document(io.BytesIO(data))
        except Exception as e:  # python-docx raises KeyError/ValueError/BadZipFile/... for broken packages
            raise ParseError(f"{filename} cannot be opened as a Word document ({e}); "
                             "open it in Word and save it again as .docx") from e
        blocks, title = _Walker(document).blocks()
        metadata = _core_properties(document)
        return [ParsedDocument(title=metadata.get("title") or title or stem(filename),
                               blocks=require_blocks(blocks, filename), metadata=metadata)]


class _Walker:
    """Body content in reading order; consecutive list paragraphs are gathered into one ``list`` block."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.formats: dict[tuple[str, str], str] = {}

    def blocks(self) -> tuple[list[Block], str | None]:
        blocks: list[Block] = []
        items: list[str] = []
        counters: dict[tuple[str, int], int] = {}  # (numId, depth) -> items so far
        list_id: str | None = None
        title: str | None = None
        for part in self.document.iter_inner_content():
            if isinstance(part, Paragraph) and not (text := clean(part.text)):
                continue
            if not room(len(text) if isinstance(part, Paragraph) else 0):
                break  # past the document's text budget: the rest is cut
            if isinstance(part, Paragraph) and (num := _numbering(part)):
                depth, ordered = int(num[1]) + _style_depth(part), self._ordered(part, num)
                if items and depth == 0 and num[0] != list_id:  # another list starts right after this one
                    blocks.append(Block("\n".join(items), "list"))
                    items, counters = [], {}
                list_id = list_id if items else num[0]
                counters = {k: c for k, c in counters.items() if k[1] <= depth}
                counters[num[0], depth] = counters.get((num[0], depth), 0) + 1
                items.append("  " * depth + (f"{counters[num[0], depth]}. " if ordered else "- ") + text)
                continue
            if items:
                blocks.append(Block("\n".join(items), "list"))
                items, counters = [], {}
            if isinstance(part, Table):
                table = markdown_table([[cell.text for cell in row.cells] for row in part.rows])
                if not room(len(table)):
                    break
                if table:
                    blocks.append(Block(table, "table"))
            else:
                level, is_title = _heading(part)
                title = title or (text if is_title or level == 1 else None)
                blocks.append(Block(text, "heading", level=level) if level else Block(text))
        if items:
            blocks.append(Block("\n".join(items), "list"))
        return blocks, title

    def _ordered(self, paragraph: Paragraph, num: tuple[str, str]) -> bool:
        """Whether a numbered paragraph counts (decimal, letters, 一二三) rather than shows a bullet."""
        if num not in self.formats:
            try:
                numbering = self.document.part.numbering_part.element
                abstract = numbering.xpath(f'./w:num[@w:numId="{num[0]}"]/w:abstractNumId/@w:val')[0]
                fmt = numbering.xpath(f'./w:abstractNum[@w:abstractNumId="{abstract}"]'
                                      f'/w:lvl[@w:ilvl="{num[1]}"]/w:numFmt/@w:val')
                self.formats[num] = fmt[0] if fmt else "bullet"
            except (IndexError, KeyError, NotImplementedError):  # no numbering part: go by the style name
                self.formats[num] = "decimal" if _ORDERED_STYLE.search(_style_name(paragraph)) else "bullet"
        return self.formats[num] not in ("bullet", "none")


def _style_chain(paragraph: Paragraph) -> list[Any]:
    """The paragraph's own properties, then its style's, then the base styles'."""
    chain: list[Any] = [paragraph._p]
    style = paragraph.style
    while style is not None and len(chain) < 10:
        chain.append(style.element)
        style = style.base_style
    return chain


def _style_name(paragraph: Paragraph) -> str:
    return (paragraph.style.name if paragraph.style is not None else "") or ""


def _numbering(paragraph: Paragraph) -> tuple[str, str] | None:
    """(numId, ilvl) when the paragraph is a list item, from its own properties or its style's."""
    for element in _style_chain(paragraph):
        num_ids = element.xpath("./w:pPr/w:numPr/w:numId/@w:val")
        if num_ids:
            if num_ids[0] == "0":  # numId 0 switches numbering off
                return None
            levels = (paragraph._p.xpath("./w:pPr/w:numPr/w:ilvl/@w:val")
                      or element.xpath("./w:pPr/w:numPr/w:ilvl/@w:val"))
            return num_ids[0], levels[0] if levels else "0"
    return ("style", "0") if _LIST_STYLE.match(_style_name(paragraph)) else None


def _style_depth(paragraph: Paragraph) -> int:
    """Extra depth from the style: a "List Bullet 2" item is indented by its own numbering, not by ``ilvl``."""
    match = _LIST_STYLE_LEVEL.match(_style_name(paragraph))
    return int(match.group(1)) - 1 if match else 0


def _heading(paragraph: Paragraph) -> tuple[int, bool]:
    """(heading level or 0, whether it is the document title) from the style name or the outline level."""
    name = _style_name(paragraph).strip()
    if match := _HEADING_STYLE.match(name):
        return int(match.group(1)), False
    if name.lower() in _TITLE_STYLES:
        return 1, True
    for element in _style_chain(paragraph):
        if levels := element.xpath("./w:pPr/w:outlineLvl/@w:val"):
            level = int(levels[0]) + 1
            return (level, False) if level <= 9 else (0, False)  # outline level 9 is body text
    return 0, False


def _core_properties(document: Document) -> dict[str, Any]:
    props = document.core_properties
    out: dict[str, Any] = {}
    for key in ("title", "author", "subject", "keywords"):
        if value := clean(getattr(props, key) or ""):
            out[key] = value
    for key in ("created", "modified"):
        value: datetime | None = getattr(props, key)
        if value is not None:
            aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            out[key] = aware.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return out
