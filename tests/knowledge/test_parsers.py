"""Knowledge-base parsers on small real files that each test builds with the format's own library."""
from __future__ import annotations

import datetime as dt
import io
from typing import Any

import docx
import openpyxl
import pluggy
import pytest
from docx.enum.style import WD_STYLE_TYPE
from pptx import Presentation
from pptx.util import Inches
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject, TextStringObject

from temper import hookspecs
from temper.config import Settings
from temper.knowledge.ingest import ParserRegistry, builtin, builtin_parsers
from temper.knowledge.ingest.markdown import MarkdownParser
from temper.knowledge.ingest.pdf import PdfParser
from temper.knowledge.ingest.plaintext import PlainTextParser
from temper.knowledge.ingest.records import CsvParser, XlsxParser
from temper.knowledge.ingest.slides import PptxParser
from temper.knowledge.ingest.web import HtmlParser
from temper.knowledge.ingest.word import DocxParser
from temper.knowledge.types import Block, ParsedDocument, ParseError


def kinds(doc: ParsedDocument) -> list[tuple[str, str]]:
    return [(b.kind, b.text) for b in doc.blocks]


# ---- registry and plugin hook ------------------------------------------------------------------------

def test_registry_picks_parser_by_extension_then_media_type() -> None:
    registry = ParserRegistry(builtin_parsers())
    assert registry.for_file("年报 2024.PDF").name == "pdf"
    assert registry.for_file("dir\\notes.markdown").name == "markdown"
    assert registry.for_file("download", "text/html; charset=utf-8").name == "html"
    assert {".txt", ".md", ".html", ".pdf", ".docx", ".pptx", ".csv", ".tsv", ".xlsx"} <= set(registry.extensions())
    with pytest.raises(ParseError, match=r"unsupported file type; supported extensions: .*\.docx.*\.xlsx"):
        registry.for_file("archive.zip", "application/zip")


def test_registry_refuses_a_second_claim() -> None:
    class Other:
        name = "other-pdf"
        extensions = (".pdf",)
        media_types = ()

        def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
            return []

    with pytest.raises(RuntimeError, match=r"'pdf' and 'other-pdf' both claim the extension '.pdf'"):
        ParserRegistry([PdfParser(), Other()])
    with pytest.raises(RuntimeError, match="both claim the name 'pdf'"):
        ParserRegistry([PdfParser(), PdfParser()])


def test_builtins_register_through_the_plugin_hook() -> None:
    pm = pluggy.PluginManager("temper")
    pm.add_hookspecs(hookspecs)
    pm.register(builtin)
    parsers = [p for batch in pm.hook.register_parsers(settings=Settings()) for p in batch]
    assert sorted(p.name for p in parsers) == ["audio", "csv", "docx", "html", "image", "markdown", "pdf", "pptx",
                                               "text", "xlsx"]


# ---- plain text and Markdown ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "gb18030"])
def test_text_decodes_chinese_in_common_encodings(encoding: str) -> None:
    text = "第一段：知识库\n  支持中文。\n\nSecond   paragraph\nin English.\n"
    [doc] = PlainTextParser().parse(text.encode(encoding), "notes/说明.txt", {})
    assert doc.title == "说明"
    assert kinds(doc) == [("text", "第一段：知识库支持中文。"), ("text", "Second paragraph in English.")]


def test_text_errors_say_what_is_wrong() -> None:
    with pytest.raises(ParseError, match="empty"):
        PlainTextParser().parse(b" \n\n", "a.txt", {})
    with pytest.raises(ParseError, match="does not look like text"):
        PlainTextParser().parse(b"\x00\x01\x02binary\x00" * 20, "a.txt", {})


MARKDOWN = """# 使用指南 Guide

Intro paragraph with *emphasis*
and a [link](https://example.com).

## 安装

- 第一步 install
- second step
  - nested

| 名称 | Value |
|------|-------|
| a    | 1     |

```python
def f():
    return 1
```

### Deep
1. one
2. two
"""


