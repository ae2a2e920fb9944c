"""Free text: how an officer's words become a query, and what the index finds (English and
Chinese, in step with inserts, edits and deletes) on the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from contact_center import appkeys
from contact_center.compliance import fulltext
from contact_center.compliance.fulltext import QueryError, Term
from contact_center.compliance.search import SearchQuery, search
from contact_center.contacts.store import add_chat_message
from contact_center.db.engine import transaction
from tests.compliance.recording import Line, make_contact


def test_words_phrases_prefixes_and_chinese_words() -> None:
    assert fulltext.parse("transfer") == [Term(("transfer",), False, "transfer")]
    assert fulltext.parse("Transf*") == [Term(("transf",), True, "Transf")]
    assert fulltext.parse('"lost card" stolen') == [
        Term(("lost", "card"), False, "lost card"),
        Term(("stolen",), False, "stolen"),
    ]
    assert fulltext.parse("轉賬") == [Term(("轉", "賬"), False, "轉賬")]
    assert fulltext.parse("信用卡 HK$500") == [
        Term(("信", "用", "卡"), False, "信用卡"),
        Term(("hk", "500"), False, "HK$500"),
    ]
    assert fulltext.parse("轉*") == [Term(("轉",), False, "轉")]  # a character is a whole token
    assert fulltext.spaced("我要轉賬 ok") == " 我  要  轉  賬  ok"


@pytest.mark.parametrize("text", ["", "   ", "***", "!!! ,,,", "a b c d e f g h i", "x" * 201])
def test_text_that_cannot_be_searched(text: str) -> None:
    with pytest.raises(QueryError):
        fulltext.parse(text)


def test_queries_cannot_break_out_of_their_quotes() -> None:
    [term] = fulltext.parse('card"OR"x')
    assert fulltext.fts5_query(term) == '"card or x"'
    [prefix] = fulltext.parse("tr'ans*")
    assert prefix.words == ("tr", "ans") and not prefix.prefix
    assert fulltext.prefix_tsquery(Term(("ok",), True, "ok")) == "'ok':*"


async def _ids(db: Any, text: str, marker: str) -> set[str]:
    async with transaction(db) as session:
        page = await search(session, SearchQuery(q=text, customer=marker, per_page=100))
    return {row["id"] for row in page["results"]}


@pytest.fixture
async def corpus(client: Any) -> dict[str, Any]:
    db = client.app[appkeys.DB]
    marker = f"FT{uuid.uuid4().hex[:8]}"
    texts = {
        "en": "I want to transfer HK$500 to my savings account",
        "hant": "我想查詢上星期的轉賬記錄",
        "hans": "我的信用卡被盗了",
        "reversed": "賬轉不是一個詞",
        "cafe": "Meet me at the café near Central",
        "mixed": "Card-1234 was blocked 昨日",
    }
    made = {}
    for key, text in texts.items():
        contact = await make_contact(db, customer_name=f"{marker} {key}")
        # the application's own writer: what the index sees is what the service stores
        await add_chat_message(
            db,
            contact_id=contact.contact.id,
            sender_ref="guest:x",
            sender_role="customer",
            text=text,
        )
        made[key] = contact.contact.id
    return {"db": db, "marker": marker, "ids": made}


async def test_english_and_chinese_words_are_found(corpus: dict[str, Any]) -> None:
    db, marker, ids = corpus["db"], corpus["marker"], corpus["ids"]
    assert await _ids(db, "transfer", marker) == {ids["en"]}
    assert await _ids(db, "TRANSFER savings", marker) == {ids["en"]}
    assert await _ids(db, "transf", marker) == set()  # a word is a whole word...
    assert await _ids(db, "transf*", marker) == {ids["en"]}  # ...unless asked for a prefix
    assert await _ids(db, "轉賬", marker) == {ids["hant"]}  # two characters, in this order
    assert await _ids(db, "賬轉", marker) == {ids["reversed"]}
    assert await _ids(db, "轉賬記錄", marker) == {ids["hant"]}
    assert await _ids(db, "信用卡", marker) == {ids["hans"]}
    assert await _ids(db, "昨日", marker) == {ids["mixed"]}
    assert await _ids(db, "blocked 昨日", marker) == {ids["mixed"]}
    assert await _ids(db, "1234", marker) | await _ids(db, "card-1234", marker) >= {ids["mixed"]}
    assert await _ids(db, "HK$500", marker) == {ids["en"]}
    assert await _ids(db, "café", marker) == {ids["cafe"]}
    assert await _ids(db, '"savings account"', marker) == {ids["en"]}
    assert await _ids(db, '"account savings"', marker) == set()
    assert await _ids(db, "transfer 信用卡", marker) == set()  # every term must be there


async def test_a_match_shows_the_line_it_found(corpus: dict[str, Any]) -> None:
    async with transaction(corpus["db"]) as session:
        page = await search(session, SearchQuery(q="轉賬", customer=corpus["marker"]))
    [row] = page["results"]
    assert row["match"]["text"] == "我想查詢上星期的轉賬記錄"
    assert row["match"]["seq"] == 1 and row["match"]["sender"] == "customer"
    assert page["highlight"] == ["轉賬"]


async def test_the_index_follows_edits_and_deletes(client: Any) -> None:
    db = client.app[appkeys.DB]
    marker = f"FX{uuid.uuid4().hex[:8]}"
    made = await make_contact(
        db, customer_name=marker, lines=(Line("customer", "first words here", 1),)
    )
    contact_id = made.contact.id
    assert await _ids(db, "first", marker) == {contact_id}
    async with transaction(db) as session:
        await session.execute(
            sa.text("UPDATE chat_messages SET text = :text WHERE contact_id = :id"),
            {"text": "密碼重設 please", "id": contact_id},
        )
    assert await _ids(db, "first", marker) == set()
    assert await _ids(db, "密碼", marker) == {contact_id}
    async with transaction(db) as session:
        await session.execute(
            sa.text("DELETE FROM chat_messages WHERE contact_id = :id"), {"id": contact_id}
        )
    assert await _ids(db, "密碼", marker) == set()


async def test_the_index_is_where_migration_0004_put_it(client: Any) -> None:
    """A table rebuild of chat_messages (a batch migration) would drop the SQLite triggers."""
    async with client.app[appkeys.ENGINE].connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = await connection.execute(
                sa.text(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'chat_messages'"
                )
            )
            assert {r[0] for r in rows} == {
                "chat_search_insert",
                "chat_search_update",
                "chat_search_delete",
            }
            fts = await connection.execute(sa.text("SELECT count(*) FROM chat_search"))
            total = await connection.execute(sa.text("SELECT count(*) FROM chat_messages"))
            assert fts.scalar_one() == total.scalar_one()
        else:
            rows = await connection.execute(
                sa.text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_chat_messages_search'"
                )
            )
            assert "gin" in rows.scalar_one().lower()
