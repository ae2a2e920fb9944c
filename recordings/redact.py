"""Mask payment card numbers (PANs) in text before it is stored or shown.

A candidate is a run of 13-19 ASCII digits, optionally separated by single spaces or dashes
(``4111 1111 1111 1111``, ``4111-1111-1111-1111``), not touching another digit. A candidate
that passes the Luhn check keeps its last four digits and its separators; every other digit
becomes ``*``: ``4111 1111 1111 1111`` -> ``**** **** **** 1111``, ``4111111111111111`` ->
``************1111``. When a longer separated run holds a card number (``... 1111 2025``), the
longest Luhn-valid sequence of whole groups within it is masked. Anything else (phone numbers,
order numbers failing Luhn) is left as it is. Only ASCII digits count, so CJK text touching
the number does not stop it from being found.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["luhn_ok", "mask_card_numbers", "mask_fields"]

_RUN = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9])*(?![0-9])")
_GROUP = re.compile(r"[0-9]+")
MIN_DIGITS, MAX_DIGITS = 13, 19
#: strings lately found to hold no card number (only those: no PAN is kept here). Masking is a
#: pure function, and a chat line is masked where it arrives, then again on its way to the
#: timeline's stream and again to its file: the second and third time are a lookup.
_CLEAN_MAX = 4096
_clean: set[str] = set()


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return MIN_DIGITS <= len(digits) <= MAX_DIGITS and luhn_ok(digits)


def _mask(text: str) -> str:
    keep = 4
    out = []
    for char in reversed(text):
        if char.isdigit():
            out.append(char if keep > 0 else "*")
            keep -= 1
        else:
            out.append(char)
    return "".join(reversed(out))


def _mask_run(run: str) -> str:
    if _is_card(run):
        return _mask(run)
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(run)]
    if len(groups) < 2:
        return run
    # digits before each group: a sequence of groups too short or too long is not tried
    before = [0]
    for start, end in groups:
        before.append(before[-1] + end - start)
    if before[-1] < MIN_DIGITS:
        return run
    # The longest, then leftmost, sequence of whole groups that is a card number.
    best: tuple[int, int] | None = None
    for first in range(len(groups)):
        for last in range(len(groups) - 1, first - 1, -1):
            if not MIN_DIGITS <= before[last + 1] - before[first] <= MAX_DIGITS:
                continue
            start, end = groups[first][0], groups[last][1]
            if _is_card(run[start:end]) and (best is None or end - start > best[1] - best[0]):
                best = (start, end)
    if best is None:
        return run
    start, end = best
    return (
        run[:start] + _mask(run[start:end]) + _mask_run(run[end:])
        if end < len(run)
        else (run[:start] + _mask(run[start:end]))
    )


def mask_card_numbers(text: str) -> str:
    """``text`` with every Luhn-valid 13-19 digit card number masked to its last four digits."""
    if text in _clean:
        return text
    masked = _RUN.sub(lambda m: _mask_run(m.group(0)), text)
    if masked == text:
        if len(_clean) >= _CLEAN_MAX:
            _clean.clear()
        _clean.add(text)
    return masked


def mask_fields(value: Any) -> Any:
    """``value`` with card numbers masked in every string in it (dict keys included), however
    deep; tuples become lists (as JSON has them)."""
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, dict):
        return {
            (mask_card_numbers(k) if isinstance(k, str) else k): mask_fields(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_fields(item) for item in value]
    return value