def test_markdown_structure() -> None:
    [doc] = MarkdownParser().parse(MARKDOWN.encode(), "guide.md", {})
    assert doc.title == "使用指南 Guide"
    assert kinds(doc) == [
        ("heading", "使用指南 Guide"),
        ("text", "Intro paragraph with emphasis and a link."),
        ("heading", "安装"),
        ("list", "- 第一步 install\n- second step\n  - nested"),
        ("table", "| 名称 | Value |\n|------|-------|\n| a    | 1     |"),
        ("code", "def f():\n    return 1"),
        ("heading", "Deep"),
        ("list", "1. one\n2. two"),
    ]
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 2, 3]
    assert doc.blocks[5].metadata == {"language": "python"}


def test_markdown_title_falls_back_to_front_matter_or_stem() -> None:
    [doc] = MarkdownParser().parse(b"## Only a subheading\n\ntext\n", "dir/readme.md", {})
    assert doc.title == "readme"
    [doc] = MarkdownParser().parse("---\ntitle: '发布说明'\ndate: 2024-05-01\n---\ntext\n".encode(), "x.md", {})
    assert doc.title == "发布说明" and doc.metadata["front_matter"]["date"] == "2024-05-01"
    assert kinds(doc) == [("text", "text")]


# ---- HTML --------------------------------------------------------------------------------------------------

ARTICLE = """<!doctype html><html><head><meta charset="utf-8"><title>向量检索入门</title>
<meta name="author" content="王小明"></head><body>
<nav><a href="/">Home</a> | <a href="/pricing">Pricing</a> | <a href="/login">Login</a></nav>
<header><div class="logo">ACME Cloud</div></header>
<main><article>
<h1>向量检索入门</h1>
<p>向量检索把文本变成向量，再按相似度查找。This article explains how a vector index answers a query
and why <a href="/docs/hnsw">HNSW graphs</a> are fast enough for millions of documents.</p>
<h2>Index types</h2>
<p>There are flat indexes, inverted file indexes and graph indexes; each trades recall for speed in its
own way, and the right choice depends on the size of the collection.</p>
<ul><li>Flat: exact search</li><li>IVF: clustered search</li></ul>
<table><tr><th>Index</th><th>Recall</th></tr><tr><td>Flat</td><td>100%</td></tr>
<tr><td>HNSW</td><td>98%</td></tr></table>
<p>See <a href="https://other.example/paper.pdf">the paper</a> for the details of the benchmark.</p>
</article></main>
<footer><p>© 2024 ACME Cloud. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>"""


def test_html_keeps_the_article_and_drops_boilerplate() -> None:
    [doc] = HtmlParser().parse(ARTICLE.encode(), "page.html", {"url": "https://acme.example/blog/vectors"})
    assert doc.title == "向量检索入门"
    text = "\n".join(b.text for b in doc.blocks)
    for boilerplate in ("Pricing", "Login", "ACME Cloud", "All rights reserved", "Privacy policy"):
        assert boilerplate not in text
    headings = [(b.text, b.level) for b in doc.blocks if b.kind == "heading"]
    assert headings == [("向量检索入门", 1), ("Index types", 2)]
    assert doc.blocks[1].text.startswith("向量检索把文本变成向量，再按相似度查找。This article explains")
    assert ("list", "- Flat: exact search\n- IVF: clustered search") in kinds(doc)
    table = next(b.text for b in doc.blocks if b.kind == "table")
    assert table.splitlines()[:2] == ["| Index | Recall |", "| --- | --- |"]
    assert doc.metadata["url"] == "https://acme.example/blog/vectors"
    assert doc.metadata["author"] == "王小明"
    assert doc.metadata["links"] == [{"text": "HNSW graphs", "href": "https://acme.example/docs/hnsw"},
                                     {"text": "the paper", "href": "https://other.example/paper.pdf"}]


