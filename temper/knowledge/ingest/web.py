"""HTML: the main content (trafilatura drops navigation, footers and ads), with its structure and links.

Trafilatura is tuned for articles. On documentation pages it can drop every heading (DocBook's, wrapped in
``div.titlepage``, all go), which would leave chunks without a section path; when a page has headings in
its main part and trafilatura kept none, the page's own structure is walked instead (``_structured``).

Tables used for layout are not data: DocBook's navigation header repeats the chapter title in a one-cell table,
and its notes and tips are two-cell tables (an icon, "Note", then the text). Rendered as Markdown they made
chunks like ``| Chapter 3 |\n| --- |``. A table is data when at least two of its rows have two filled cells;
any other is read as its cells' text. Navigation headers and footers are chrome, dropped with the rest.
"""
from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urljoin

import trafilatura
from lxml import etree

from temper.knowledge.ingest.common import clean, clean_lines, markdown_table, require_blocks, stem
from temper.knowledge.types import Block, ParsedDocument, ParseError

_HEADING_RENDS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = ("p", "div", "br", "li", "tr", "td", "th", "dt", "dd", "pre", "blockquote", "section", "article",
               "aside", "header", "footer", "nav", "h1", "h2", "h3", "h4", "h5", "h6")


class HtmlParser:
    name = "html"
    extensions = (".html", ".htm")
    media_types = ("text/html", "application/xhtml+xml")

    def parse(self, data: bytes, filename: str, options: dict[str, Any]) -> list[ParsedDocument]:
        if not data.strip():
            raise ParseError(f"{filename} is empty")
        tree = trafilatura.load_html(data)  # decodes by BOM, <meta charset> or detection
        if tree is None:
            raise ParseError(f"{filename} is not readable HTML")
        url: str | None = options.get("url")
        # not extensive: its date search falls back to dateparser (seconds on first use, ~0.15 s a page)
        meta = trafilatura.extract_metadata(copy.deepcopy(tree), default_url=url, extensive=False)
        xml = trafilatura.extract(copy.deepcopy(tree), url=url, output_format="xml", include_formatting=True,
                                  include_tables=True, include_links=True, include_comments=False)
        main = etree.fromstring(xml.encode()).find("main") if xml else None
        blocks = _blocks(main) if main is not None else []
        if not any(b.kind == "heading" for b in blocks) and len(_headings(_main_part(copy.deepcopy(tree)))) >= 2:
            blocks = _structured(_main_part(copy.deepcopy(tree)))
            links = _links(tree.iter("a"), "href", url)
        elif blocks:
            assert main is not None
            links = _links(main.iter("ref"), "target", url)
        else:  # nothing trafilatura counts as content (a page that is all footer or sidebar): the visible text
            blocks = _visible_text(copy.deepcopy(tree))
            links = _links(tree.iter("a"), "href", url)
        require_blocks(blocks, filename)
        metadata: dict[str, Any] = {"links": links}
        if url:
            metadata["url"] = url
        for key in ("author", "date", "sitename", "description"):
            if value := getattr(meta, key, None):
                metadata[key] = value
        if "author" not in metadata and (authors := tree.xpath('//meta[@name="author"]/@content')):
            metadata["author"] = clean(authors[0])  # trafilatura rejects non-Latin names such as 王小明
        first_heading = next((b.text for b in blocks if b.kind == "heading"), None)
        title = (meta.title if meta else None) or first_heading or stem(filename)
        return [ParsedDocument(title=title, blocks=blocks, metadata=metadata)]


def _blocks(main: etree._Element) -> list[Block]:
    for br in main.iter("lb"):
        br.tail = "\n" + (br.tail or "")
    blocks: list[Block] = []
    for el in main:
        if el.tag == "div":  # trafilatura keeps some containers: their children are the blocks
            blocks.extend(_blocks(el))
        elif el.tag == "head":
            level = _HEADING_RENDS.get(el.get("rend", ""), 2)
            blocks.append(Block(clean("".join(el.itertext())), "heading", level=level))
        elif el.tag == "list":
            blocks.append(Block(_list_text(el), "list"))
        elif el.tag == "table":
            rows = [["".join(c.itertext()) for c in row.iter("cell")] for row in el.iter("row")]
            if _is_data(rows):
                blocks.append(Block(markdown_table(rows), "table"))
            else:
                blocks.extend(Block(clean(cell)) for row in rows for cell in row)
        elif el.tag == "code":
            blocks.append(Block(clean_lines("".join(el.itertext())), "code"))
        elif el.tag != "graphic":
            blocks.append(Block(clean("".join(el.itertext()))))
    return [b for b in blocks if b.text]


