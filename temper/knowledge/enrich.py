"""Optional metadata enrichment: a chat model writes a summary, keywords and the questions a chunk answers.

They are stored with the chunk (``kb_chunks.enrichment``) and indexed as keyword fields that count more than
the body (``analyzer.FIELD_BOOSTS``), so a question phrased like the generated ones, or a keyword the
text only implies, still finds the chunk. One model call per chunk: worth it with a capable model.
"""
from __future__ import annotations

import re

from temper.knowledge.lang import language

PROMPT = {
    "en": ("Describe the passage for a search index. Reply in exactly three lines:\n"
           "Summary: <one sentence>\nKeywords: <5 to 10 keywords, comma-separated>\n"
           "Questions: <2 or 3 questions the passage answers, separated by |>"),
    "zh": ("为搜索索引描述这段文字。严格按三行回复：\n摘要：<一句话>\n关键词：<5到10个关键词，用逗号分隔>\n"
           "问题：<这段文字能回答的2到3个问题，用 | 分隔>"),
}
_LABELS = {"summary": "summary", "摘要": "summary", "keywords": "keywords", "关键词": "keywords",
           "questions": "questions", "问题": "questions"}
_LINE = re.compile(r"(summary|keywords|questions|摘要|关键词|问题)\s*[:：]\s*(.+)", re.I)
MAX_FIELD_CHARS = 1000


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": PROMPT[language(text)]}, {"role": "user", "content": text}]


def parse(reply: str) -> dict[str, str]:
    """The labelled fields found anywhere in the model's reply (lenient: small models add chatter)."""
    fields: dict[str, str] = {}
    for match in _LINE.finditer(reply):
        name = _LABELS[match.group(1).lower()]
        value = match.group(2).strip()
        if value and name not in fields:
            fields[name] = value[:MAX_FIELD_CHARS]
    return fields
