"""compliance search

Revision ID: 0005
Revises: 0004
Full-text search over chat (the bot's lines included), the indexes the compliance search
filters and sorts by, and the table of on-demand recording checks.

How text is tokenised, the same on both databases: every CJK character (CJK radicals to the
end of the unified ideographs, U+2E80-U+9FFF, which takes in kana and bopomofo; compatibility
ideographs U+F900-U+FAFF; the supplementary ideographs from U+20000) is made a token of its own
by putting spaces around it, and everything else is split into words as usual. A Chinese word
the officer types is then searched as a *phrase* of its characters, adjacent and in order
(``"轉 賬"``), which finds it wherever it stands in a line, without a dictionary; an English
word is a whole word (``transfer``; ``transf*`` for a prefix). Trigrams were not used: the most
common Chinese word length is two characters, which a trigram index cannot look up.

- SQLite: an FTS5 table ``chat_search`` (unicode61 tokenizer, diacritics folded) with the
  spaced text, filled from ``chat_messages`` and kept in step by three triggers. The spacing
  is done in SQL (triggers cannot call CTEs or Python): ``json_each`` over a list of
  ``length(text)`` zeros numbers the characters. A table rebuild of ``chat_messages`` (a batch
  migration) drops the triggers with the table: such a migration must create them again
  (``tests/compliance/test_fulltext.py`` fails if they are missing).
- PostgreSQL: an immutable function ``cc_search_text(text)`` does the spacing with one
  ``regexp_replace``, and a GIN expression index on
  ``to_tsvector('simple', cc_search_text(text))`` answers ``@@`` queries, in step by
  construction (no trigger, no copy of the text).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# unicode() ranges made tokens of their own; keep in step with compliance/fulltext.py.
_CJK = (
    "unicode(c) BETWEEN 11904 AND 40959"  # U+2E80..U+9FFF
    " OR unicode(c) BETWEEN 63744 AND 64255"  # U+F900..U+FAFF
    " OR unicode(c) BETWEEN 131072 AND 262143"  # U+20000..U+3FFFF
)


def _sqlite_spaced(text: str) -> str:
    """A scalar subquery: ``text`` with a space on each side of every CJK character."""
    # The inner ORDER BY holds: SQLite does not flatten an ordered subquery into an aggregate.
    return (
        f"(SELECT coalesce(group_concat(CASE WHEN {_CJK} THEN ' ' || c || ' ' ELSE c END, ''), '')"
        f" FROM (SELECT substr({text}, key + 1, 1) AS c"
        f" FROM json_each('[' || replace(hex(zeroblob(length({text}))), '00', '0,') || '0]')"
        f" WHERE key < length({text}) ORDER BY key))"
    )


SQLITE_UP = [
    "CREATE VIRTUAL TABLE chat_search USING fts5("
    "body, contact_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    f"INSERT INTO chat_search (rowid, body, contact_id)"
    f" SELECT id, {_sqlite_spaced('m.text')}, contact_id FROM chat_messages AS m",
    f"CREATE TRIGGER chat_search_insert AFTER INSERT ON chat_messages BEGIN"
    f" INSERT INTO chat_search (rowid, body, contact_id)"
    f" VALUES (new.id, {_sqlite_spaced('new.text')}, new.contact_id); END",
    "CREATE TRIGGER chat_search_delete AFTER DELETE ON chat_messages BEGIN"
    " DELETE FROM chat_search WHERE rowid = old.id; END",
    f"CREATE TRIGGER chat_search_update AFTER UPDATE OF text, contact_id ON chat_messages BEGIN"
    f" DELETE FROM chat_search WHERE rowid = old.id;"
    f" INSERT INTO chat_search (rowid, body, contact_id)"
    f" VALUES (new.id, {_sqlite_spaced('new.text')}, new.contact_id); END",
    "CREATE INDEX ix_contact_events_intent ON contact_events (json_extract(data, '$.intent'))"
    " WHERE kind = 'handoff'",
]
SQLITE_DOWN = [
    "DROP INDEX IF EXISTS ix_contact_events_intent",
    "DROP TRIGGER IF EXISTS chat_search_update",
    "DROP TRIGGER IF EXISTS chat_search_delete",
    "DROP TRIGGER IF EXISTS chat_search_insert",
    "DROP TABLE IF EXISTS chat_search",
]

POSTGRESQL_UP = [
    # One regexp_replace: each CJK character gets a space on either side.
    r"""CREATE FUNCTION cc_search_text(body text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT regexp_replace(body, '([\u2E80-\u9FFF\uF900-\uFAFF\U00020000-\U0003FFFF])',
                                ' \1 ', 'g') $$""",
    "CREATE INDEX ix_chat_messages_search ON chat_messages"
    " USING gin (to_tsvector('simple'::regconfig, cc_search_text(text)))",
    "CREATE INDEX ix_contact_events_intent ON contact_events ((data ->> 'intent'))"
    " WHERE kind = 'handoff'",
]
POSTGRESQL_DOWN = [
    "DROP INDEX IF EXISTS ix_contact_events_intent",
    "DROP INDEX IF EXISTS ix_chat_messages_search",
    "DROP FUNCTION IF EXISTS cc_search_text(text)",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "compliance_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes_hashed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_compliance_checks_contact", "compliance_checks", ["contact_id", "id"])
    # Sorting and time ranges; who served a contact (an accepted offer, transfers included).
    op.execute("CREATE INDEX ix_contacts_created_at ON contacts (created_at)")
    op.execute(
        "CREATE INDEX ix_contact_events_accepted ON contact_events (actor) WHERE kind = 'accepted'"
    )
    for statement in SQLITE_UP if dialect == "sqlite" else POSTGRESQL_UP:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_DOWN if dialect == "sqlite" else POSTGRESQL_DOWN:
        op.execute(statement)
    op.execute("DROP INDEX IF EXISTS ix_contact_events_accepted")
    op.execute("DROP INDEX IF EXISTS ix_contacts_created_at")
    op.drop_index("ix_compliance_checks_contact", table_name="compliance_checks")
    op.drop_table("compliance_checks")
