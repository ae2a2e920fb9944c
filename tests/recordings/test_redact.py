"""mask_card_numbers: Luhn-valid 13-19 digit runs keep their last four digits."""

from __future__ import annotations

from recordings.redact import luhn_ok, mask_card_numbers


def test_test_cards_are_masked_keeping_separators() -> None:
    assert mask_card_numbers("4111 1111 1111 1111") == "**** **** **** 1111"
    assert mask_card_numbers("4111-1111-1111-1111") == "****-****-****-1111"
    assert mask_card_numbers("pay 4111111111111111 now") == "pay ************1111 now"
    assert mask_card_numbers("amex 378282246310005.") == "amex ***********0005."
    assert mask_card_numbers("5555555555554444") == "************4444"
    assert mask_card_numbers("4222222222222") == "*********2222"  # 13 digits (Visa test)


def test_cjk_text_around_the_number() -> None:
    assert mask_card_numbers("我的卡号是4111111111111111谢谢") == "我的卡号是************1111谢谢"
    assert mask_card_numbers("カード：5555 5555 5555 4444です") == "カード：**** **** **** 4444です"


def test_non_luhn_and_phone_numbers_are_untouched() -> None:
    for text in (
        "4111 1111 1111 1112",
        "+1 555-123-4567",
        "+33 6 12 34 56 78",
        "order 1234567890123",
        "123456789012",  # 12 digits: too short
        "41111111111111111111",  # 20 digits: too long
        "4111  1111 1111 1111",  # double space: not one number
    ):
        assert mask_card_numbers(text) == text, text
    assert not luhn_ok("4111111111111112") and luhn_ok("4111111111111111")


def test_a_card_inside_a_longer_run_and_two_cards() -> None:
    assert mask_card_numbers("4111 1111 1111 1111 2025") == "**** **** **** 1111 2025"
    text = "a 4111111111111111 b 5555555555554444"
    assert mask_card_numbers(text) == "a ************1111 b ************4444"


def test_only_text_without_a_card_is_remembered() -> None:
    from recordings import redact

    clean, card = "call me at 555 0100 about order 12 345", "pay 4111 1111 1111 1111"
    assert mask_card_numbers(clean) == clean
    assert mask_card_numbers(clean) == clean  # the second time from what was remembered
    assert mask_card_numbers(card) == "pay **** **** **** 1111"
    assert mask_card_numbers(card) == "pay **** **** **** 1111"
    assert clean in redact._clean
    assert card not in redact._clean  # no card number is kept
