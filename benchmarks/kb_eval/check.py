"""Check the labelled questions against the installed corpus: every evidence string must occur (whitespace
collapsed) in the text Temper's HTML parser extracts from its gold file, and the records must be well formed.

    .venv/bin/python benchmarks/kb_eval/check.py          # both languages; exit status 1 on any failure
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.kb_eval.corpus import LANGS, Lang, Question, corpus_files, document_text, load_questions  # noqa: E402
from temper.knowledge.evaluation import collapse_whitespace  # noqa: E402


def check(lang: Lang) -> list[str]:
    """The problems found in one language's questions (empty when all pass); prints a per-file summary."""
    texts = {p.name: collapse_whitespace(document_text(p)) for p in corpus_files(lang)}
    questions = load_questions(lang)
    problems = [f"{q['id']}: {p}" for q in questions for p in _record_problems(q, lang)]
    problems += [f"duplicate id {i}" for i, n in Counter(q["id"] for q in questions).items() if n > 1]
    for q in questions:
        for g in q["gold"]:
            if g["file"] not in texts:
                problems.append(f"{q['id']}: {g['file']} is not a corpus file")
            elif collapse_whitespace(g["evidence"]) not in texts[g["file"]]:
                problems.append(f"{q['id']}: evidence not in {g['file']}: {g['evidence']!r}")
    spread = Counter(file for q in questions for file in {g["file"] for g in q["gold"]})
    unanswerable = sum(not q["answerable"] for q in questions)
    print(f"{lang}: {len(questions) - unanswerable} answerable, {unanswerable} unanswerable; answerable from "
          + ", ".join(f"{name.split('.')[0]} {spread[name]}" for name in texts))
    return problems


def _record_problems(q: Question, lang: Lang) -> list[str]:
    problems = []
    if not re.fullmatch(rf"{lang}-\d{{3}}", q["id"]):
        problems.append("id is not <lang>-NNN")
    if not q["question"].strip() or not q["answer"].strip():
        problems.append("empty question or answer")
    if q["answerable"] != bool(q["gold"]):
        problems.append("answerable questions need gold evidence and unanswerable ones none")
    problems += [f"evidence of {len(g['evidence'])} characters (10–120 expected)"
                 for g in q["gold"] if not 10 <= len(g["evidence"]) <= 120]
    return problems


def main() -> None:
    problems = [p for lang in LANGS for p in check(lang)]
    for p in problems:
        print("FAIL", p)
    print("all evidence found" if not problems else f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
