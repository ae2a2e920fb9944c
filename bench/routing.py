"""Routing benchmark: decisions per second and decision latency on a real Redis.

    python -m bench.routing --agents 10000 --contacts 10000

Loads random agents (1-2 languages, 2-5 skills each) and makes them available, then enqueues
random contacts; each enqueue is one routing decision (one atomic Lua script choosing an agent
from the candidate window, or queueing). In the same run it measures a trivial Lua script
(``return 1``) at the same concurrency on the same Redis: the ceiling of one script call
through this client. Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from contact_center.tools.synthetic import quantile
from routing.models import AgentProfile, AgentState, Channel, ContactRequest
from routing.policy import load_policy, parse_policy
from routing.store import RouterStore

LANGUAGES = ["en", "zh", "yue"]
SKILLS = ["cards", "fx", "remittance", "loans", "investments", "complaints", "general"]
CHANNEL_MIX = [(Channel.TEXT, 0.6), (Channel.VOICE, 0.25), (Channel.VIDEO, 0.15)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def random_agent(rng: random.Random, i: int) -> AgentProfile:
    langs = set(rng.sample(LANGUAGES, rng.choice([1, 1, 2, 2, 3])))
    skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(2, 5))}
    return AgentProfile(id=f"a{i}", languages=frozenset(langs), skills=skills)


def random_contact(rng: random.Random, i: int) -> ContactRequest:
    channel = rng.choices([c for c, _ in CHANNEL_MIX], [w for _, w in CHANNEL_MIX])[0]
    required = rng.sample(SKILLS, rng.choice([1, 1, 1, 2]))
    optional = [s for s in rng.sample(SKILLS, 1) if s not in required and rng.random() < 0.3]
    return ContactRequest(
        id=f"c{i}",
        channel=channel,
        language=rng.choice(LANGUAGES),
        skills={s: rng.randint(1, 3) for s in required},
        optional_skills={s: rng.randint(1, 3) for s in optional},
        priority=rng.choice([0, 0, 0, 1, 2]),
        vip=rng.random() < 0.1,
    )


async def run_pool(
    items: Iterator[Any],
    call: Callable[[Any], Awaitable[Any]],
    *,
    concurrency: int,
    deadline: float,
    latencies: list[float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run ``call`` over ``items`` with ``concurrency`` workers; returns how many ran."""
    done = 0

    async def worker() -> None:
        nonlocal done
        for item in items:  # one shared iterator: each item taken once
            if time.monotonic() > deadline:
                return
            t0 = time.perf_counter()
            await call(item)
            if latencies is not None:
                latencies.append(time.perf_counter() - t0)
            done += 1
            if progress and done % 1000 == 0:
                progress(done)

    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return done


