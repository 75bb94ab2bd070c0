"""PDF (pypdf): the text layer page by page, split into paragraphs; headings from the document outline; pages
without a text layer (scans) OCR'd from their images when Tesseract is installed (``image.py``)."""
from __future__ import annotations

import io
import re
import unicodedata
from typing import Any

from PIL import Image
from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError
from pypdf.generic import Destination

from temper.knowledge.ingest.common import clean, require_blocks
from temper.knowledge.ingest.image import ocr_blocks, ocr_languages
from temper.knowledge.limits import room
from temper.knowledge.types import Block, ParsedDocument, ParseError

_HYPHENATED = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_SHORT_LINE = 0.7  # a line narrower than this share of the page's full lines ends a paragraph
# What decoding a page image can raise on a damaged or exotic one (JBIG2 without jbig2dec, say): that page
# stays unread, the rest of the document does not fail.
_IMAGE_ERRORS = (PdfReadError, DependencyError, NotImplementedError, OSError, ValueError, KeyError, TypeError,
                 Image.DecompressionBombError, ParseError)


class PdfParser:
    name = "pdf"
    extensions = (".pdf",)
    media_types = ("application/pdf",)

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        reader = _open(data, filename, options.get("password", ""))
        try:
            headings = _outline_headings(reader)
            pages: list[str] = []
            for page in reader.pages:
                text = page.extract_text() or ""
                if not room(len(text)):
                    break  # past the document's text budget: the pages after are cut
                pages.append(text)
        except FileNotDecryptedError as e:
            raise ParseError(f"{filename} is password-protected: {e}") from e
        except (PdfReadError, ValueError, KeyError, TypeError) as e:
            raise ParseError(f"{filename} is a damaged PDF ({e}); repair or re-export it and upload again") from e
        if not pages:
            raise ParseError(f"{filename} has no pages")
        scanned = [n for n, text in enumerate(pages, 1) if not text.strip()]
        ocr, ocr_error = _ocr_pages(reader, scanned, options)
        without_text = [n for n in scanned if n not in ocr]
        if len(without_text) == len(pages):
            reason = f"OCR is not available: {ocr_error}" if ocr_error else \
                "OCR found no text in its page images (a blank or unreadable scan?)"
            raise ParseError(f"{filename} has no text layer on any of its {len(pages)} pages and {reason}")
        blocks: list[Block] = []
        for number, text in enumerate(pages, 1):
            blocks.extend(ocr.get(number) or _page_blocks(text, number, headings.get(number - 1, {})))
        require_blocks(blocks, filename)
        info = reader.metadata or {}
        texts = ["\n".join(b.text for b in ocr[n]) if n in ocr else text for n, text in enumerate(pages, 1)]
        first_line = next(line for text in texts for line in text.split("\n") if line.strip())
        title = clean(str(info.get("/Title") or "")) or clean(first_line)[:200]
        metadata: dict[str, Any] = {"pages": len(pages), "pages_without_text": without_text}
        if ocr:
            metadata["ocr_pages"] = sorted(ocr)
        if ocr_error:
            metadata["ocr_error"] = ocr_error
        if author := clean(str(info.get("/Author") or "")):
            metadata["author"] = author
        return [ParsedDocument(title=title, blocks=blocks, metadata=metadata)]


def _open(data: bytes, filename: str, password: str) -> PdfReader:
    if not data.strip():
        raise ParseError(f"{filename} is empty")
    if b"%PDF-" not in data[:1024]:
        raise ParseError(f"{filename} is not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(password):
            hint = "the password given is wrong" if password else "give its password (option 'password')"
            raise ParseError(f"{filename} is password-protected: {hint}, or upload an unprotected copy")
    except DependencyError as e:  # AES needs the optional 'cryptography' package
        raise ParseError(f"{filename} is encrypted with a cipher this server cannot open ({e})") from e
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        raise ParseError(f"{filename} is a damaged PDF ({e}); repair or re-export it and upload again") from e
    return reader


def _ocr_pages(reader: PdfReader, numbers: list[int], options: dict[str, Any]
               ) -> tuple[dict[int, list[Block]], str | None]:
    """OCR blocks of the pages ``numbers`` (1-based) that have images and yield text, and why OCR could not run
    (Tesseract or a language missing) when one of them needed it."""
    pages = {n: reader.pages[n - 1] for n in numbers}
    pages = {n: page for n, page in pages.items() if _has_images(page)}
    if not pages:
        return {}, None
    try:
        languages = ocr_languages(options)
    except ParseError as e:
        return {}, str(e)
    read: dict[int, list[Block]] = {}
    for n, page in pages.items():
        if not room(0):  # seconds a page: stop when cancelled, or once the text budget is spent
            break
        if blocks := _ocr_page(page, n, languages):
            read[n] = blocks
            room(sum(len(b.text) for b in blocks))
    return read, None


def _has_images(page: PageObject) -> bool:
    try:
        return len(page.images) > 0
    except _IMAGE_ERRORS:
        return False


def _ocr_page(page: PageObject, number: int, languages: str) -> list[Block]:
    """A scanned page is usually one image of the whole page; several are read in the order the page lists them."""
    blocks: list[Block] = []
    for index in range(len(page.images)):
        try:
            blocks.extend(ocr_blocks(page.images[index].image, languages, page=number))
        except _IMAGE_ERRORS:
            continue
    return blocks


def _outline_headings(reader: PdfReader) -> dict[int, dict[str, int]]:
    """Outline (bookmark) titles by 0-based page: normalised title -> heading level."""
    out: dict[int, dict[str, int]] = {}

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
            elif isinstance(item, Destination) and (page := reader.get_destination_page_number(item)) is not None:
                out.setdefault(page, {}).setdefault(_key(item.title or ""), min(level, 6))

    walk(reader.outline, 1)
    return out


def _key(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


def _width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def _page_blocks(text: str, page: int, headings: dict[str, int]) -> list[Block]:
    """Paragraphs end at blank lines and after short lines (the last line of a paragraph rarely fills the
    measure); a line that matches an outline entry of this page is a heading."""
    lines = [line.strip() for line in _HYPHENATED.sub("", text).split("\n")]
    widths = sorted(_width(line) for line in lines if line)
    full = widths[min(len(widths) - 1, int(0.9 * len(widths)))] if widths else 0  # a full line, not an outlier
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if joined := clean("\n".join(paragraph)):
            blocks.append(Block(joined, page=page))
        paragraph.clear()

    for line in lines:
        if line and (level := headings.get(_key(line))):
            flush()
            blocks.append(Block(clean(line), "heading", level=level, page=page))
            continue
        if line:
            paragraph.append(line)
        if not line or _width(line) < _SHORT_LINE * full:
            flush()
    flush()
    return blocks