def _visible_text(tree: Any) -> list[Block]:
    for hidden in tree.xpath("//head|//script|//style|//noscript|//template"):
        hidden.drop_tree()
    for el in tree.iter(*_BLOCK_TAGS):
        el.tail = "\n" + (el.tail or "")
    return [Block(p) for p in map(clean, tree.text_content().split("\n")) if p]


_HEADINGS = tuple(_HEADING_RENDS)
_CHROME = ("//script|//style|//noscript|//template|//nav|//header|//footer|//aside|//form|//*[@role='navigation']"
           + "".join(f"|//*[contains(concat(' ', normalize-space(@class), ' '), ' {c} ')]"
                     for c in ("navheader", "navfooter")))  # DocBook's
_CONTAINERS = ("p", "ul", "ol", "dl", "table", "pre", "div", *_HEADINGS)


def _is_data(rows: list[list[str]]) -> bool:
    """A data table, not layout: at least two rows with two or more filled cells."""
    return sum(sum(1 for cell in row if cell.strip()) >= 2 for row in rows) >= 2


def _main_part(tree: Any) -> Any:
    """The page's main element (``main``, ``article``, ``role=main``; else ``body``) without its chrome."""
    root = next(iter(tree.xpath("//main|//*[@role='main']|//article")), None)
    if root is None:
        root = tree.find("body") if tree.find("body") is not None else tree
    for el in root.xpath("." + _CHROME.replace("|//", "|.//")):
        el.drop_tree()
    return root


def _headings(root: Any) -> list[Any]:
    return root.xpath("|".join(f".//{h}" for h in _HEADINGS))


def _structured(root: Any) -> list[Block]:
    """Blocks in document order from the page's own elements: headings, paragraphs, lists, tables, code;
    other elements are containers whose children are walked."""
    blocks: list[Block] = []

    def walk(el: Any) -> None:
        for child in el.iterchildren("*"):
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag in _HEADINGS:
                blocks.append(Block(clean(child.text_content()), "heading", level=int(tag[1])))
            elif tag == "p":
                blocks.append(Block(clean(child.text_content())))
            elif tag in ("ul", "ol", "dl"):
                items = child.xpath("./li|./dt|./dd")
                blocks.append(Block("\n".join(f"- {clean(i.text_content())}" for i in items), "list"))
            elif tag == "table":
                rows = [[c.text_content() for c in row.xpath("./th|./td")] for row in child.iter("tr")]
                if _is_data(rows):
                    blocks.append(Block(markdown_table(rows), "table"))
                else:  # layout: each cell holds blocks, or is one paragraph
                    for cell in child.xpath("./tr/*|./thead/tr/*|./tbody/tr/*|./tfoot/tr/*"):
                        if cell.xpath("|".join(f"./{t}" for t in _CONTAINERS)):
                            walk(cell)
                        else:
                            blocks.append(Block(clean(cell.text_content())))
            elif tag == "pre":
                blocks.append(Block(clean_lines(child.text_content()), "code"))
            else:
                walk(child)

    walk(root)
    return [b for b in blocks if b.text.strip(" -\n")]


def _list_text(el: etree._Element, depth: int = 0) -> str:
    """A list as Markdown, nested lists indented under their item."""
    lines: list[str] = []
    for n, item in enumerate(el.findall("item"), 1):
        marker = f"{n}." if el.get("rend") == "ol" else "-"
        own = (item.text or "") + "".join(
            etree.tostring(child, method="text", encoding="unicode", with_tail=True) if child.tag != "list"
            else (child.tail or "") for child in item)
        lines.append("  " * depth + f"{marker} {clean(own)}")
        lines.extend(_list_text(sub, depth + 1) for sub in item.findall("list"))
    return "\n".join(line for line in lines if line.strip())


def _links(anchors: Any, attribute: str, base: str | None) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    for a in anchors:
        href = (a.get(attribute) or "").strip()
        if not href or href.startswith(("#", "javascript:")):
            continue
        links.append({"text": clean("".join(a.itertext())), "href": urljoin(base, href) if base else href})
    return links
