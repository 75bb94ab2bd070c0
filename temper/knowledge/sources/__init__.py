"""Knowledge-base sources other than uploaded files: web pages by URL (``web.py``) and database tables
(``database.py``). Both hand the ingestion pipeline what a parser needs; their errors are ``ParseError``s, so
the pipeline reports them like any unreadable file."""
from __future__ import annotations

from temper.knowledge.types import ParseError


class SourceError(ParseError):
    """A source cannot be read (not allowed, unreachable, too large, a bad query); the message says why."""


class FetchError(SourceError):
    """A URL cannot be fetched."""


class QueryError(SourceError):
    """A database source cannot be read."""
