"""Compliance search on a generated corpus: ``python -m bench.search``.

Generates ``--contacts`` ended contacts (customers with English and Chinese names, 50 advisors,
three languages, eight topics, text/voice/video, a quarter with a bot handoff and its intent,
about 6 chat lines each: English for English contacts, Traditional Chinese for Mandarin and
Cantonese ones, a few mixed; every contact sealed in the ledger, some held, some checked) over
the last 180 days, into a fresh SQLite file and into a fresh PostgreSQL database (created in
``--pg-url``'s server and dropped at the end), both migrated by the app's own alembic
migrations. Loading goes through SQLAlchemy Core in batches, so SQLite's full-text triggers
and PostgreSQL's GIN index are maintained as they are in production.

Then times ``contact_center.compliance.search.search`` (the code ``GET /api/compliance/search``
runs: the page's query, its total, the advisors and the matching lines) for each query of
``QUERIES``, ``--repeats`` times after one warm-up run, and reports p50/p99 in ms. Bounds:
``--max-seconds`` for the whole run (no new query starts past it). Progress on stderr; last line
JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from contact_center.compliance.search import SearchQuery, search
from contact_center.db import engine as db
from contact_center.db.models import ChatMessage, ComplianceCheck, Contact, ContactEvent, User
from recordings.ledger import LedgerEntry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAYS = 180
ADVISORS = 50
BATCH = 2000

SURNAMES = ["Chan", "Wong", "Lee", "Cheung", "Lau", "Ng", "Ho", "Leung", "Tam", "Yip", "Smith",
            "Brown", "Patel", "Kumar", "Garcia", "Müller", "Tanaka", "Kim", "Nguyen", "Lam"]
GIVEN = ["Mei", "Ka Yan", "Wing", "Siu Ming", "Tsz Ho", "Emily", "James", "Oliver", "Sophie",
         "Priya", "Arjun", "Lucía", "Hannah", "Yuki", "Min-jun", "Anh", "Grace", "Chloe", "Daniel",
         "Natalie", "Kelvin", "Winnie", "Ivan", "Queenie", "Marco"]
CHINESE_NAMES = ["陳大文", "李小明", "黃美玲", "張家輝", "劉德華", "吳淑儀", "何志強", "梁詠琪",
                 "林子祥", "鄭秀文", "王芳", "趙雷", "周杰", "孫麗", "馬小玲", "胡慧中"]
TOPICS = ["general", "cards", "fx", "remittance", "loans", "investments", "accounts", "complaints"]
INTENTS = ["report_lost_card", "ask_account_balance", "ask_loan", "ask_investment", "complaint",
           "request_human", "ask_fx_rate", "ask_remittance"]
CHANNELS = [["text"], ["text"], ["voice"], ["video"], ["text", "voice"], ["text", "video"]]
EN_LINES = [
    "Hello, I need some help with my {thing}",
    "I think there is a wrong charge on my {thing}",
    "Can you check the {thing} from last {when}?",
    "My card was declined at the supermarket {when}",
    "I would like to transfer money to my account in {place}",
    "What is the exchange rate for {currency} today?",
    "I lost my wallet {when} and my card was in it",
    "Could you explain the fee on my statement?",
    "I want to make a complaint about the service at the branch",
    "Please increase the limit on my credit card",
    "How long does a remittance to {place} take?",
    "I am thinking about a personal loan for a new car",
    "Thank you, that is very helpful",
    "Let me check that for you, one moment please",
    "I can see the transaction on {when}, it is still pending",
    "Your new card will arrive in five working days",
    "Is there anything else I can help you with today?",
    "I have blocked the card, nobody can use it now",
]
EN_FILL = {
    "thing": ["statement", "credit card", "savings account", "mortgage", "loan", "transfer",
              "debit card", "investment fund", "insurance policy"],
    "when": ["week", "month", "Monday", "Friday", "night", "weekend"],
    "place": ["London", "Sydney", "Toronto", "Singapore", "Manila", "Shenzhen"],
    "currency": ["US dollars", "euros", "yen", "renminbi", "sterling"],
}
ZH_LINES = [
    "你好，我想查詢{thing}",
    "我的{thing}好像有一筆錯誤的收費",
    "請問{when}的{thing}可以幫我查一下嗎？",
    "我的信用卡在超級市場被拒絕了",
    "我想轉賬到{place}的戶口",
    "今天{currency}的匯率是多少？",
    "我{when}遺失了錢包，信用卡也在裡面",
    "月結單上的手續費是甚麼？",
    "我想投訴分行的服務",
    "請幫我提高信用卡的信用額",
    "匯款到{place}需要多久？",
    "我想申請私人貸款買新車",
    "謝謝，你幫了我很大的忙",
    "請稍等，我幫你查一查",
    "我看到{when}的交易，現在還在處理中",
    "新卡會在五個工作天內寄到",
    "請問還有其他可以幫到你嗎？",
    "我已經幫你停用了這張卡",
]
ZH_FILL = {
    "thing": ["月結單", "信用卡", "儲蓄戶口", "按揭", "貸款", "轉賬記錄", "提款卡", "投資基金"],
    "when": ["上星期", "上個月", "星期一", "昨晚", "週末"],
    "place": ["倫敦", "悉尼", "多倫多", "新加坡", "深圳", "台北"],
    "currency": ["美元", "歐元", "日圓", "人民幣", "英鎊"],
}

#: (name, what it stands for, the query's fields; "now" is the corpus's latest day)
QUERIES: list[tuple[str, str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("customer_name", "a customer by part of the name", lambda c: {"customer": c["name"]}),
    ("customer_ref", "a customer by id", lambda c: {"customer": c["ref"]}),
    ("week_video", "7 days, video", lambda c: {
        "from": NOW - timedelta(days=7), "to": NOW, "channel": ["video"]}),
    ("text_en", "free text, an English word", lambda c: {"q": "statement"}),
    ("text_en_rare", "free text, a rarer English word", lambda c: {"q": "Toronto"}),
    ("text_zh", "free text, a Chinese word", lambda c: {"q": "信用卡"}),
    ("text_zh_rare", "free text, a rarer Chinese word", lambda c: {"q": "多倫多"}),
    ("combined", "30 days, Cantonese, cards, served, text 信用卡", lambda c: {
        "from": NOW - timedelta(days=30), "to": NOW, "language": ["yue"], "topic": ["cards"],
        "outcome": ["served"], "q": "信用卡"}),
    ("advisor_held", "one advisor, on hold, by duration", lambda c: {
        "advisor": [c["advisor"]], "held": True, "sort": "duration"}),
    ("page_200", "everything, page 200 of 25", lambda c: {"page": 200}),
    ("page_200_text", "free text, page 40 of 25", lambda c: {"q": "card", "page": 40}),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _line(rng: random.Random, chinese: bool) -> str:
    template = rng.choice(ZH_LINES if chinese else EN_LINES)
    fill = ZH_FILL if chinese else EN_FILL
    return template.format(**{k: rng.choice(v) for k, v in fill.items()})


def _rows(index: int, rng: random.Random, advisor_ids: list[int]) -> dict[str, list[dict[str, Any]]]:
    """One contact's rows: the contact, its events, chat lines, seal and maybe a check."""
    contact_id = uuid.UUID(int=rng.getrandbits(128)).hex
    language = rng.choices(["en", "zh", "yue"], weights=[5, 2, 3])[0]
    chinese_name = language != "en" and rng.random() < 0.5
    name = rng.choice(CHINESE_NAMES) if chinese_name else f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}"
    created = NOW - timedelta(seconds=rng.uniform(0, DAYS * 86400))
    length = timedelta(seconds=rng.uniform(30, 1500))
    served = rng.random() < 0.9
    advisor = rng.choice(advisor_ids) if served else None
    topic = rng.choice(TOPICS)
    contact = {
        "id": contact_id,
        "customer_ref": f"user:{100_000 + index // 3}",  # returning customers: ~3 contacts each
        "customer_name": name,
        "channels": rng.choice(CHANNELS),
        "language": language,
        "topic": topic,
        "skills": {topic: 2},
        "priority": 0,
        "vip": rng.random() < 0.05,
        "state": "ended" if served or rng.random() < 0.5 else "abandoned",
        "advisor_id": advisor,
        "instance": None,
        "created_at": created,
        "ended_at": created + length,
        "recording_status": "complete",
        "recording_failed": False,
    }
    events = [{"contact_id": contact_id, "at": created, "actor": contact["customer_ref"],
               "kind": "created", "from_state": None, "to_state": "queued",
               "data": {"channels": contact["channels"]}}]
    if rng.random() < 0.25:
        events.append({"contact_id": contact_id, "at": created + timedelta(seconds=5),
                       "actor": "bot", "kind": "handoff", "from_state": "bot",
                       "to_state": "queued", "data": {"intent": rng.choice(INTENTS)}})
    if advisor is not None:
        events.append({"contact_id": contact_id, "at": created + timedelta(seconds=20),
                       "actor": f"user:{advisor}", "kind": "accepted", "from_state": "offered",
                       "to_state": "connected", "data": {"agent_id": str(advisor)}})
    lines = []
    for seq in range(1, rng.randint(2, 10) + 1):
        chinese = language != "en" if rng.random() < 0.9 else language == "en"
        lines.append({
            "contact_id": contact_id, "seq": seq,
            "at": created + timedelta(seconds=20 + seq * 15),
            "sender_ref": contact["customer_ref"] if seq % 2 else f"user:{advisor or 0}",
            "sender_role": "customer" if seq % 2 else "advisor",
            "text": _line(rng, chinese),
        })
    held = rng.random() < 0.02
    seal = {
        "kind": "seal", "contact_id": contact_id, "manifest_hash": f"{rng.getrandbits(256):064x}",
        "prev_hash": "0" * 64, "entry_hash": f"{rng.getrandbits(256):064x}", "status": "complete",
        "sealed_at": created + length + timedelta(seconds=1), "locations": {},
        "retain_until": created + timedelta(days=7 * 365), "detail": {}, "held": held,
        "hold_reason": "litigation" if held else None, "held_by": "user:1" if held else None,
        "held_at": NOW if held else None,
    }
    checks = []
    if rng.random() < 0.1:
        checks.append({"contact_id": contact_id, "checked_at": NOW, "actor": "user:1",
                       "ok": rng.random() < 0.98, "problems": [], "files": 4, "bytes_hashed": 1})
    return {"contacts": [contact], "events": events, "lines": lines, "seals": [seal],
            "checks": checks}


