"""Console strings: both languages carry every key the pages use, with the same placeholders."""
from __future__ import annotations

import json
import re
from pathlib import Path

from temper.models.catalog import MODALITIES

STATIC = Path(__file__).resolve().parents[2] / "temper" / "server" / "console" / "static"
CJK = re.compile(r"[\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
NOT_CHINESE = {"play.tokens_value"}  # numbers and the word "token", which Chinese UIs keep as is


def locale(lang: str) -> dict[str, str]:
    return json.loads((STATIC / "locales" / f"{lang}.json").read_text(encoding="utf-8"))


def used_keys() -> set[str]:
    keys: set[str] = set()
    for f in (STATIC / "js").rglob("*.js"):
        keys |= set(re.findall(r"\bt\(\"([a-z_0-9.]+)\"", f.read_text(encoding="utf-8")))
    main = (STATIC / "js" / "main.js").read_text(encoding="utf-8")
    keys |= {f"nav.{n}" for n in re.findall(r'\{ id: "(\w+)", href:', main)}
    keys |= {f"nav.{m}" for m in re.findall(r'module: "(\w+)", bare: true', main)} | {"nav.not_found"}
    keys |= {f"modality.{m}" for m in MODALITIES} | {"role.admin", "role.member"}
    return keys


def test_both_languages_have_the_same_keys() -> None:
    en, zh = locale("en"), locale("zh")
    assert set(en) == set(zh), f"only in one language: {sorted(set(en) ^ set(zh))}"


def test_every_used_key_is_translated() -> None:
    en, zh = locale("en"), locale("zh")
    missing = sorted(k for k in used_keys() if not en.get(k) or not zh.get(k))
    assert not missing, f"strings used by the console but missing: {missing}"


def test_translations_keep_placeholders_and_are_chinese() -> None:
    en, zh = locale("en"), locale("zh")
    wrong = [k for k in en if sorted(PLACEHOLDER.findall(en[k])) != sorted(PLACEHOLDER.findall(zh[k]))]
    assert not wrong, f"placeholders differ between languages: {wrong}"
    untranslated = [k for k in zh if k not in NOT_CHINESE and not CJK.search(zh[k])]
    assert not untranslated, f"not translated into Chinese: {untranslated}"