def test_html_short_page_and_empty_page() -> None:
    [doc] = HtmlParser().parse(b"<html><body><p>Opening hours: 9-17.</p></body></html>", "hours.htm", {})
    assert kinds(doc) == [("text", "Opening hours: 9-17.")]
    assert doc.title == "hours"
    # Nothing counts as an article (all footer): the visible text, block by block, and its links.
    footer_only = (b"<html><head><title>Contact</title><style>p{}</style></head><body><footer><p>Call: 555-1234</p>"
                   b"<p>Mail <a href='mailto:hi@acme.example'>us</a></p></footer></body></html>")
    [doc] = HtmlParser().parse(footer_only, "contact.html", {})
    assert (doc.title, kinds(doc)) == ("Contact", [("text", "Call: 555-1234"), ("text", "Mail us")])
    assert doc.metadata["links"] == [{"text": "us", "href": "mailto:hi@acme.example"}]
    with pytest.raises(ParseError, match="no text"):
        HtmlParser().parse(b"<html><body><script>var x = 1;</script></body></html>", "blank.html", {})


# ---- PDF ---------------------------------------------------------------------------------------------------

def _name(value: str) -> NameObject:
    return NameObject(value)


def make_pdf(pages: list[list[tuple[str, int, str]]], title: str | None = None,
             outline: list[tuple[str, int]] = ()) -> PdfWriter:  # type: ignore[assignment]
    """A real text PDF: Helvetica for English, the standard Chinese CID font STSong-Light (UniGB-UCS2-H) for
    Chinese. Each page is a list of (font "en"/"zh", size, line); an empty list is a page without text."""
    writer = PdfWriter()
    helvetica = DictionaryObject({_name("/Type"): _name("/Font"), _name("/Subtype"): _name("/Type1"),
                                  _name("/BaseFont"): _name("/Helvetica"),
                                  _name("/Encoding"): _name("/WinAnsiEncoding")})
    cid = DictionaryObject({_name("/Type"): _name("/Font"), _name("/Subtype"): _name("/CIDFontType0"),
                            _name("/BaseFont"): _name("/STSong-Light"),
                            _name("/CIDSystemInfo"): DictionaryObject({
                                _name("/Registry"): TextStringObject("Adobe"),
                                _name("/Ordering"): TextStringObject("GB1"),
                                _name("/Supplement"): NumberObject(2)})})
    song = DictionaryObject({_name("/Type"): _name("/Font"), _name("/Subtype"): _name("/Type0"),
                             _name("/BaseFont"): _name("/STSong-Light-UniGB-UCS2-H"),
                             _name("/Encoding"): _name("/UniGB-UCS2-H"),
                             _name("/DescendantFonts"): ArrayObject([writer._add_object(cid)])})
    fonts = DictionaryObject({_name("/en"): writer._add_object(helvetica), _name("/zh"): writer._add_object(song)})
    for lines in pages:
        page = writer.add_blank_page(612, 792)
        if not lines:
            continue
        ops = ["BT", "72 720 Td"]
        for font, size, line in lines:
            shown = ("<" + line.encode("utf-16-be").hex() + ">" if font == "zh"
                     else "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")")
            ops += [f"/{font} {size} Tf", f"{shown} Tj", f"0 -{size + 6} Td"]
        ops.append("ET")
        content = DecodedStreamObject()
        content.set_data("\n".join(ops).encode("latin-1"))
        page[_name("/Resources")] = DictionaryObject({_name("/Font"): fonts})
        page[_name("/Contents")] = writer._add_object(content)
    if title:
        writer.add_metadata({"/Title": title, "/Author": "Temper Tests"})
    for text, page_index in outline:
        writer.add_outline_item(title=text, page_number=page_index)
    return writer


