"""Images (PNG, JPEG, TIFF, BMP, WebP, GIF): their text by OCR with Tesseract, in paragraphs as its layout
analysis finds them. Also OCRs the page images of scanned PDFs (``pdf.py``).

Tesseract is Debian's ``tesseract-ocr`` with one package per language (``tesseract-ocr-chi-sim``,
``tesseract-ocr-eng``; ``make install-system``); option ``ocr_languages`` picks them (default ``chi_sim+eng``).
"""
from __future__ import annotations

import io
import re
from typing import Any

import pytesseract
from PIL import Image, ImageOps, ImageSequence

from temper.knowledge.ingest.common import _CJK, clean, stem
from temper.knowledge.types import Block, ParsedDocument, ParseError

DEFAULT_LANGUAGES = "chi_sim+eng"
_LANGUAGE = re.compile(r"[A-Za-z0-9_]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_PUNCTUATION = frozenset(",.;:!?()[]{}'\"%")


class ImageParser:
    name = "image"
    extensions = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
    media_types = ("image/png", "image/jpeg", "image/tiff", "image/bmp", "image/webp", "image/gif")

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        if not data:
            raise ParseError(f"{filename} is empty")
        languages = ocr_languages(options)
        try:
            image = Image.open(io.BytesIO(data))
            # A TIFF holds one scanned page per frame; other formats' extra frames are animation.
            frames = [frame.copy() for frame in ImageSequence.Iterator(image)] if image.format == "TIFF" else [image]
            blocks: list[Block] = []
            for number, frame in enumerate(frames, 1):
                blocks.extend(ocr_blocks(frame, languages, page=number if len(frames) > 1 else None))
        except Image.DecompressionBombError as e:
            raise ParseError(f"{filename} is too large an image to OCR ({e})") from e
        except OSError as e:  # not an image (UnidentifiedImageError), truncated or corrupt
            raise ParseError(f"{filename} is not a readable image ({e}); save it again as PNG or JPEG") from e
        if not blocks:
            raise ParseError(f"OCR found no text in {filename} (languages {languages})")
        metadata: dict[str, Any] = {"ocr": True, "ocr_languages": languages}
        if len(frames) > 1:
            metadata["pages"] = len(frames)
        return [ParsedDocument(title=stem(filename), blocks=blocks, metadata=metadata)]


def ocr_languages(options: dict[str, Any]) -> str:
    """The Tesseract languages to OCR with (``chi_sim+eng``), each checked to be installed; otherwise a
    ``ParseError`` that names the Debian packages to install."""
    languages = options.get("ocr_languages", DEFAULT_LANGUAGES)
    if not isinstance(languages, str) or not all(map(_LANGUAGE.fullmatch, languages.split("+"))):
        raise ParseError(f"option 'ocr_languages' must be Tesseract language codes joined by '+', such as "
                         f"{DEFAULT_LANGUAGES!r}, not {languages!r}")
    wanted = languages.split("+")
    try:
        installed = set(pytesseract.get_languages())
    except pytesseract.TesseractNotFoundError:
        packages = " ".join(["tesseract-ocr", *map(_package, wanted)])
        raise ParseError(f"OCR needs Tesseract, which is not installed on this server: install the Debian packages "
                         f"{packages} (apt-get install {packages}, or make install-system)") from None
    if missing := [language for language in wanted if language not in installed]:
        packages = " ".join(map(_package, missing))
        raise ParseError(f"the OCR language{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"{'are' if len(missing) > 1 else 'is'} not installed on this server: install the Debian "
                         f"package{'s' if len(missing) > 1 else ''} {packages} (apt-get install {packages})")
    return languages


def ocr_blocks(image: Image.Image, languages: str, page: int | None = None) -> list[Block]:
    """One text block per paragraph Tesseract finds, lines joined as the chunker expects (no space between
    two CJK characters). ``languages`` should come from ``ocr_languages``."""
    try:
        data = pytesseract.image_to_data(_prepared(image), lang=languages, output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractError as e:
        raise ParseError(f"OCR failed: {e.message or e}") from e
    paragraphs: dict[tuple[int, int, int], dict[int, list[str]]] = {}
    for n, word in enumerate(data["text"]):
        if word.strip():
            paragraph = (data["page_num"][n], data["block_num"][n], data["par_num"][n])
            paragraphs.setdefault(paragraph, {}).setdefault(data["line_num"][n], []).append(word.strip())
    blocks = []
    for lines in paragraphs.values():
        if text := clean("\n".join(_join(words) for words in lines.values())):
            blocks.append(Block(text, page=page, metadata={"ocr": True}))
    return blocks


def _prepared(image: Image.Image) -> Image.Image:
    """Upright (camera EXIF orientation) and in a mode Tesseract reads; transparency goes onto white, as a page."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("1", "L", "RGB"):
        return image
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def _join(words: list[str]) -> str:
    """Tesseract splits Chinese into single characters or short words; put spaces only where the text had them."""
    text = words[0]
    for word in words[1:]:
        text += word if _tight(text[-1], word[0]) else " " + word
    return text


def _tight(a: str, b: str) -> bool:
    """No space between two CJK characters, nor between one and punctuation."""
    cjk_a, cjk_b = bool(_CJK_CHAR.match(a)), bool(_CJK_CHAR.match(b))
    return (cjk_a or cjk_b) and (cjk_a or a in _PUNCTUATION) and (cjk_b or b in _PUNCTUATION)


def _package(language: str) -> str:
    """Debian's package for a Tesseract language: chi_sim -> tesseract-ocr-chi-sim."""
    return "tesseract-ocr-" + language.lower().replace("_", "-")