async def generate(engine: AsyncEngine, contacts: int, seed: int) -> dict[str, Any]:
    """Load the corpus; what the queries need to know of it (a customer, an advisor)."""
    rng = random.Random(seed)
    tables = {
        "contacts": Contact.__table__,  # type: ignore[attr-defined]
        "events": ContactEvent.__table__,  # type: ignore[attr-defined]
        "lines": ChatMessage.__table__,  # type: ignore[attr-defined]
        "seals": LedgerEntry.__table__,  # type: ignore[attr-defined]
        "checks": ComplianceCheck.__table__,  # type: ignore[attr-defined]
    }
    users = User.__table__  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        await conn.execute(sa.insert(users), [
            {"username": f"bench-advisor-{i}", "password_hash": "x", "role": "advisor",
             "display_name": f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}", "languages": ["en"],
             "skills": {}, "capacity": {}, "vip": False, "disabled": False, "created_at": NOW}
            for i in range(ADVISORS)
        ])
        advisor_ids = list((await conn.execute(sa.select(users.c.id))).scalars())
    started = time.monotonic()
    counts = dict.fromkeys(tables, 0)
    sample: dict[str, Any] = {}
    seq = 0
    for first in range(0, contacts, BATCH):
        batch: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
        for index in range(first, min(contacts, first + BATCH)):
            for name, rows in _rows(index, rng, advisor_ids).items():
                batch[name].extend(rows)
        for seal in batch["seals"]:
            seq += 1
            seal["seq"] = seq
        if not sample:
            chosen = batch["contacts"][7]
            sample = {"name": chosen["customer_name"].split()[0] if " " in chosen["customer_name"]
                      else chosen["customer_name"], "ref": chosen["customer_ref"],
                      "advisor": advisor_ids[3]}
        async with engine.begin() as conn:
            for name, table in tables.items():
                if batch[name]:
                    await conn.execute(sa.insert(table), batch[name])
                    counts[name] += len(batch[name])
        done = min(contacts, first + BATCH)
        if done % (BATCH * 10) == 0 or done == contacts:
            rate = done / (time.monotonic() - started)
            log(f"  {done:,}/{contacts:,} contacts ({counts['lines']:,} chat lines), {rate:,.0f}/s")
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(sa.text("ANALYZE"))
        else:
            await conn.execute(sa.text("ANALYZE"))
            await conn.execute(sa.text("INSERT INTO chat_search(chat_search) VALUES ('optimize')"))
    return {"sample": sample, "rows": counts, "load_s": round(time.monotonic() - started, 1)}