def pdf_bytes(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


REPORT_PAGES = [
    [("en", 18, "Introduction"),
     ("en", 11, "Retrieval augmented generation grounds the answers of a language"),
     ("en", 11, "model in documents."),
     ("en", 11, "It needs parsing, chunking and ranking."),
     ("en", 11, "Short closing line.")],
    [],  # a scanned page: no text layer
    [("zh", 16, "第二章 方法"),
     ("zh", 11, "我们先把文档解析成段落，再按标题切分成块，每一块都保留它"),
     ("zh", 11, "所在的章节路径和页码。"),
     ("en", 11, "Page three ends here.")],
]


def test_pdf_pages_paragraphs_and_outline_headings() -> None:
    writer = make_pdf(REPORT_PAGES, title="RAG Report", outline=[("Introduction", 0), ("第二章 方法", 2)])
    [doc] = PdfParser().parse(pdf_bytes(writer), "report.pdf", {})
    assert doc.title == "RAG Report"
    assert doc.metadata == {"pages": 3, "pages_without_text": [2], "author": "Temper Tests"}
    assert [(b.kind, b.level, b.page, b.text) for b in doc.blocks] == [
        ("heading", 1, 1, "Introduction"),
        ("text", 0, 1, "Retrieval augmented generation grounds the answers of a language model in documents."),
        ("text", 0, 1, "It needs parsing, chunking and ranking."),
        ("text", 0, 1, "Short closing line."),
        ("heading", 1, 3, "第二章 方法"),
        ("text", 0, 3, "我们先把文档解析成段落，再按标题切分成块，每一块都保留它所在的章节路径和页码。"),
        ("text", 0, 3, "Page three ends here."),
    ]


def test_pdf_title_falls_back_to_first_line() -> None:
    memo = make_pdf([[("en", 14, "Quarterly Memo"), ("en", 11, "Body.")]])
    [doc] = PdfParser().parse(pdf_bytes(memo), "m.pdf", {})
    assert doc.title == "Quarterly Memo"


def test_pdf_encrypted() -> None:
    locked = make_pdf([[("en", 11, "Secret plans.")]])
    locked.encrypt(user_password="s3cret", owner_password="owner", algorithm="RC4-128")
    data = pdf_bytes(locked)
    with pytest.raises(ParseError, match=r"password-protected: give its password \(option 'password'\)"):
        PdfParser().parse(data, "locked.pdf", {})
    with pytest.raises(ParseError, match="password given is wrong"):
        PdfParser().parse(data, "locked.pdf", {"password": "nope"})
    [doc] = PdfParser().parse(data, "locked.pdf", {"password": "s3cret"})
    assert kinds(doc) == [("text", "Secret plans.")]
    # Only an owner password (printing/editing restrictions): opens without asking.
    restricted = make_pdf([[("en", 11, "Read me.")]])
    restricted.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    assert kinds(PdfParser().parse(pdf_bytes(restricted), "r.pdf", {})[0]) == [("text", "Read me.")]


def test_pdf_corrupt_scanned_and_wrong_format() -> None:
    good = pdf_bytes(make_pdf([[("en", 11, "Hello.")]]))
    with pytest.raises(ParseError, match="damaged PDF"):
        PdfParser().parse(good[:200], "cut.pdf", {})
    with pytest.raises(ParseError, match="no text layer on any of its 2 pages .* OCR"):
        PdfParser().parse(pdf_bytes(make_pdf([[], []])), "scan.pdf", {})
    with pytest.raises(ParseError, match="not a PDF"):
        PdfParser().parse(b"PK\x03\x04 a zip", "fake.pdf", {})
    with pytest.raises(ParseError, match="empty"):
        PdfParser().parse(b"", "empty.pdf", {})


# ---- DOCX --------------------------------------------------------------------------------------------------

def make_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "产品手册"
    document.core_properties.author = "李雷"
    document.core_properties.created = dt.datetime(2024, 3, 1, 8, 30, tzinfo=dt.timezone.utc)
    document.add_paragraph("Product Manual", style="Title")
    document.add_heading("第一章 简介", level=1)
    document.add_paragraph("This   manual describes\nthe product.")
    document.add_paragraph("Install the agent", style="List Bullet")
    document.add_paragraph("启动服务", style="List Bullet")
    document.add_paragraph("Check the logs", style="List Bullet 2")
    document.add_paragraph("Step one", style="List Number")
    document.add_paragraph("Step two", style="List Number")
    table = document.add_table(rows=3, cols=2)
    for r, row in enumerate([("参数", "默认值"), ("port", "8080"), ("host", "0.0.0.0 | any")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    # Chinese-named heading style, as Word in Chinese writes it, with an outline level.
    zh_heading = document.styles.add_style("标题 2", WD_STYLE_TYPE.PARAGRAPH)
    document.add_paragraph("1.1 配置", style=zh_heading)
    document.add_paragraph("配置文件位于数据目录。")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_headings_lists_tables_in_order() -> None:
    [doc] = DocxParser().parse(make_docx(), "manual.docx", {})
    assert doc.title == "产品手册"
    assert doc.metadata == {"title": "产品手册", "author": "李雷", "created": "2024-03-01T08:30:00Z",
                            "modified": doc.metadata["modified"]}
    assert [(b.kind, b.level, b.text) for b in doc.blocks] == [
        ("heading", 1, "Product Manual"),
        ("heading", 1, "第一章 简介"),
        ("text", 0, "This manual describes the product."),
        ("list", 0, "- Install the agent\n- 启动服务\n  - Check the logs"),
        ("list", 0, "1. Step one\n2. Step two"),
        ("table", 0, "| 参数 | 默认值 |\n| --- | --- |\n| port | 8080 |\n| host | 0.0.0.0 \\| any |"),
        ("heading", 2, "1.1 配置"),
        ("text", 0, "配置文件位于数据目录。"),
    ]


def test_docx_title_without_core_title_and_bad_files() -> None:
    document = docx.Document()
    document.core_properties.title = ""
    document.add_heading("Release notes", level=1)
    document.add_paragraph("Fixed bugs.")
    out = io.BytesIO()
    document.save(out)
    assert DocxParser().parse(out.getvalue(), "notes.docx", {})[0].title == "Release notes"
    with pytest.raises(ParseError, match=r"legacy binary Office file .* save it as \.docx"):
        DocxParser().parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "old.docx", {})
    with pytest.raises(ParseError, match="cannot be opened as a Word document"):
        DocxParser().parse(make_docx()[:300], "cut.docx", {})
    with pytest.raises(ParseError, match="not a Word"):
        DocxParser().parse(b"%PDF-1.4 ...", "wrong.docx", {})
    empty = io.BytesIO()
    docx.Document().save(empty)
    with pytest.raises(ParseError, match="contains no text"):
        DocxParser().parse(empty.getvalue(), "empty.docx", {})


# ---- PPTX --------------------------------------------------------------------------------------------------

def make_pptx() -> bytes:
    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    first.shapes.title.text = "季度总结 Quarterly Review"
    body = first.placeholders[1].text_frame
    body.text = "Revenue grew 12%"
    sub = body.add_paragraph()
    sub.text, sub.level = "华东区增长最快", 1
    first.notes_slide.notes_text_frame.text = "Mention the new customers."
    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Sales by region"
    note = second.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1))
    note.text_frame.text = "Source: finance team"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (r, c), value in {(0, 0): "地区", (0, 1): "Sales", (1, 0): "华东", (1, 1): "42"}.items():
        table.cell(r, c).text = value
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_pptx_slides_become_sections_with_page_numbers() -> None:
    [doc] = PptxParser().parse(make_pptx(), "review.pptx", {})
    assert doc.title == "季度总结 Quarterly Review"
    assert doc.metadata["slides"] == 2
    assert [(b.kind, b.page, b.text, b.metadata) for b in doc.blocks] == [
        ("heading", 1, "季度总结 Quarterly Review", {}),
        ("list", 1, "- Revenue grew 12%\n  - 华东区增长最快", {}),
        ("text", 1, "Mention the new customers.", {"notes": True}),
        ("heading", 2, "Sales by region", {}),
        ("table", 2, "| 地区 | Sales |\n| --- | --- |\n| 华东 | 42 |", {}),  # above the text box on the slide
        ("text", 2, "Source: finance team", {}),
    ]