@asynccontextmanager
async def redis_at(url: str | None) -> AsyncIterator[tuple[str, str]]:
    """The given Redis, or an embedded Valkey for the duration of the run."""
    if url:
        yield url, "external"
        return
    from contact_center.server.valkey import EmbeddedValkey  # bench/ may use the app's Valkey

    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        server = EmbeddedValkey(Path(tmp), persist=False)
        started = server.start()
        try:
            yield started, "embedded valkey"
        finally:
            server.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.max_seconds
    async with redis_at(args.redis_url) as (url, kind):
        client = aioredis.Redis.from_url(url, decode_responses=True, max_connections=64)
        info = await client.info("server")
        version = info.get("valkey_version") or info.get("redis_version")
        prefix = f"bench:rt:{uuid.uuid4().hex[:8]}"
        policy = load_policy()
        if args.window:
            data = {**policy.model_dump(mode="json"), "candidate_window": args.window}
            policy = parse_policy(data)
        store = RouterStore(client, policy, prefix=prefix)
        now = time.time()
        try:
            log(f"routing bench on {kind} {version} at {url}: {args.agents} agents")
            t0 = time.perf_counter()
            agents = [random_agent(rng, i) for i in range(args.agents)]

            async def load(profile: AgentProfile) -> None:
                await store.upsert_agent(profile, now=now)
                await store.set_agent_state(profile.id, AgentState.AVAILABLE, now=now)

            loaded = await run_pool(
                iter(agents),
                load,
                concurrency=args.concurrency,
                deadline=deadline,
                progress=lambda n: log(f"  agents loaded: {n}/{args.agents}"),
            )
            load_s = time.perf_counter() - t0
            log(f"agents loaded: {loaded} in {load_s:.1f} s")

            trivial = client.register_script("return 1")
            ceiling_n = min(args.contacts, 20000)

            async def noop(_: int) -> None:
                await trivial(keys=[], args=[])

            t0 = time.perf_counter()
            await run_pool(
                iter(range(ceiling_n)), noop, concurrency=args.concurrency, deadline=deadline
            )
            ceiling = ceiling_n / (time.perf_counter() - t0)
            log(f"ceiling (trivial Lua script): {ceiling:,.0f} calls/s")

            contacts = [random_contact(rng, i) for i in range(args.contacts)]
            latencies: list[float] = []
            offered = 0

            async def decide(contact: ContactRequest) -> None:
                nonlocal offered
                if await store.enqueue(contact, now=now + 1) is not None:
                    offered += 1

            cpu0 = await server_cpu_s(client)
            stats0 = await client.info("commandstats")
            p0 = time.process_time()
            t0 = time.perf_counter()
            decided = await run_pool(
                iter(contacts),
                decide,
                concurrency=args.concurrency,
                deadline=deadline,
                latencies=latencies,
                progress=lambda n: log(f"  decisions: {n}/{args.contacts}"),
            )
            elapsed = time.perf_counter() - t0
            client_cpu = time.process_time() - p0
            server_cpu = await server_cpu_s(client) - cpu0
            stats1 = await client.info("commandstats")
            rate = decided / elapsed if elapsed else 0.0
            result = {
                "redis": kind,
                "redis_version": version,
                "agents": loaded,
                "contacts": decided,
                "concurrency": args.concurrency,
                "decisions_per_s": round(rate, 1),
                "p50_ms": round(statistics.median(latencies) * 1000, 3) if latencies else 0.0,
                "p90_ms": round((quantile(latencies, 0.90) or 0.0) * 1000, 3),
                "p99_ms": round((quantile(latencies, 0.99) or 0.0) * 1000, 3),
                "max_ms": round(max(latencies, default=0.0) * 1000, 3),
                "offered": offered,
                "queued": decided - offered,
                "ceiling_per_s": round(ceiling, 1),
                "ceiling_ratio": round(rate / ceiling, 3) if ceiling else 0.0,
                "load_s": round(load_s, 1),
                # where the time goes: CPU per decision in Redis and in this client process
                "server_cpu_us_per_decision": round(server_cpu / max(decided, 1) * 1e6, 1),
                "client_cpu_us_per_decision": round(client_cpu / max(decided, 1) * 1e6, 1),
                "candidate_window": store.policy.candidate_window,
                # Redis counts the commands a script calls: per decision, by command (on a
                # shared Redis other clients' commands are counted too: read it on Valkey)
                "redis_commands_per_decision": _per_decision(stats0, stats1, decided),
                # and the server time Redis counts for them (evalsha: the whole script, the
                # commands it called included)
                "redis_usec_per_decision": _per_decision(stats0, stats1, decided, "usec"),
            }
            log(
                f"decisions: {decided} in {elapsed:.2f} s = {rate:,.0f}/s, "
                f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                f"{offered} offered, ceiling ratio {result['ceiling_ratio']}"
            )
            return result
        finally:
            await delete_keys(client, "{" + prefix + "}*")
            await client.aclose()


async def server_cpu_s(client: aioredis.Redis) -> float:
    """The Redis server's CPU seconds so far (user + system, ``INFO cpu``)."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def delete_keys(client: aioredis.Redis, match: str) -> None:
    """Delete the bench's keys (``SCAN`` by pattern, 500 at a time)."""
    keys = [k async for k in client.scan_iter(match=match, count=1000)]
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i : i + 500])


def _per_decision(
    before: dict[str, Any], after: dict[str, Any], decided: int, field: str = "calls"
) -> dict[str, float]:
    """``field`` (calls, or usec) per decision by command between two ``INFO commandstats``
    (the bench's own INFO calls left out), with their total under ``all``."""
    calls: dict[str, float] = {}
    for key, value in after.items():
        if not key.startswith("cmdstat_") or key in ("cmdstat_info",):
            continue
        count = int(value[field]) - int(before.get(key, {}).get(field, 0))
        if count > 0:
            calls[key.removeprefix("cmdstat_")] = round(count / max(decided, 1), 2)
    ordered = dict(sorted(calls.items(), key=lambda item: -item[1]))
    if field == "usec":  # evalsha's time holds its commands': their sum, apart
        inner = sum(v for k, v in ordered.items() if k not in ("evalsha", "evalsha_ro"))
        return {"commands_in_scripts": round(inner, 2), **ordered}
    return {"all": round(sum(ordered.values()), 2), **ordered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--contacts", type=int, default=10000)
    parser.add_argument("--redis-url", default=None, help="default: an embedded Valkey")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (tasks)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--window", type=int, default=0, help="override the policy's candidate_window"
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on the whole run")
    args = parser.parse_args(argv)
    if not (1 <= args.agents <= 200_000 and 1 <= args.contacts <= 200_000):
        parser.error("--agents and --contacts must be between 1 and 200000")
    result = asyncio.run(bench(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
