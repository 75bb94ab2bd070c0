"""Which language a text is in, as far as the knowledge package cares: Chinese or not."""
from __future__ import annotations

import re
from typing import Literal

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def language(text: str) -> Literal["zh", "en"]:
    """``zh`` when a fifth or more of the letters are Chinese characters, else ``en``."""
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and len(_HAN.findall(text)) * 5 >= letters else "en"