def test_pptx_bad_file() -> None:
    with pytest.raises(ParseError, match="cannot be opened as a PowerPoint deck"):
        PptxParser().parse(make_pptx()[:400], "cut.pptx", {})


# ---- CSV and XLSX ------------------------------------------------------------------------------------------

CSV_TEXT = "姓名,城市,备注\n张三,北京,\n李四,\"上海,浦东\",VIP\n\n王五,广州,new\n"


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig"])
def test_csv_records_in_chinese_encodings(encoding: str) -> None:
    [doc] = CsvParser().parse(CSV_TEXT.encode(encoding), "客户.csv", {})
    assert doc.title == "客户" and doc.source_suffix is None
    assert doc.metadata == {"columns": ["姓名", "城市", "备注"]}
    assert [(b.kind, b.text, b.metadata) for b in doc.blocks] == [
        ("record", "姓名: 张三\n城市: 北京", {"row": 2}),
        ("record", "姓名: 李四\n城市: 上海,浦东\n备注: VIP", {"row": 3}),
        ("record", "姓名: 王五\n城市: 广州\n备注: new", {"row": 5}),
    ]


def test_csv_sniffs_semicolons_tsv_and_row_mode() -> None:
    docs = CsvParser().parse(b"name;price\nTea;3,50\nCake;4\n", "menu.csv", {"records": "row"})
    assert [(d.title, d.source_suffix, kinds(d)) for d in docs] == [
        ("menu — row 2", "#row=2", [("record", "name: Tea\nprice: 3,50")]),
        ("menu — row 3", "#row=3", [("record", "name: Cake\nprice: 4")]),
    ]
    [doc] = CsvParser().parse(b"a\tb\n1\t2, 3\n", "t.tsv", {})
    assert kinds(doc) == [("record", "a: 1\nb: 2, 3")]
    with pytest.raises(ParseError, match="only a header row"):
        CsvParser().parse(b"name,price\n", "h.csv", {})
    with pytest.raises(ParseError, match="option 'records' must be 'sheet' or 'row'"):
        CsvParser().parse(b"a\n1\n", "a.csv", {"records": "cell"})