async def measure(
    engine: AsyncEngine, sample: dict[str, Any], repeats: int, deadline: float
) -> dict[str, Any]:
    sessions = db.session_factory(engine)
    out: dict[str, Any] = {}
    for name, what, make in QUERIES:
        if time.monotonic() > deadline:
            log(f"  {name}: skipped (--max-seconds)")
            continue
        query = SearchQuery.model_validate(make(sample))
        times: list[float] = []
        total = 0
        for run in range(repeats + 1):
            async with sessions() as session:
                began = time.perf_counter()
                page = await search(session, query)
                took = (time.perf_counter() - began) * 1000
            total = page["total"]
            if run:  # the first run warms the caches
                times.append(took)
        times.sort()
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        out[name] = {"what": what, "total": total, "p50_ms": round(statistics.median(times), 1),
                     "p99_ms": round(p99, 1), "runs": len(times)}
        log(f"  {name:14} {what:48} total {total:>7,}  p50 {out[name]['p50_ms']:7.1f} ms"
            f"  p99 {out[name]['p99_ms']:7.1f} ms")
    return out


def _pg_admin(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_create(base: str) -> tuple[str, str]:
    import asyncpg

    name = f"cc_bench_search_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(_pg_admin(base))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, base.rsplit("/", 1)[0] + f"/{name}"


async def _pg_drop(base: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_admin(base))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_backend(backend: str, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    directory = tempfile.TemporaryDirectory(prefix="bench-search-")
    pg_name = None
    try:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(directory.name) / 'search.db'}"
        else:
            pg_name, url = await _pg_create(args.pg_url)
        log(f"{backend}: migrating a fresh database")
        await asyncio.to_thread(db.upgrade, url)
        engine = db.create_engine(url)
        try:
            log(f"{backend}: loading {args.contacts:,} contacts")
            corpus = await generate(engine, args.contacts, args.seed)
            if backend == "sqlite":
                size = await asyncio.to_thread(os.path.getsize, Path(directory.name) / "search.db")
                corpus["file_mb"] = round(size / 1e6, 1)
            log(f"{backend}: searching ({args.repeats} runs per query after a warm-up)")
            corpus["queries"] = await measure(engine, corpus["sample"], args.repeats, deadline)
        finally:
            await engine.dispose()
        return corpus
    finally:
        if pg_name:
            await _pg_drop(args.pg_url, pg_name)
        directory.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-seconds", type=float, default=1200)
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_seconds
    result: dict[str, Any] = {
        "bench": "search",
        "contacts": args.contacts,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg()[0],
    }
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if time.monotonic() > deadline:
            log(f"{backend}: skipped (--max-seconds)")
            continue
        result[backend] = await run_backend(backend, args, deadline)
    result["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
