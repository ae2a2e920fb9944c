"""What a text frame must be before it is parsed into a message, and what of it may be echoed.

The message models (pydantic, whose parser bounds its own recursion) do the rest. These checks
are for what would otherwise escape them: JSON nested deep enough to exhaust Python's stack
(``json.loads`` is used to find an ``id`` to refer to), strings that cannot be written back
out (lone surrogates, which ``\\uD800`` escapes produce), and NUL characters, which PostgreSQL
refuses in text. Each costs a substring search unless the frame holds what it looks for.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Deeper than any message needs (a transfer's skills are two levels).
MAX_DEPTH = 32
#: Deeper than this, ``json.loads`` is not even tried (Python recurses per level).
_PARSE_DEPTH = 200
# An escape, a quote or a bracket: the tokens nesting depends on (linear, no backtracking).
_TOKENS = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
# \u0000 preceded by an even number of backslashes (an odd one would escape the backslash).
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def nesting_depth(raw: str, stop_after: int = _PARSE_DEPTH) -> int:
    """How deep arrays and objects nest in ``raw``: exact above ``MAX_DEPTH`` (up to just past
    ``stop_after``, where counting stops), an upper bound below it."""
    brackets = raw.count("[") + raw.count("{")
    if brackets <= MAX_DEPTH:
        return brackets
    depth = deepest = 0
    in_string = False
    for token in _TOKENS.finditer(raw):
        text = token.group()
        if text[0] == "\\":
            continue
        if text == '"':
            in_string = not in_string
        elif not in_string:
            depth += 1 if text in "[{" else -1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    break
    return deepest


def _parse(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def echoable_id(data: Any) -> str | None:
    """The ``id`` of a parsed frame if it can be sent back as an error's ``ref``."""
    value = data.get("id") if isinstance(data, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None


def request_id(raw: str) -> str | None:
    """The ``id`` of a frame, when one can be read safely, so that even errors can refer to it."""
    if nesting_depth(raw) > _PARSE_DEPTH:
        return None
    return echoable_id(_parse(raw))


def refusal(raw: str) -> str | None:
    """Why ``raw`` is refused as a ``bad_frame`` before it is parsed; None if it is not."""
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        return f"JSON may nest at most {MAX_DEPTH} levels deep"
    if "\\u0000" in raw and _NUL.search(raw):
        return "frames may not carry NUL characters (\\u0000)"
    if "\\ud" in raw or "\\uD" in raw:
        data = _parse(raw)
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return "a \\uD800-\\uDFFF escape that is not half of a surrogate pair"
    return None


def is_chat_send(raw: str) -> bool:
    """Whether ``raw`` is a ``chat.send`` (read without validating it: the endpoint does)."""
    if '"chat.send"' not in raw or nesting_depth(raw) > _PARSE_DEPTH:
        return False
    data = _parse(raw)
    return isinstance(data, dict) and data.get("type") == "chat.send"
