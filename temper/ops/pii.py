"""Masking personal data in trace payloads: e-mail addresses, payment card numbers, phone numbers (international,
common national formats, mainland mobiles) and PRC resident ID numbers.

The detectors are precise rather than broad: a card number must pass the Luhn check, an ID number must carry a
real birth date and a valid ISO 7064 MOD 11-2 check character, and a national phone number needs the separators
people write it with; a number that fails its check stays as it is. They are a floor, not a guarantee (a plugin
can replace them, hook ``mask_trace_payload``).

This runs on every stored trace, so it is built for speed (docs/performance.md has its cost): e-mail addresses
are found from their ``@``, and every kind of number by one regular expression whose first character is a
plain character class, which lets the engine skip ahead to the next digit, ``+`` or ``(``.
"""
from __future__ import annotations

import logging
import operator
import re
from collections.abc import Callable
from datetime import date

log = logging.getLogger("temper.tracing")
Masker = Callable[[str], str]

EMAIL, PHONE, CARD, ID_NUMBER = "<email>", "<phone>", "<card-number>", "<id-number>"
UNCHECKED = "<masked: this text could not be checked for personal data>"

# An address is found from its "@" and domain (labels, then a TLD of letters); its local part is read backwards
# from there. ASCII only, so that Chinese text written against an address is not taken for a part of it.
_AT_DOMAIN = re.compile(r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9_-])")
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_ESCAPES = frozenset("nrtbf")  # \n and the like in a JSON body: the letter is not part of what follows

_S = "[ ]"  # a space in a verbose pattern
_NOT_AFTER = r"(?![0-9A-Za-z_])"
_NOT_GROUPED_AFTER = r"(?![0-9A-Za-z_]|[.-][0-9])"  # nor a further group of a longer dotted or dashed number
_MOBILE_TAIL = r"1[3-9][0-9](?:[0-9]{{8}}|(?P<{0}>[ -])[0-9]{{4}}(?P={0})[0-9]{{4}})" + _NOT_AFTER
# Every kind of number, dispatched on its first character. That character is consumed first (so the engine
# scans for it fast) and then looked at from behind: no letter, digit or decimal point may come before it
# (a JSON escape such as \n may). A run of six or more characters that begins with a digit and is none of them
# is consumed whole by the last alternative, so that the engine does not try again at each of its digits.
_NUMBER = re.compile(rf"""
    [0-9+(]
    (?:
      (?: (?<![0-9A-Za-z_].)(?<![0-9][.].) | (?<=\\[nrtbf].) )
      (?:
        (?<=[1-9]) (?:
          (?P<id> [0-9]{{5}} (?:18|19|20)[0-9]{{2}} (?:0[1-9]|1[0-2]) (?:0[1-9]|[12][0-9]|3[01]) [0-9]{{3}} [0-9Xx]
                  {_NOT_AFTER} )
        | (?P<mobile> (?:(?<=8)6[ -]?1)? (?<=1)[3-9][0-9] (?:[0-9]{{8}}|(?P<s1>[ -])[0-9]{{4}}(?P=s1)[0-9]{{4}})
                      {_NOT_AFTER} )
        | (?P<card> (?<=[2-9]) (?: [0-9]{{12,18}}
                                 | [0-9]{{3}}(?P<s2>[ -])[0-9]{{4}}(?P=s2)[0-9]{{4}}(?P=s2)[0-9]{{1,4}}
                                   (?:(?P=s2)[0-9]{{1,3}})?
                                 | [0-9]{{3}}[ -][0-9]{{6}}[ -][0-9]{{4,5}} ) {_NOT_AFTER} (?![.][0-9]) )
        | (?P<nanp> (?<![0-9][.-].)
                    (?: (?<=1)[ .-]? (?:\([2-9][0-9]{{2}}\){_S}?|[2-9][0-9]{{2}}[ .-]) | (?<=[2-9])[0-9]{{2}}[ .-] )
                    [2-9][0-9]{{2}}[ .-][0-9]{{4}} {_NOT_GROUPED_AFTER} )
        )
      | (?<=[+]) (?:
          (?P<mobile_cc> 86[ -]? {_MOBILE_TAIL.format("s3")} )
        | (?P<intl> (?: [0-9]{{7,15}} | [1-9][0-9]{{0,2}} (?:[ .-]?\([0-9]{{1,4}}\))? (?:[ .-][0-9]{{1,10}}){{1,5}} )
                    {_NOT_AFTER} )
        )
      | (?<=0) (?:
          (?P<mobile_00> 086[ -]? {_MOBILE_TAIL.format("s4")} )
        | (?P<trunk> (?<![0-9][.-].)
                     (?: [0-9]{{1,4}}[ -][0-9]{{3,4}}[ -]?[0-9]{{3,4}} | [1-9](?:[ .][0-9]{{2}}){{4}} )
                     {_NOT_GROUPED_AFTER} )
        )
      | (?<=[(]) (?:
          (?P<mobile_paren> [+]?86\)[ -]? {_MOBILE_TAIL.format("s5")} )
        | (?P<nanp_paren> [2-9][0-9]{{2}}\){_S}?[2-9][0-9]{{2}}[ .-][0-9]{{4}} {_NOT_GROUPED_AFTER} )
        | (?P<trunk_paren> 0[0-9]{{1,4}}\){_S}?[0-9]{{3,4}}[ -]?[0-9]{{3,4}} {_NOT_GROUPED_AFTER} )
        )
      )
    | (?<=[0-9]) [0-9A-Za-z_.]{{5,}}
    )
""", re.ASCII | re.VERBOSE)