def make_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    prices = workbook.active
    prices.title = "价格"
    prices.append(["产品", "价格", "上市日期", None])
    prices.append(["苹果", 3.0, dt.datetime(2024, 5, 1), None])
    prices.append(["香蕉", None, dt.datetime(2024, 6, 1, 9, 30), "extra"])
    workbook.create_sheet("Empty")
    staff = workbook.create_sheet("Staff")
    staff["A1"], staff["B1"] = "Name", "Team"
    staff["A4"], staff["B4"] = "Ada", "R&D"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_xlsx_one_document_per_sheet() -> None:
    docs = XlsxParser().parse(make_xlsx(), "目录.xlsx", {})
    assert [(d.title, d.source_suffix, d.metadata) for d in docs] == [
        ("目录 — 价格", "#sheet=价格", {"columns": ["产品", "价格", "上市日期"], "sheet": "价格"}),
        ("目录 — Staff", "#sheet=Staff", {"columns": ["Name", "Team"], "sheet": "Staff"}),
    ]
    assert [(b.text, b.metadata["row"]) for b in docs[0].blocks] == [
        ("产品: 苹果\n价格: 3\n上市日期: 2024-05-01", 2),
        ("产品: 香蕉\n上市日期: 2024-06-01 09:30:00\nColumn 4: extra", 3),
    ]
    assert [(b.kind, b.text, b.metadata) for b in docs[1].blocks] == [("record", "Name: Ada\nTeam: R&D", {"row": 4})]


def test_xlsx_row_mode_and_bad_files() -> None:
    docs = XlsxParser().parse(make_xlsx(), "目录.xlsx", {"records": "row"})
    assert [(d.title, d.source_suffix, d.metadata.get("row")) for d in docs] == [
        ("目录 — 价格 — row 2", "#sheet=价格&row=2", 2),
        ("目录 — 价格 — row 3", "#sheet=价格&row=3", 3),
        ("目录 — Staff — row 4", "#sheet=Staff&row=4", 4),
    ]
    assert all(len(d.blocks) == 1 and d.blocks[0].kind == "record" for d in docs)
    with pytest.raises(ParseError, match="password-protected"):
        XlsxParser().parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "locked.xlsx", {})
    with pytest.raises(ParseError, match="cannot be opened as an Excel workbook"):
        XlsxParser().parse(make_docx(), "wrong.xlsx", {})
    empty = io.BytesIO()
    openpyxl.Workbook().save(empty)
    with pytest.raises(ParseError, match="no data rows"):
        XlsxParser().parse(empty.getvalue(), "empty.xlsx", {})


