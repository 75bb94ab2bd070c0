"""The personal-data detectors of trace masking: each kind, found where it is, left alone where it only looks
like one; masking never raises and stays fast on hostile text."""
from __future__ import annotations

import time

import pytest

from temper.ops.pii import CARD, EMAIL, ID_NUMBER, PHONE, UNCHECKED, fail_closed, luhn, mask_pii, resident_id


def masked_whole(text: str, token: str) -> None:
    for context in ("{}", "see {} now", "联系{}。", '{{"content": "x\\n{}"}}', "({})"):
        assert mask_pii(context.format(text)) == context.format(token), context.format(text)


def untouched(text: str) -> None:
    for context in ("{}", "see {} now", "联系{}。"):
        assert mask_pii(context.format(text)) == context.format(text)


@pytest.mark.parametrize("address", ["zhang.san@example.com", "li.si+tag@mail.example.com.cn",
                                     "a_b-c@sub-domain.example.org", "X@EXAMPLE.IO", "first.last@example.co.uk"])
def test_email_addresses_are_masked(address: str) -> None:
    masked_whole(address, EMAIL)


def test_email_next_to_chinese_text_masks_only_the_address() -> None:
    assert mask_pii("请发邮件到zhang@example.cn谢谢") == f"请发邮件到{EMAIL}谢谢"
    assert mask_pii("a@b.com,c@d.org") == f"{EMAIL},{EMAIL}"


@pytest.mark.parametrize("text", ["user@localhost", "@pytest.fixture", "a@b.c", "name at example dot com",
                                  "foo@bar.123", "x@-bad.com", "price @ 5.00"])
def test_near_misses_of_email_addresses_stay(text: str) -> None:
    untouched(text)


@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
                                    "5555555555554444", "2221000000000009", "378282246310005", "3782 822463 10005",
                                    "30569309025904", "4222222222222", "6222021234567890128",
                                    "6222 0212 3456 7890 128"])
def test_card_numbers_that_pass_luhn_are_masked(number: str) -> None:
    assert luhn(number.replace(" ", "").replace("-", ""))
    masked_whole(number, CARD)


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1112", "4111111111111112", "5555555555554445",  # Luhn fails
    "422222222222", "42222222222222222224",  # Luhn-valid, but 12 and 20 digits
    "14111111111111110",  # Luhn-valid, but no card network starts with 1 (nor do millisecond timestamps)
    "4111111111111111abc", "abc4111111111111111", "0.4111111111111111",  # part of a word or a decimal
    "4111 1111-1111 1111",  # mixed separators
])
def test_near_misses_of_card_numbers_stay(text: str) -> None:
    untouched(text)


@pytest.mark.parametrize("number", [
    "13812345678", "138 1234 5678", "138-1234-5678", "19912345678", "+86 138 1234 5678", "+86-138-1234-5678",
    "+8613812345678", "0086 13812345678", "8613812345678", "(+86) 138 1234 5678",
    "+1 (212) 555-0123", "+1 212 555 0123", "(212) 555-0123", "212-555-0123", "212.555.0123", "1-212-555-0123",
    "+44 20 7946 0958", "+49 30 12345678", "+33 1 23 45 67 89", "+81-3-1234-5678",
    "010-12345678", "0755-1234 5678", "(0755) 1234 5678", "020 7946 0958", "07700 900123", "01 23 45 67 89",
])
def test_phone_numbers_are_masked(number: str) -> None:
    masked_whole(number, PHONE)


def test_several_phone_numbers_in_a_row_are_each_masked() -> None:
    assert mask_pii("13812345678 13912345678、+86 137 0000 1111") == f"{PHONE} {PHONE}、{PHONE}"
    assert mask_pii("手机13812345678号") == f"手机{PHONE}号"


@pytest.mark.parametrize("text", [
    "12345678901", "1381234567", "138123456789", "11012345678",  # no mainland mobile: prefix 12/11, 10 or 12 digits
    "2024-01-15", "10:30", "192.168.1.1", "v1.2.3", "1,234,567", "3.1415926535",
    "123-456-7890", "212-055-0123", "2024-212-555-0123",  # NANP area/exchange codes start 2-9; a longer run
    "+1 2", "+20%", "+2023", "3+4567890123", "ID13812345678", "1718000000",
    "0 1234 5678", "01-02-2024",
])
def test_near_misses_of_phone_numbers_stay(text: str) -> None:
    untouched(text)


def test_resident_id_numbers_are_masked_only_with_a_real_date_and_their_check_character() -> None:
    for number in ("11010519491231002X", "11010519491231002x", "110101199003077774",
                   "440308200002291231"):  # 29 February of a leap year
        assert resident_id(number)
        masked_whole(number, ID_NUMBER)
    for text in ("110101199003077775", "44030819900101001X", "440308199001010018",  # wrong check character
                 "440308199902291231",  # right check character, but 29 February 1999 is no date
                 "A440308200002291231", "4403082000022912315"):  # part of something longer
        untouched(text)


def test_everything_at_once_in_a_json_body() -> None:
    body = ('{"model":"m","messages":[{"role":"user","content":"我是张三，手机 +86 139 8765 4321，'
            '邮箱 zhang.san@example.com，身份证 11010519491231002X，卡号 4111-1111-1111-1111，订单 20240115。"}]}')
    assert mask_pii(body) == ('{"model":"m","messages":[{"role":"user","content":"我是张三，手机 <phone>，'
                              '邮箱 <email>，身份证 <id-number>，卡号 <card-number>，订单 20240115。"}]}')


def test_masking_never_raises_and_a_masker_that_fails_withholds_the_text() -> None:
    for text in ("", "\x00", "\ud800 13812345678", "１３８１２３４５６７８", "@" * 100, "+" * 100,
                 "9" * 100_000, "\\" * 10 + "n@a.bc"):
        assert isinstance(mask_pii(text), str)

    def broken(text: str) -> str:
        raise RuntimeError("plugin bug")

    assert fail_closed(broken)("mail zhang@example.com") == UNCHECKED
    assert fail_closed(lambda text: None)("x") == UNCHECKED  # type: ignore[arg-type, return-value]
    assert fail_closed(str.upper)("x") == "X"


@pytest.mark.parametrize("hostile", ["1 " * 4000, "1" * 8000, "+1-" * 2700, "(0" * 4000, "12345 " * 1400,
                                     "@a." * 2700, "a" * 7999 + "@", "a." * 4000 + "@" + "b." * 1000,
                                     "4111 " * 1600, "138-" * 2000, "0.1234567890123, " * 470])
def test_masking_takes_linear_time_on_hostile_text(hostile: str) -> None:
    start = time.process_time()
    mask_pii(hostile)
    assert time.process_time() - start < 0.05  # ~1 ms here; a regex that backtracks takes seconds
