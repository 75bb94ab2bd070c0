"""HTML: the main content (trafilatura drops navigation, footers and ads), with its structure and links."""
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
        meta = trafilatura.extract_metadata(copy.deepcopy(tree), default_url=url)
        xml = trafilatura.extract(copy.deepcopy(tree), url=url, output_format="xml", include_formatting=True,
                                  include_tables=True, include_links=True, include_comments=False)
        main = etree.fromstring(xml.encode()).find("main") if xml else None
        blocks = _blocks(main) if main is not None else []
        if blocks:
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
        if el.tag == "head":
            level = _HEADING_RENDS.get(el.get("rend", ""), 2)
            blocks.append(Block(clean("".join(el.itertext())), "heading", level=level))
        elif el.tag == "list":
            blocks.append(Block(_list_text(el), "list"))
        elif el.tag == "table":
            rows = [["".join(c.itertext()) for c in row.iter("cell")] for row in el.iter("row")]
            blocks.append(Block(markdown_table(rows) if rows else "", "table"))
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
