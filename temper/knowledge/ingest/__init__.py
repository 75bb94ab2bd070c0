"""Knowledge-base parsers, one module per format, and the registry that picks one for a file.

Built-ins are registered through the ``register_parsers`` hook (``builtin.py``) like any plugin;
``ParserRegistry`` refuses duplicate names, extensions and media types instead of overwriting.
"""
from __future__ import annotations

from temper.knowledge.types import ParseError, Parser


def builtin_parsers() -> list[Parser]:
    from temper.knowledge.ingest.audio import AudioParser
    from temper.knowledge.ingest.image import ImageParser
    from temper.knowledge.ingest.markdown import MarkdownParser
    from temper.knowledge.ingest.pdf import PdfParser
    from temper.knowledge.ingest.plaintext import PlainTextParser
    from temper.knowledge.ingest.records import CsvParser, XlsxParser
    from temper.knowledge.ingest.slides import PptxParser
    from temper.knowledge.ingest.web import HtmlParser
    from temper.knowledge.ingest.word import DocxParser

    return [PlainTextParser(), MarkdownParser(), HtmlParser(), PdfParser(), DocxParser(), PptxParser(),
            CsvParser(), XlsxParser(), AudioParser(), ImageParser()]


class ParserRegistry:
    """Parsers by name, extension and media type; a second claim on any of them fails at construction."""

    def __init__(self, parsers: list[Parser]) -> None:
        self._by_name: dict[str, Parser] = {}
        self._by_extension: dict[str, Parser] = {}
        self._by_media_type: dict[str, Parser] = {}
        for parser in parsers:
            _claim(self._by_name, parser.name, parser, "name")
            for extension in parser.extensions:
                if not extension.startswith(".") or extension != extension.lower():
                    raise RuntimeError(f"parser {parser.name!r}: extension {extension!r} must be lower-case "
                                       "and start with a dot")
                _claim(self._by_extension, extension, parser, "extension")
            for media_type in parser.media_types:
                _claim(self._by_media_type, media_type.lower(), parser, "media type")

    def for_file(self, filename: str, media_type: str | None = None) -> Parser:
        """The parser for a file: by extension, else by media type (parameters such as charset ignored)."""
        name = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
        if "." in name and (parser := self._by_extension.get("." + name.rsplit(".", 1)[1])):
            return parser
        if media_type and (parser := self._by_media_type.get(media_type.split(";")[0].strip().lower())):
            return parser
        raise ParseError(f"{filename}: unsupported file type; supported extensions: {', '.join(self.extensions())}")

    def extensions(self) -> list[str]:
        return sorted(self._by_extension)


def _claim(table: dict[str, Parser], key: str, parser: Parser, what: str) -> None:
    if key in table:
        raise RuntimeError(f"parsers {table[key].name!r} and {parser.name!r} both claim the {what} {key!r}")
    table[key] = parser
