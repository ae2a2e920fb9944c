"""Two versions of the router's Lua scripts on one Redis, their decisions interleaved.

    python -m bench.routing_ab --other-lua ../base/routing/lua

On a shared machine two runs of ``bench.routing`` a minute apart see different loads, so a
few percent of server time per decision cannot be told apart. Here the same random agents are
loaded twice (one key prefix per version) and the same random contacts are enqueued in batches,
alternating which version goes first, so both versions see the same conditions. Per version:
decisions/s, Redis CPU µs per decision (INFO cpu over its batches) and how many were offered
at once. Agents too are loaded into both versions in turn, which goes first alternating per
agent. The other version's scripts answer in this checkout's format (``routing.store`` reads
both) and take its arguments, or, older ones, the policy JSON first (see _use_scripts_of).
Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.routing import (
    delete_keys,
    log,
    random_agent,
    random_contact,
    redis_at,
    run_pool,
    server_cpu_s,
)
from routing.models import AgentProfile, AgentState, ContactRequest
from routing.policy import Policy, load_policy
from routing.scripts import SCRIPT_NAMES, assemble
from routing.store import RouterStore


def _use_scripts_of(store: RouterStore, lua_dir: Path) -> None:
    """Point ``store`` at another checkout's scripts, assembled as scripts.py does; a bench-only
    swap of the store's registered scripts. Scripts of before the policy was compiled in read it
    as JSON from ARGV[1] (then now, then their own): those calls get it prepended."""
    common = (lua_dir / "common.lua").read_text(encoding="utf-8")
    reads_json = "cjson.decode(ARGV[1])" in common
    swapped: dict[str, Any] = {}
    for name in SCRIPT_NAMES:
        body = (lua_dir / f"{name}.lua").read_text(encoding="utf-8")
        if reads_json:
            swapped[name] = _PolicyFirst(
                store.redis.register_script(common + "\n" + body),
                policy_json(store.policy),
            )
        else:
            source = assemble(store.policy.lua_table, common, body)
            swapped[name] = store.redis.register_script(source)
    store._scripts = swapped


def policy_json(policy: Policy) -> str:
    """ARGV[1] of the scripts of before the policy was compiled into them."""
    return json.dumps(policy.lua_data(), separators=(",", ":"))


class _PolicyFirst:
    """A registered script called with the policy JSON as its first argument."""

    def __init__(self, script: Any, policy_json: str) -> None:
        self.script, self.policy_json = script, policy_json

    async def __call__(self, *, keys: list[Any], args: list[Any]) -> Any:
        return await self.script(keys=keys, args=[self.policy_json, *args])


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + args.max_seconds
    async with redis_at(args.redis_url) as (url, kind):
        client = aioredis.Redis.from_url(url, decode_responses=True, max_connections=64)
        policy, now = load_policy(), time.time()
        run = f"bench:ab:{random.randrange(16**8):08x}"
        stores = {"this": RouterStore(client, policy, prefix=f"{run}:this")}
        stores["other"] = RouterStore(client, policy, prefix=f"{run}:other")
        _use_scripts_of(stores["other"], Path(args.other_lua))
        try:
            # the same agents for both versions, loaded agent by agent, alternating which
            # version gets each first: neither version's keys all come first in memory
            rng = random.Random(args.seed)
            agents = [(i, random_agent(rng, i)) for i in range(args.agents)]

            async def load(item: tuple[int, AgentProfile]) -> None:
                i, profile = item
                for name in ("this", "other") if i % 2 == 0 else ("other", "this"):
                    await stores[name].upsert_agent(profile, now=now)
                    await stores[name].set_agent_state(profile.id, AgentState.AVAILABLE, now=now)

            await run_pool(iter(agents), load, concurrency=args.concurrency, deadline=deadline)
            log(f"{args.agents} agents loaded in both versions")
            rng = random.Random(args.seed + 1)
            contacts = [random_contact(rng, i) for i in range(args.contacts)]
            totals: dict[str, dict[str, float]] = {
                name: {"cpu_s": 0.0, "wall_s": 0.0, "decisions": 0, "offered": 0} for name in stores
            }
            for batch_no, start in enumerate(range(0, len(contacts), args.batch)):
                batch = contacts[start : start + args.batch]
                for name in ("this", "other") if batch_no % 2 == 0 else ("other", "this"):
                    store, total = stores[name], totals[name]

                    async def decide(
                        c: ContactRequest,
                        store: RouterStore = store,
                        total: dict[str, float] = total,
                    ) -> None:
                        if await store.enqueue(c, now=now + 1) is not None:
                            total["offered"] += 1

                    cpu0, t0 = await server_cpu_s(client), time.perf_counter()
                    total["decisions"] += await run_pool(
                        iter(batch), decide, concurrency=args.concurrency, deadline=deadline
                    )
                    total["wall_s"] += time.perf_counter() - t0
                    total["cpu_s"] += await server_cpu_s(client) - cpu0
            result: dict[str, Any] = {"redis": kind, "other_lua": args.other_lua}
            for name, t in totals.items():
                n = max(int(t["decisions"]), 1)
                result[name] = {
                    "decisions": t["decisions"],
                    "offered": t["offered"],
                    "decisions_per_s": round(n / t["wall_s"], 1) if t["wall_s"] else 0.0,
                    "server_cpu_us_per_decision": round(t["cpu_s"] / n * 1e6, 1),
                }
            return result
        finally:
            await delete_keys(client, "{" + run + ":*")
            await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing_ab", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--other-lua", required=True, help="another checkout's routing/lua")
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--contacts", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=500, help="decisions per version in turn")
    parser.add_argument("--redis-url", default=None, help="default: an embedded Valkey")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound on the whole run")
    args = parser.parse_args(argv)
    if not (1 <= args.agents <= 200_000 and 1 <= args.contacts <= 200_000 and args.batch >= 1):
        parser.error("--agents and --contacts between 1 and 200000, --batch at least 1")
    print(json.dumps(asyncio.run(bench(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
