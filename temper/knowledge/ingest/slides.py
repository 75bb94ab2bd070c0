"""PowerPoint (.pptx, python-pptx): a heading per slide title, text frames and tables in reading order,
speaker notes as blocks marked ``{"notes": True}``; ``page`` is the slide number."""
from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER
from pptx.shapes.base import BaseShape
from pptx.slide import Slide

from temper.knowledge.ingest.common import check_office, clean, markdown_table, require_blocks, stem
from temper.knowledge.limits import room
from temper.knowledge.types import Block, ParsedDocument, ParseError

_TITLES = {PP_PLACEHOLDER.TITLE, PP_PLACEHOLDER.CENTER_TITLE, PP_PLACEHOLDER.VERTICAL_TITLE}
_BULLETED = {PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT, PP_PLACEHOLDER.VERTICAL_BODY}


class PptxParser:
    name = "pptx"
    extensions = (".pptx",)
    media_types = ("application/vnd.openxmlformats-officedocument.presentationml.presentation",)

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        check_office(data, filename, "PowerPoint", ".pptx")
        try:
            deck = Presentation(io.BytesIO(data))
        except Exception as e:  # python-pptx raises KeyError/ValueError/BadZipFile/... for broken packages
            raise ParseError(f"{filename} cannot be opened as a PowerPoint deck ({e}); "
                             "open it in PowerPoint and save it again as .pptx") from e
        blocks: list[Block] = []
        for number, slide in enumerate(deck.slides, 1):
            found = _slide_blocks(slide, number)
            if not room(sum(len(b.text) for b in found)):
                break  # past the document's text budget: the rest is cut
            blocks += found
        require_blocks(blocks, filename)
        props = deck.core_properties
        metadata: dict[str, Any] = {"slides": len(deck.slides)}
        if author := clean(props.author or ""):
            metadata["author"] = author
        first_title = next((b.text for b in blocks if b.kind == "heading"), None)
        title = clean(props.title or "") or first_title or stem(filename)
        return [ParsedDocument(title=title, blocks=blocks, metadata=metadata)]


def _slide_blocks(slide: Slide, page: int) -> list[Block]:
    blocks: list[Block] = []
    title_shape = slide.shapes.title
    if title_shape is not None and (title := clean(title_shape.text_frame.text)):
        blocks.append(Block(title, "heading", level=1, page=page))
    for shape in _reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if shape.has_text_frame:
            paragraphs = [(p.level, text) for p in shape.text_frame.paragraphs if (text := clean(p.text))]
            if shape.is_placeholder and shape.placeholder_format.type in _BULLETED and len(paragraphs) > 1:
                blocks.append(Block("\n".join("  " * level + "- " + text for level, text in paragraphs), "list",
                                    page=page))
            elif paragraphs:
                blocks.append(Block("\n".join(text for _, text in paragraphs), page=page))
        elif shape.has_table:
            rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
            if table := markdown_table(rows):
                blocks.append(Block(table, "table", page=page))
    if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame):
        if text := clean(notes.text):
            blocks.append(Block(text, page=page, metadata={"notes": True}))
    return blocks


def _reading_order(shapes: Any) -> Iterator[BaseShape]:
    """Shapes top to bottom, then left to right (the XML order is the z-order); groups are opened."""
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _reading_order(shape.shapes)
        else:
            yield shape
