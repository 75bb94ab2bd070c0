"""OCR of images and scanned PDF pages with Debian's Tesseract, on images rendered here with a CJK font.

OCR output is noisy, so the tests look for key words, not exact strings. Without Tesseract or the Noto CJK font
(``make install-system install-browser``) they skip on a developer's machine and fail in CI (CI is set).
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from temper.knowledge.ingest import ParserRegistry, builtin_parsers
from temper.knowledge.ingest.image import ImageParser
from temper.knowledge.ingest.pdf import PdfParser
from temper.knowledge.types import ParsedDocument, ParseError
from tests.knowledge.test_parsers import make_pdf, pdf_bytes

FONT = next(Path("/usr/share/fonts").rglob("NotoSansCJK-Regular.ttc"), None)
pytestmark = pytest.mark.skipif((shutil.which("tesseract") is None or FONT is None) and not os.environ.get("CI"),
                                reason="needs tesseract-ocr, tesseract-ocr-chi-sim and fonts-noto-cjk "
                                       "(make install-system install-browser)")

INVOICE = ["知识库支持扫描文件的文字识别。", "Temper reads scanned invoices and receipts."]
TERMS = ["第二页：付款条件为三十天。", "Payment is due within thirty days."]


def render(lines: list[str], mode: str = "RGB", background: str | tuple[int, ...] = "white") -> Image.Image:
    """Lines of 40 px text, as a page scanned at a readable resolution."""
    image = Image.new(mode, (1100, 90 * len(lines) + 60), background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 40)
    for n, line in enumerate(lines):
        draw.text((40, 40 + 90 * n), line, font=font, fill="black")
    return image


def encoded(image: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def text_of(doc: ParsedDocument) -> str:
    return "\n".join(b.text for b in doc.blocks)


def assert_reads(text: str, *words: str) -> None:
    missing = [w for w in words if w not in text]
    assert not missing, f"OCR missed {missing} in {text!r}"


def test_image_chinese_and_english_paragraphs() -> None:
    [doc] = ImageParser().parse(encoded(render(INVOICE), "PNG"), "scans/发票.png", {})
    assert doc.title == "发票"
    assert doc.metadata == {"ocr": True, "ocr_languages": "chi_sim+eng"}
    assert_reads(text_of(doc), "知识库", "扫描", "识别", "Temper", "scanned invoices")
    assert all(b.kind == "text" and b.metadata == {"ocr": True} and b.page is None for b in doc.blocks)
    assert all("\n" not in b.text and "知 识" not in b.text for b in doc.blocks)  # no spaces inside Chinese


def test_registry_and_formats() -> None:
    registry = ParserRegistry(builtin_parsers())
    assert {registry.for_file(name).name for name in ("a.PNG", "b.jpeg", "c.tif", "d.webp", "e.gif", "f.bmp")} \
        == {"image"}
    assert registry.for_file("upload", "image/jpeg").name == "image"
    # A photo-like JPEG, a transparent PNG (text on nothing: read as on paper) and English only.
    [jpeg] = ImageParser().parse(encoded(render(TERMS[1:]), "JPEG", quality=80), "terms.jpg", {"ocr_languages": "eng"})
    assert_reads(text_of(jpeg), "Payment", "thirty days")
    assert jpeg.metadata["ocr_languages"] == "eng"
    clear = render(TERMS[:1], "RGBA", (0, 0, 0, 0))
    assert_reads(text_of(ImageParser().parse(encoded(clear, "PNG"), "clear.png", {})[0]), "付款条件")


def test_multipage_tiff_keeps_page_numbers() -> None:
    first, second = render(INVOICE[:1]), render(TERMS[1:])
    data = encoded(first, "TIFF", save_all=True, append_images=[second], compression="tiff_lzw")
    [doc] = ImageParser().parse(data, "fax.tiff", {})
    assert doc.metadata["pages"] == 2
    by_page = {page: " ".join(b.text for b in doc.blocks if b.page == page) for page in (1, 2)}
    assert_reads(by_page[1], "扫描")
    assert_reads(by_page[2], "Payment")


def test_image_errors_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ParseError, match="not a readable image"):
        ImageParser().parse(b"GIF89a but not really", "x.gif", {})
    with pytest.raises(ParseError, match="OCR found no text in blank.png"):
        ImageParser().parse(encoded(Image.new("L", (400, 300), 255), "PNG"), "blank.png", {})
    with pytest.raises(ParseError, match="is empty"):
        ImageParser().parse(b"", "e.png", {})
    with pytest.raises(ParseError, match="option 'ocr_languages' must be Tesseract language codes"):
        ImageParser().parse(b"x", "a.png", {"ocr_languages": "chi sim; rm -rf"})
    with pytest.raises(ParseError, match=r"the OCR language zzz_qq is not installed on this server: install the "
                                         r"Debian package tesseract-ocr-zzz-qq"):
        ImageParser().parse(b"x", "a.png", {"ocr_languages": "eng+zzz_qq"})
    monkeypatch.setattr("pytesseract.pytesseract.tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(ParseError, match=r"OCR needs Tesseract, which is not installed on this server: install the "
                                         r"Debian packages tesseract-ocr tesseract-ocr-chi-sim tesseract-ocr-eng"):
        ImageParser().parse(encoded(render(INVOICE), "PNG"), "a.png", {})


def scanned_pdf(*pages: Image.Image) -> bytes:
    """A PDF whose pages are only images, as a scanner writes them (Pillow's PDF writer: one image per page)."""
    return encoded(pages[0].convert("RGB"), "PDF", resolution=150, save_all=True,
                   append_images=[p.convert("RGB") for p in pages[1:]])


def test_scanned_pages_are_ocrd_in_place() -> None:
    """Page 1 has a text layer, page 2 is a scan, page 3 is blank: OCR fills page 2, page 3 stays listed."""
    writer = make_pdf([[("en", 14, "Contract Summary"), ("en", 11, "The parties agree to the terms below.")], []])
    writer.insert_page(PdfReader(io.BytesIO(scanned_pdf(render(TERMS)))).pages[0], 1)
    [doc] = PdfParser().parse(pdf_bytes(writer), "contract.pdf", {})
    assert doc.metadata == {"pages": 3, "pages_without_text": [3], "ocr_pages": [2]}
    assert [b.text for b in doc.blocks if b.page == 1] == ["Contract Summary", "The parties agree to the terms below."]
    scanned = [b for b in doc.blocks if b.page == 2]
    assert scanned and all(b.metadata == {"ocr": True} for b in scanned)
    assert_reads(" ".join(b.text for b in scanned), "付款条件", "Payment", "thirty days")
    assert doc.title == "Contract Summary"


def test_fully_scanned_pdf_and_missing_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    data = scanned_pdf(render(INVOICE), render(TERMS))
    [doc] = PdfParser().parse(data, "scan.pdf", {})
    assert doc.metadata == {"pages": 2, "pages_without_text": [], "ocr_pages": [1, 2]}
    assert sorted({b.page for b in doc.blocks}) == [1, 2]
    assert_reads(doc.title, "知识库")
    assert_reads(text_of(doc), "Temper", "付款条件")

    monkeypatch.setattr("pytesseract.pytesseract.tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(ParseError, match=r"scan.pdf has no text layer on any of its 2 pages and OCR is not available: "
                                         r"OCR needs Tesseract, .* install the Debian packages tesseract-ocr "):
        PdfParser().parse(data, "scan.pdf", {})
    mixed = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(make_pdf([[("en", 11, "Cover page.")]])))))
    mixed.add_page(PdfReader(io.BytesIO(data)).pages[0])
    [doc] = PdfParser().parse(pdf_bytes(mixed), "mixed.pdf", {})
    assert (doc.metadata["pages_without_text"], [b.text for b in doc.blocks]) == ([2], ["Cover page."])
    assert "install the Debian packages tesseract-ocr" in doc.metadata["ocr_error"]
