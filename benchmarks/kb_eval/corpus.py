"""The Debian Reference (version 2.100) as an evaluation corpus, and the questions labelled against it.

Install it with ``apt-get install debian-reference-en debian-reference-zh-cn``. Each package puts the whole
book under ``/usr/share/debian-reference/`` (reached as ``/usr/share/doc/debian-reference-<lang>/docs``):
one DocBook-generated HTML file per chapter (``ch01`` … ``ch12``), a preface (``pr01``), an appendix
(``apa``), a table of contents (``index``), and the same book again as one PDF and one gzipped text file.
The corpus is the preface, chapter and appendix HTML, 14 files per language: the table of contents is
only links, and the PDF and text editions would index every passage twice.

Questions live beside this module as ``questions.<lang>.jsonl``; a retrieved chunk is relevant to a
question when it comes from a gold file and contains that gold's evidence
(``temper.knowledge.evaluation.is_relevant``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypedDict

from temper.knowledge.evaluation import Gold
from temper.knowledge.ingest.web import HtmlParser

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")
SUFFIX: dict[Lang, str] = {"en": "en", "zh": "zh-cn"}  # the Debian package's language code
HERE = Path(__file__).parent


class Question(TypedDict):
    id: str
    question: str
    answerable: bool
    gold: list[Gold]
    answer: str


def docs_dir(lang: Lang) -> Path:
    return Path(f"/usr/share/doc/debian-reference-{SUFFIX[lang]}/docs")


def corpus_files(lang: Lang) -> list[Path]:
    """The preface, chapter and appendix HTML files of one language, in reading order."""
    root = docs_dir(lang)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing: apt-get install debian-reference-{SUFFIX[lang]}")
    order = {"pr": 0, "ch": 1, "ap": 2}
    files = [p for p in root.glob(f"*.{SUFFIX[lang]}.html") if p.name[:2] in order]
    return sorted(files, key=lambda p: (order[p.name[:2]], p.name))


def document_text(path: Path) -> str:
    """The text Temper's HTML parser extracts from a file: its blocks, one paragraph each."""
    docs = HtmlParser().parse(path.read_bytes(), path.name, {})
    return "\n\n".join(block.text for doc in docs for block in doc.blocks)


def load_questions(lang: Lang) -> list[Question]:
    lines = (HERE / f"questions.{lang}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
