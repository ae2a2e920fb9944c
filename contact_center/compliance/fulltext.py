"""Free text typed by an officer, turned into a full-text query for SQLite FTS5 or PostgreSQL.

How chat text is indexed is migration 0004's docstring: every CJK character is a token of its
own, other text is split into words. A query is then a list of *terms*, each matched by a
contact on its own (in any of its chat lines, the bot's included); a term is a word
(``transfer``), a prefix (``transf*``), a Chinese word, which becomes the phrase of its
characters (``轉賬`` → ``"轉 賬"``), or a quoted phrase (``"lost card"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Characters indexed one per token (keep in step with migration 0004).
CJK = "\u2e80-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_CJK_CHAR = re.compile(f"([{CJK}])")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_TERMS = re.compile(r'"([^"]*)"|(\S+)')
MAX_TERMS = 8
MAX_QUERY_CHARS = 200


class QueryError(ValueError):
    """The text cannot be searched for (too long, too many terms, nothing searchable)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One thing a contact's chat must hold: ``words`` in a row, the last one maybe a prefix.

    ``text`` is the term as typed (without ``*``): PostgreSQL parses it itself, so that the
    query's words are cut exactly as the index's (``card-1234`` is ``card`` and ``-1234`` there).
    """

    words: tuple[str, ...]
    prefix: bool = False
    text: str = ""


def spaced(text: str) -> str:
    """``text`` with a space on each side of every CJK character, as it is indexed."""
    return _CJK_CHAR.sub(r" \1 ", text)


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(spaced(text))]


def parse(text: str) -> list[Term]:
    """The terms of an officer's query; raise ``QueryError`` when there is nothing to search."""
    text = text.strip()
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the search text is longer than {MAX_QUERY_CHARS} characters")
    terms: list[Term] = []
    for quoted, bare in _TERMS.findall(text):
        raw = quoted if quoted else bare
        prefix = not quoted and raw.endswith("*")
        raw = raw.rstrip("*") if prefix else raw
        words = _words(raw)
        if not words:
            continue
        # A prefix of a CJK character means nothing: each character is a whole token.
        prefix = prefix and len(words) == 1 and not _CJK_CHAR.search(words[0])
        terms.append(Term(tuple(words), prefix, raw))
    if not terms:
        raise QueryError("the search text has no words to look for")
    if len(terms) > MAX_TERMS:
        raise QueryError(f"at most {MAX_TERMS} words or phrases at a time")
    return terms


def only_cjk(term: Term) -> bool:
    """The term is Chinese characters only (each one a token): a Chinese word or phrase."""
    return all(_CJK_CHAR.fullmatch(word) for word in term.words)


def fts5_query(term: Term) -> str:
    """The FTS5 MATCH expression of one term: a quoted phrase, ``*`` for a prefix."""
    # Each word is letters and digits only (``_WORD``), so quoting cannot be broken out of.
    return '"' + " ".join(term.words) + '"' + ("*" if term.prefix else "")


def prefix_tsquery(term: Term) -> str:
    """The ``to_tsquery('simple', ...)`` text of a one-word prefix term: ``'transf':*``."""
    if not term.prefix:
        raise ValueError("not a prefix term: use phraseto_tsquery on its text")
    return f"'{term.words[0]}':*"  # letters and digits only: nothing to escape


def highlights(terms: list[Term]) -> list[str]:
    """What to mark in a matching line: each term as it would read in the text."""
    out = []
    for term in terms:
        joiner = "" if all(_CJK_CHAR.fullmatch(w) for w in term.words) else " "
        out.append(joiner.join(term.words))
    return out