# Both checks sum ASCII codes in C (``bytes``), less 48 ("0") for each digit.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_ZERO = 48 * sum(_ID_WEIGHTS)
_ID_CHECK = "10X98765432"
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")  # a digit doubled, its two digits summed (Luhn)


def luhn(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check of payment card numbers."""
    b = digits.encode()
    return (sum(b[-1::-2]) + sum(b[-2::-2].translate(_DOUBLED)) - 48 * len(b)) % 10 == 0


def resident_id(text: str) -> bool:
    """Whether an 18-character PRC resident ID number has a real birth date and its check character."""
    try:
        date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    total = sum(map(operator.mul, text[:17].encode(), _ID_WEIGHTS)) - _ID_ZERO
    return text[17] in (_ID_CHECK[total % 11], _ID_CHECK[total % 11].lower())


def _number(m: re.Match[str]) -> str:
    kind, text = m.lastgroup, m.group()
    if kind is None:  # a run that is none of them
        return text
    if kind == "id":
        if resident_id(text):
            return ID_NUMBER
        return CARD if text[0] != "1" and text[-1].isdigit() and luhn(text) else text
    if kind == "card":
        return CARD if luhn(text.replace(" ", "").replace("-", "")) else text
    if kind == "intl":
        return PHONE if 8 <= sum(c.isdigit() for c in text) <= 15 else text
    return PHONE


def _emails(text: str) -> str:
    out: list[str] = []
    done = 0
    for m in _AT_DOMAIN.finditer(text):
        at = start = m.start()
        while start > done and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        if 0 < start < at and text[start - 1] == "\\" and text[start] in _ESCAPES:
            start += 1
        if start == at:
            continue
        out += (text[done:start], EMAIL)
        done = m.end()
    return "".join(out) + text[done:] if out else text


def mask_pii(text: str) -> str:
    """``text`` with e-mail addresses, card, phone and ID numbers replaced by ``<email>``, ``<card-number>``,
    ``<phone>`` and ``<id-number>``. Never raises: text it cannot check is withheld whole."""
    try:
        if "@" in text:
            text = _emails(text)
        return _NUMBER.sub(_number, text)
    except Exception:  # noqa: BLE001 - never stored unchecked, never an error
        log.exception("masking personal data failed; the text is withheld")
        return UNCHECKED


def fail_closed(masker: Masker) -> Masker:
    """A masker (a plugin's) that never raises, and withholds a text it failed on rather than pass it on."""
    def safe(text: str) -> str:
        try:
            out = masker(text)
        except Exception:  # noqa: BLE001 - a plugin's error must not store the text unmasked or break a read
            log.exception("masking personal data failed; the text is withheld")
            return UNCHECKED
        return out if isinstance(out, str) else UNCHECKED
    return safe
