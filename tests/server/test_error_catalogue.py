"""Every error the server raises carries a stable code that the console words in its own language (issue 18 §5).

The source is read, not run: each construction of a ``TemperError`` (or a subclass) under ``temper/`` (the CLI
aside: it prints English to a terminal) must name a specific ``code=``, or be of a class whose own default code
names one situation; every code must have an ``errors.<code>`` string in both locale files; and the string the
console picks for a raise site (``errors.<code>``, else ``errors.<code>_plain``, see ``errorText`` in i18n.js)
must name only the ``params`` that site passes, so it is never shown with a hole in it.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import temper.errors
from temper.errors import TemperError

PACKAGE = Path(temper.errors.__file__).resolve().parent
LOCALES = PACKAGE / "server" / "console" / "static" / "locales"
# class defaults that name a kind of error rather than a situation: a raise of these classes must say which
GENERIC = {None, "not_found", "conflict"}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Site:
    where: str
    codes: tuple[str | None, ...]  # the codes it may carry (a conditional gives two)
    keys: frozenset[str] | None  # the params it passes; None when they are not a dict literal
    explicit: bool  # a code= is given (else the class default applies)


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _literals(node: ast.expr) -> tuple[str | None, ...] | None:
    """The constants an expression can be (``"a"``, ``"a" if x else None``); None when it is computed."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str)):
        return (node.value,)
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body), _literals(node.orelse)
        return body + orelse if body is not None and orelse is not None else None
    return None


@cache
def _modules() -> tuple[tuple[str, ast.Module], ...]:
    return tuple((str(p.relative_to(PACKAGE.parent)), ast.parse(p.read_text(encoding="utf-8")))
                 for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).parts[0] != "cli")


@cache
def _error_classes() -> dict[str, str | None]:
    """Class name -> default code: those of temper.errors, then their subclasses anywhere in the package."""
    classes = {name: cls.code for name, cls in vars(temper.errors).items()
               if isinstance(cls, type) and issubclass(cls, TemperError)}
    defs = [node for _, tree in _modules() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    grown = True
    while grown:
        grown = False
        for node in defs:
            parent = next((b for b in map(_name, node.bases) if b in classes), None)
            if node.name in classes or parent is None:
                continue
            own = [_literals(s.value) for s in node.body if isinstance(s, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "code" for t in s.targets)]
            classes[node.name] = own[0][0] if own and own[0] else classes[parent]
            grown = True
    return classes


@cache
def _sites() -> tuple[Site, ...]:
    classes, sites = _error_classes(), []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _name(node.func) not in classes:
                continue
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path}:{node.lineno}"
            default = classes[_name(node.func)]
            if "code" in kw:
                given = _literals(kw["code"])
                if given is None:  # only passing another error's code on (``code=answer.code``) is allowed
                    assert isinstance(kw["code"], ast.Attribute) and kw["code"].attr == "code", \
                        f"{where}: a computed code"
                    continue
                codes = tuple(default if c is None else c for c in given)  # None keeps the class default
            else:
                codes = (default,)
            params = kw.get("params")
            if params is None:
                keys: frozenset[str] | None = frozenset()
            elif isinstance(params, ast.Dict) and all(isinstance(k, ast.Constant) for k in params.keys):
                keys = frozenset(k.value for k in params.keys)  # type: ignore[union-attr]
            else:
                keys = None
            if keys is not None and "param" in kw and not (isinstance(kw["param"], ast.Constant)
                                                           and kw["param"].value is None):
                keys |= {"param"}  # the console words an error with its ``param`` as well as its params
            sites.append(Site(where, codes, keys, "code" in kw))
    return tuple(sites)


def _other_codes() -> set[str]:
    """Codes passed as ``code="..."`` to anything else (the management app's own error answers)."""
    return {c for _, tree in _modules() for node in ast.walk(tree) if isinstance(node, ast.Call)
            for k in node.keywords if k.arg == "code" for c in (_literals(k.value) or ()) if c}


@cache
def _locale(lang: str) -> dict[str, str]:
    return {k: v for k, v in json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8")).items()
            if k.startswith("errors.")}


def test_the_scan_finds_the_raise_sites() -> None:
    classes = _error_classes()
    assert {"FileTooLarge", "LimitsUnavailable", "BodyTooLarge"} <= set(classes)  # subclasses outside errors.py
    assert len(_sites()) > 250


def test_every_raise_names_a_specific_code() -> None:
    vague = [f"{s.where} ({s.codes[0] or 'no code'})" for s in _sites()
             if any(c in GENERIC for c in s.codes) and not (s.explicit and None not in s.codes)]
    assert not vague, "give these a specific code=:\n" + "\n".join(vague)


def test_every_code_is_worded_in_both_languages() -> None:
    used = {c for s in _sites() for c in s.codes if c} | {c for c in _error_classes().values() if c} | _other_codes()
    for lang in ("en", "zh"):
        missing = sorted(c for c in used if f"errors.{c}" not in _locale(lang))
        assert not missing, f"{lang}.json has no errors.<code> for: {', '.join(missing)}"


def test_both_languages_word_the_same_errors_with_the_same_params() -> None:
    en, zh = _locale("en"), _locale("zh")
    assert set(en) == set(zh), set(en) ^ set(zh)
    for key, text in en.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(zh[key])), key


def test_the_string_shown_names_only_params_the_raise_passes() -> None:
    holes = []
    for lang in ("en", "zh"):
        strings = _locale(lang)
        for s in _sites():
            for code in s.codes if s.keys is not None else ():
                # errorText's order: the full string when every placeholder is filled, else the _plain one
                fits = [k for k in (f"errors.{code}", f"errors.{code}_plain")
                        if k in strings and set(PLACEHOLDER.findall(strings[k])) <= s.keys]
                if not fits:
                    holes.append(f"{lang} {s.where} errors.{code}: passes {sorted(s.keys)}")
    assert not holes, "a string names params its raise site does not pass:\n" + "\n".join(holes)