def test_every_builtin_yields_clean_blocks() -> None:
    """Across formats: no block carries stray whitespace, and text blocks are single-line paragraphs."""
    samples = {"guide.md": MARKDOWN.encode(), "page.html": ARTICLE.encode(), "manual.docx": make_docx(),
               "review.pptx": make_pptx(), "report.pdf": pdf_bytes(make_pdf(REPORT_PAGES))}
    registry = ParserRegistry(builtin_parsers())
    blocks: list[Block] = [b for name, data in samples.items()
                           for doc in registry.for_file(name).parse(data, name, {}) for b in doc.blocks]
    assert len(blocks) > 30
    for block in blocks:
        assert block.text == block.text.strip() and "\u00a0" not in block.text
        if block.kind in ("text", "heading"):
            assert "\n" not in block.text and "  " not in block.text


def test_the_builtin_parsers_come_through_the_plugin_hook() -> None:
    from temper.config import Settings
    from temper.plugins import parser_registry, plugin_manager

    registry = parser_registry(plugin_manager(), Settings())
    assert {".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".html", ".md", ".txt"} <= set(registry.extensions())
    assert registry.for_file("报告.PDF").name == registry.for_file("x.pdf").name


def test_audio_is_skipped_with_the_reason() -> None:
    from temper.knowledge.ingest import ParserRegistry, builtin_parsers

    parser = ParserRegistry(builtin_parsers()).for_file("meeting.mp3")
    with pytest.raises(ParseError, match="meeting.mp3: skipped .* speech-to-text model"):
        parser.parse(b"ID3\x03\x00", "meeting.mp3", {})


def test_documentation_pages_keep_headings_trafilatura_drops() -> None:
    """DocBook wraps headings in div.titlepage, which trafilatura discards: the page's own structure is used."""
    from temper.knowledge.ingest.web import HtmlParser

    para = "<p>" + "The boot loader reads its configuration and starts the kernel with its options. " * 4 + "</p>"
    html = ("<html><head><title>Chapter 3. Boot</title></head><body><div class='navheader'><a href='/'>Home</a></div>"
            "<div class='chapter'><div class='titlepage'><div><div><h1 class='title'><a id='c3'></a>Chapter 3. Boot"
            "</h1></div></div></div>" + para + "<div class='section'><div class='titlepage'><div><div>"
            "<h2 class='title'><a id='s1'></a>3.1. 引导加载程序</h2></div></div></div>" + para
            + "<ul><li>GRUB 2</li><li>systemd-boot</li></ul><pre>grub-install /dev/sda</pre></div></div>"
            "<footer>Copyright</footer></body></html>")
    doc = HtmlParser().parse(html.encode(), "ch03.html", {})[0]
    kinds = [(b.kind, b.level) for b in doc.blocks]
    assert kinds == [("heading", 1), ("text", 0), ("heading", 2), ("text", 0), ("list", 0), ("code", 0)]
    assert doc.blocks[2].text == "3.1. 引导加载程序" and doc.blocks[4].text == "- GRUB 2\n- systemd-boot"
    assert "Copyright" not in " ".join(b.text for b in doc.blocks)


DOCBOOK_NOTE = ("<div class='note'><table summary='Note'><tr><td rowspan='2'><img alt='[Note]' src='note.png'/></td>"
                "<th>Note</th></tr><tr><td><p>Run apt update before apt install.</p></td></tr></table></div>")
DATA_TABLE = ("<table><tr><th>Command</th><th>Action</th></tr><tr><td>apt install</td><td>installs a package</td></tr>"
              "<tr><td>apt remove</td><td>removes it</td></tr></table>")


@pytest.mark.parametrize("page", [
    # DocBook: headings in div.titlepage (its own structure is walked), a navigation header and footer, a note
    ("<html><body><div class='navheader'><table summary='Navigation header'><tr><th colspan='3'>Chapter 3. Boot"
     "</th></tr><tr><td><a href='ch02.html'>Prev</a></td><th></th><td><a href='ch04.html'>Next</a></td></tr></table>"
     "</div><div class='chapter'><div class='titlepage'><div><h1>Chapter 3. Boot</h1></div></div>"
     "<p>The boot loader starts the kernel with its options, then the init system starts the services.</p>"
     + DOCBOOK_NOTE + "<div class='titlepage'><h2>3.1. Packages</h2></div>" + DATA_TABLE + "</div>"
     "<div class='navfooter'><table><tr><td>Chapter 2. Install</td><td>Home</td><td>Chapter 4. Network</td></tr>"
     "</table></div></body></html>"),
    # an article read by trafilatura, its title in a one-cell layout table
    ("<html><body><main><article><table><tr><td>Chapter 3</td></tr></table><h1>Boot</h1>"
     "<p>The boot loader starts the kernel with its options, then the init system starts the services.</p>"
     "<h2>Packages</h2>" + DATA_TABLE + "</article></main></body></html>"),
], ids=["docbook", "article"])
def test_html_layout_tables_are_text_not_markdown_tables(page: str) -> None:
    """A table used for layout (a title in one cell, a note beside its icon) gave junk chunks such as
    ``| Chapter 3 |\n| --- |``: only data tables (two rows with two filled cells) become Markdown tables."""
    [doc] = HtmlParser().parse(page.encode(), "ch03.html", {})
    tables = [b.text for b in doc.blocks if b.kind == "table"]
    assert tables == ["| Command | Action |\n| --- | --- |\n| apt install | installs a package |\n"
                      "| apt remove | removes it |"]
    text = "\n".join(b.text for b in doc.blocks)
    assert "Prev" not in text and "Chapter 4. Network" not in text  # DocBook's navigation is chrome
    if "note" in page:
        assert ("text", "Run apt update before apt install.") in kinds(doc)
    else:
        assert ("text", "Chapter 3") in kinds(doc)


# ---- limits: archives, text budget, cancel --------------------------------------------------------------

def inflated(package: bytes, member: str, extra_mib: int) -> bytes:
    """``package`` with ``extra_mib`` MiB of whitespace added to one XML member (a few KiB zipped)."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info)
            z.writestr(info.filename, data.replace(b">", b">" + b" " * (extra_mib << 20), 1)
                       if info.filename == member else data)
    return out.getvalue()


@pytest.mark.parametrize("parser, member", [(DocxParser(), "word/document.xml"), (XlsxParser(), "xl/workbook.xml")])
def test_an_office_package_that_unzips_past_the_limit_is_refused_before_it_is_expanded(parser: Any, member: str
                                                                                      ) -> None:
    import tracemalloc

    from temper.knowledge.limits import Limits, guarded

    package = make_xlsx() if member.startswith("xl/") else _docx(["Some text."])
    bomb = inflated(package, member, 300)
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        with guarded(Limits(unzipped_bytes=100 << 20), lambda: False), \
                pytest.raises(ParseError, match=r"expands to 30\d MiB when unzipped, more than the 100 MiB"):
            parser.parse(bomb, "bomb" + (".xlsx" if member.startswith("xl/") else ".docx"), {})
        assert tracemalloc.get_traced_memory()[1] < 16 << 20  # never expanded
    finally:
        tracemalloc.stop()


def _docx(paragraphs: list[str]) -> bytes:
    d = docx.Document()
    for text in paragraphs:
        d.add_paragraph(text)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def test_parsers_stop_reading_at_the_text_budget_and_when_cancelled() -> None:
    from temper.knowledge.limits import Limits, Stopped, guarded

    data = _docx([f"Paragraph {i} of the long report." for i in range(200)])
    with guarded(Limits(text_chars=1000), lambda: False) as guard:
        blocks = DocxParser().parse(data, "long.docx", {})[0].blocks
    assert guard.cut and 1000 <= sum(len(b.text) for b in blocks) < 1100 and blocks[-1].text.startswith("Paragraph")
    with guarded(Limits(text_chars=1000), lambda: False) as guard:
        docs = CsvParser().parse(("n,text\n" + "".join(f"{i},row {i}\n" for i in range(5000))).encode(), "t.csv", {})
    assert guard.cut and 1000 <= sum(len(b.text) for b in docs[0].blocks) < 1100  # cut exactly by cap_text later
    with guarded(Limits(), lambda: True), pytest.raises(Stopped):  # the job is being cancelled
        DocxParser().parse(data, "long.docx", {})
