"""HTTP byte ranges (RFC 9110 §14): the ``Range`` header of a media request, checked.

``parse_range(header, size)`` gives the inclusive spans to send, None for the whole file, or
raises ``RangeNotSatisfiable`` (answered 416 with ``Content-Range: bytes */size``): a range
that is malformed, starts at or past the end, a zero-length suffix, any range of an empty
file, overlapping ranges, or more than ``MAX_RANGES``. RFC 9110 would let a server ignore a
malformed header and send the whole file; refusing it tells a broken client at once.
"""

from __future__ import annotations

import re

MAX_RANGES = 8
_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeNotSatisfiable(ValueError):
    """The ``Range`` header cannot be served."""


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Inclusive ``(start, end)`` spans, in the order asked; None when there is no header."""
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        raise RangeNotSatisfiable(f"not a byte range: {header[:80]!r}")
    spans: list[tuple[int, int]] = []
    for spec in specs.split(","):
        match = _SPEC.match(spec)
        if match is None or not (match.group(1) or match.group(2)):
            raise RangeNotSatisfiable(f"malformed range {spec.strip()[:40]!r}")
        first, last = match.group(1), match.group(2)
        if not first:  # bytes=-N: the last N bytes
            length = int(last)
            if length == 0 or size == 0:
                raise RangeNotSatisfiable("an empty suffix range")
            spans.append((max(0, size - length), size - 1))
            continue
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            raise RangeNotSatisfiable(f"range {start}-{end} ends before it starts")
        if start >= size:
            raise RangeNotSatisfiable(f"range starts at {start}, the file has {size} bytes")
        spans.append((start, min(end, size - 1)))
    if len(spans) > MAX_RANGES:
        raise RangeNotSatisfiable(f"more than {MAX_RANGES} ranges")
    ordered = sorted(spans)
    for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
        if start <= end:
            raise RangeNotSatisfiable("overlapping ranges")
    return spans
