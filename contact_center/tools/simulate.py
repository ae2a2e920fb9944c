"""``contact-center simulate``: synthetic customer/advisor calls against a running server.

A client only: it speaks the WebSocket protocol (``contact_center.tools.wsclient``) and carries media
with ``SyntheticPeer`` (painted frame counters and send times as video, a tone as audio) or chat
lines stamped with their send time (text). All calls are set up, then measured over one common
window of ``seconds``, then ended (customer ``session.end``, advisor ``wrapup.done``). Benchmarks
reuse ``Simulation`` and hook their own measurement into that window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from contact_center.media.fanout import cancel_and_wait
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer, quantile
from contact_center.tools.wsclient import RequestFailed, SignallingClient

log = logging.getLogger(__name__)

CHANNELS = ("video", "voice", "text")
TEXT_CAPACITY = 3  # what --create-advisors gives each advisor for text
SETUP_TIMEOUT_S = 60.0
END_TIMEOUT_S = 30.0
MAX_CALLS = 2000
MAX_SECONDS = 3600.0


def progress(message: str) -> None:
    print(f"[simulate {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ms(values: list[float], q: float) -> float | None:
    """A quantile for the report, in ms to two decimals."""
    value = quantile(values, q)
    return None if value is None else round(value, 2)


@dataclass
class ChatStats:
    """Chat lines of one call; latencies in milliseconds (send and receipt share this clock)."""

    sent: int = 0
    send_errors: int = 0
    busy: int = 0  # of the send errors: refused ``busy`` (back-pressure), nothing stored
    relayed: int = 0  # customer lines seen by the advisor
    replies: int = 0  # advisor echoes seen by the customer
    out_of_order: int = 0
    relay_ms: list[float] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)


@dataclass
class Call:
    """One customer and, once an advisor accepted, the advisor's side of the same contact."""

    index: int
    customer: SignallingClient
    contact_id: str = ""
    customer_peer: SyntheticPeer | None = None
    advisor: SignallingClient | None = None
    advisor_media: SignallingClient | None = None  # a media_only connection, when needed
    advisor_peer: SyntheticPeer | None = None
    chat: ChatStats = field(default_factory=ChatStats)
    snapshot: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    completed: bool = False


def _ws_url(base_url: str) -> str:
    return base_url.rstrip("/").replace("http", "ws", 1) + "/ws"


def stamp_line(kind: str, index: int, n: int, sent_ns: int | None = None) -> str:
    """``kind i<index> n<n> t<ms>.<ns>``, stamped with the send time (``sent_ns``, or now).

    No run of 13-19 digits that could pass for a card number: the server would mask it (as
    ``"12 345 1075696870289"``, one line in four, was), and a masked line is not counted."""
    ns = time.monotonic_ns() if sent_ns is None else sent_ns
    return f"{kind} i{index} n{n} t{ns // 1_000_000}.{ns % 1_000_000:06d}"


def parse_line(text: str) -> tuple[str, int, int, int] | None:
    """(kind, index, n, send time in ns) of a ``stamp_line``; None for any other text."""
    parts = text.split()
    if len(parts) != 4 or [p[:1] for p in parts[1:]] != ["i", "n", "t"]:
        return None
    ms, dot, ns = parts[3][1:].partition(".")
    numbers = (parts[1][1:], parts[2][1:], ms, ns)
    if not dot or not all(number.isdigit() for number in numbers):
        return None
    return parts[0], int(numbers[0]), int(numbers[1]), int(ms) * 1_000_000 + int(ns)


async def _negotiate(client: SignallingClient, contact_id: str, peer: SyntheticPeer) -> None:
    await client.request("rtc.offer", contact_id=contact_id, sdp=await peer.offer())
    answer = await client.wait_for("rtc.answer", contact_id=contact_id, timeout=SETUP_TIMEOUT_S)
    await peer.accept_answer(answer["sdp"])


async def _sent_packets(peer: SyntheticPeer) -> dict[str, int]:
    """RTP packets sent per kind (one per audio frame with Opus at 20 ms)."""
    sent = {"audio": 0, "video": 0}
    with contextlib.suppress(Exception):
        for stats in (await peer.pc.getStats()).values():
            if getattr(stats, "type", "") == "outbound-rtp":
                sent[stats.kind] = sent.get(stats.kind, 0) + stats.packetsSent
    return sent


class Simulation:
    """Runs ``calls`` synthetic contacts through the server at ``url``; see ``run``."""

    def __init__(
        self,
        url: str,
        advisors: list[tuple[str, str]],
        *,
        calls: int,
        seconds: float,
        channel: str = "video",
        warmup: float = 0.0,
        chat_rate: float = 1.0,
        chat_echo: bool = True,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        ice: IceSettings | None = None,
        quiet: bool = False,
    ) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
        self.url = url.rstrip("/")
        self.advisor_accounts = advisors
        self.calls_wanted, self.seconds, self.channel = calls, seconds, channel
        self.warmup, self.chat_rate, self.chat_echo = warmup, chat_rate, chat_echo
        self.video_size = (width, height, fps)
        self.ice = ice or IceSettings.loopback()
        self.quiet = quiet
        self.calls: list[Call] = []
        self.window: tuple[float, float] = (0.0, 0.0)
        self._advisors: list[SignallingClient] = []
        self._accepted: dict[str, asyncio.Future[Call]] = {}
        self._dispatchers: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()

    def _say(self, message: str) -> None:
        if not self.quiet:
            progress(message)

    # ------------------------------------------------------------------ setup

    def _slot(self, contact_id: str) -> asyncio.Future[Call]:
        """The advisor side of ``contact_id``, whichever side learns of the contact first."""
        if contact_id not in self._accepted:
            self._accepted[contact_id] = asyncio.get_running_loop().create_future()
        return self._accepted[contact_id]

    async def _advisor_online(self, username: str, password: str) -> SignallingClient:
        client = SignallingClient(self.url)
        self._advisors.append(client)
        await client.login(username, password)
        await client.connect()
        await client.request("agent.status", status="available")
        return client

    async def _dispatch(self, client: SignallingClient) -> None:
        """Accept every offer this advisor gets; the handlers are owned by the simulation."""
        while True:
            offer = await client.wait_for("offer", timeout=MAX_SECONDS)
            task = asyncio.create_task(self._advisor_side(client, offer), name="sim advisor side")
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _advisor_side(self, client: SignallingClient, offer: dict[str, Any]) -> None:
        contact_id = offer["contact_id"]
        slot = self._slot(contact_id)
        try:
            accepted = await client.request("offer.accept", contact_id=contact_id)
            call = Call(index=-1, customer=client, contact_id=contact_id, advisor=client)
            if self.channel != "text":
                media_url = accepted.get("media_url") or offer.get("media_url")
                media_client = client
                if media_url and media_url != _ws_url(client.base_url):
                    # This contact's media lives on another instance: talk rtc.* to it there.
                    media_client = SignallingClient(client.base_url, session=client.http)
                    call.advisor_media = media_client
                    await media_client.connect(media_url, media_only=True)
                peer = SyntheticPeer(
                    self.ice,
                    video=self.channel == "video",
                    width=self.video_size[0],
                    height=self.video_size[1],
                    fps=self.video_size[2],
                    name=f"advisor-{contact_id}",
                )
                call.advisor_peer = peer
                await _negotiate(media_client, contact_id, peer)
            if not slot.done():
                slot.set_result(call)
        except Exception as exc:
            if not slot.done():
                slot.set_exception(exc)

    async def _customer_side(self, call: Call) -> None:
        client = call.customer
        await client.as_guest()
        await client.connect()
        started = await client.request(
            "session.start", channels=[self.channel], language="en", skip_bot=True
        )
        call.contact_id = started["contact_id"]
        await client.wait_for(
            "session.state", contact_id=call.contact_id, state="connected", timeout=SETUP_TIMEOUT_S
        )
        if self.channel != "text":
            call.customer_peer = SyntheticPeer(
                self.ice,
                video=self.channel == "video",
                width=self.video_size[0],
                height=self.video_size[1],
                fps=self.video_size[2],
                name=f"customer-{call.index}",
            )
            await _negotiate(client, call.contact_id, call.customer_peer)
        advisor_side = await self._slot(call.contact_id)
        call.advisor = advisor_side.advisor
        call.advisor_media = advisor_side.advisor_media
        call.advisor_peer = advisor_side.advisor_peer
        for peer in (call.customer_peer, call.advisor_peer):
            if peer is not None:
                await peer.wait_connected()

    async def _setup(self, call: Call) -> None:
        try:
            async with asyncio.timeout(SETUP_TIMEOUT_S):
                await self._customer_side(call)
        except Exception as exc:
            call.error = f"setup: {type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------ the window

    async def _chat(self, call: Call, seconds: float) -> None:
        """Customer lines at ``chat_rate``; the advisor echoes each (round trip) if asked."""
        assert call.advisor is not None
        advisor, customer, stats = call.advisor, call.customer, call.chat
        count = max(1, int(seconds * self.chat_rate))

        async def send(client: SignallingClient, text: str) -> None:
            try:
                await client.request("chat.send", contact_id=call.contact_id, text=text)
            except (RequestFailed, TimeoutError, ConnectionError) as exc:
                stats.send_errors += 1
                stats.busy += isinstance(exc, RequestFailed) and exc.code == "busy"

        async def advisor_reads(tasks: asyncio.TaskGroup) -> None:
            last = -1
            while True:
                message = await advisor.wait_for(
                    "chat.message", contact_id=call.contact_id, timeout=MAX_SECONDS
                )
                parsed = parse_line(message.get("text", ""))
                if message.get("sender") != "customer" or parsed is None or parsed[0] != "sim":
                    continue
                stats.relayed += 1
                stats.relay_ms.append((time.monotonic_ns() - parsed[3]) / 1e6)
                stats.out_of_order += parsed[2] <= last
                last = max(last, parsed[2])
                if self.chat_echo:
                    tasks.create_task(
                        send(advisor, stamp_line("re", call.index, parsed[2], parsed[3]))
                    )

        async def customer_reads() -> None:
            while True:
                message = await customer.wait_for(
                    "chat.message", contact_id=call.contact_id, timeout=MAX_SECONDS
                )
                parsed = parse_line(message.get("text", ""))
                if message.get("sender") != "advisor" or parsed is None or parsed[0] != "re":
                    continue
                stats.replies += 1
                stats.round_trip_ms.append((time.monotonic_ns() - parsed[3]) / 1e6)

        async with asyncio.TaskGroup() as tasks:
            readers = [
                tasks.create_task(advisor_reads(tasks)),
                tasks.create_task(customer_reads()),
            ]
            # Stagger the calls over one period, or all of them would send at the same instant.
            start = time.monotonic() + (call.index / max(1, self.calls_wanted)) / self.chat_rate
            for n in range(count):
                delay = start + n / self.chat_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.monotonic() - start > seconds:
                    break  # fell behind: keep the window, not the count
                stats.sent += 1
                tasks.create_task(send(customer, stamp_line("sim", call.index, n)))
            await asyncio.sleep(min(2.0, seconds / 4))  # let the last lines arrive
            for reader in readers:
                await cancel_and_wait(reader)

    async def _snapshot(self, call: Call) -> None:
        start, end = self.window
        for direction, sender, receiver in (
            ("customer_to_advisor", call.customer_peer, call.advisor_peer),
            ("advisor_to_customer", call.advisor_peer, call.customer_peer),
        ):
            if sender is None or receiver is None:
                continue
            stats = receiver.stats
            sent = await _sent_packets(sender)
            call.snapshot[direction] = {
                "video_sent": sender.video_track.counter if sender.video_track else 0,
                "audio_sent": sent.get("audio", 0),
                "video_received": stats.frames.get("video", 0),
                "audio_received": stats.frames.get("audio", 0),
                "fps": sum(1 for t in stats.arrivals["video"] if start <= t <= end)
                / max(end - start, 1e-9),
                "audio_fps": sum(1 for t in stats.arrivals["audio"] if start <= t <= end)
                / max(end - start, 1e-9),
                "out_of_order": stats.out_of_order,
                "missing": stats.missing,
                "latencies": [ms for t, ms in stats.latencies if start <= t <= end],
            }

    # ------------------------------------------------------------------ the end

    async def _end(self, call: Call) -> None:
        try:
            async with asyncio.timeout(END_TIMEOUT_S):
                await call.customer.request("session.end", contact_id=call.contact_id)
                assert call.advisor is not None
                await call.advisor.wait_for(
                    "session.state", contact_id=call.contact_id, state="wrap_up"
                )
                try:
                    await call.advisor.request("wrapup.done", contact_id=call.contact_id)
                except RequestFailed as exc:
                    # An advisor's wrap-up is per advisor in the router: finishing one contact's
                    # ends the others it was wrapping up too (text, capacity > 1), so this one,
                    # seen in wrap-up above, may be ended already. Not a failure of the call.
                    if exc.code != "invalid_state":
                        raise
            call.completed = call.error is None
        except Exception as exc:
            call.error = call.error or f"end: {type(exc).__name__}: {exc}"

    async def _close(self) -> None:
        for task in self._dispatchers + list(self._handlers):
            await cancel_and_wait(task)
        for call in self.calls:
            for peer in (call.customer_peer, call.advisor_peer):
                if peer is not None:
                    await peer.close()
            if call.advisor_media is not None:
                await call.advisor_media.close()
            await call.customer.close()
        for client in self._advisors:
            await client.close()

    async def run(
        self, measure: Callable[[float], Awaitable[dict[str, Any]]] | None = None
    ) -> dict[str, Any]:
        """Set up every call, measure one window of ``seconds``, end the calls, report.

        ``measure(seconds)``, when given, runs during the window instead of a plain sleep (a
        benchmark samples the server there); what it returns goes into the report's ``server``.
        """
        budget = SETUP_TIMEOUT_S * 2 + self.warmup + self.seconds * 2 + END_TIMEOUT_S + 30
        extra: dict[str, Any] = {}
        try:
            async with asyncio.timeout(budget):
                self._say(f"{len(self.advisor_accounts)} advisor(s) signing in")
                async with asyncio.timeout(SETUP_TIMEOUT_S):
                    advisors = await asyncio.gather(
                        *(self._advisor_online(u, p) for u, p in self.advisor_accounts)
                    )
                for client in advisors:
                    self._dispatchers.append(
                        asyncio.create_task(self._dispatch(client), name="sim offers")
                    )
                self.calls = [
                    Call(index=i, customer=SignallingClient(self.url))
                    for i in range(self.calls_wanted)
                ]
                self._say(f"setting up {len(self.calls)} {self.channel} call(s)")
                await asyncio.gather(*(self._setup(call) for call in self.calls))
                live = [call for call in self.calls if call.error is None]
                self._say(
                    f"{len(live)} call(s) up; warm-up {self.warmup:.0f} s, then {self.seconds:.0f} s"
                )
                await asyncio.sleep(self.warmup)
                start = time.monotonic()
                work: list[Awaitable[Any]] = []
                if self.channel == "text":
                    work += [self._chat(call, self.seconds) for call in live]
                if measure is not None:
                    work.append(measure(self.seconds))
                else:
                    work.append(asyncio.sleep(self.seconds))
                results = await asyncio.gather(*work, return_exceptions=True)
                self.window = (start, time.monotonic())
                if measure is not None and isinstance(results[-1], dict):
                    extra = results[-1]
                for call, result in zip(live, results, strict=False):
                    if self.channel == "text" and isinstance(result, BaseException):
                        call.error = f"chat: {type(result).__name__}: {result}"
                for call in live:
                    await self._snapshot(call)
                self._say("ending the calls")
                # Failed calls too, best effort: leave no contact open on the server.
                ending = [call for call in self.calls if call.contact_id and call.advisor]
                await asyncio.gather(*(self._end(call) for call in ending))
        except TimeoutError:
            for call in self.calls:
                call.error = call.error or "the simulation ran out of time"
        finally:
            await self._close()
        report = self.report()
        if extra:
            report["server"] = extra
        return report

    # ------------------------------------------------------------------ the report

    def report(self) -> dict[str, Any]:
        start, end = self.window
        completed = [c for c in self.calls if c.completed]
        for call in completed:
            if self.channel == "text":
                ok = call.chat.relayed > 0 and (call.chat.replies > 0 or not self.chat_echo)
            else:
                ok = all(
                    call.snapshot.get(d, {}).get("audio_received", 0) > 0
                    for d in ("customer_to_advisor", "advisor_to_customer")
                )
            if not ok:
                call.completed, call.error = False, "no media or chat came through"
        report: dict[str, Any] = {
            "channel": self.channel,
            "calls": len(self.calls),
            "completed": sum(c.completed for c in self.calls),
            "failed": sum(not c.completed for c in self.calls),
            "seconds": round(end - start, 2),
            "errors": sorted({c.error for c in self.calls if c.error})[:10],
        }
        if self.channel == "text":
            lines = [c.chat for c in self.calls]
            relay = [ms for s in lines for ms in s.relay_ms]
            rtt = [ms for s in lines for ms in s.round_trip_ms]
            report["chat"] = {
                "sent": sum(s.sent for s in lines),
                "send_errors": sum(s.send_errors for s in lines),
                "busy": sum(s.busy for s in lines),
                "relayed": sum(s.relayed for s in lines),
                "replies": sum(s.replies for s in lines),
                "out_of_order": sum(s.out_of_order for s in lines),
                "rate_per_s": round(sum(s.sent for s in lines) / self.seconds, 1),
                "relay_p50_ms": _ms(relay, 0.5),
                "relay_p99_ms": _ms(relay, 0.99),
                "round_trip_p50_ms": _ms(rtt, 0.5),
                "round_trip_p99_ms": _ms(rtt, 0.99),
            }
            return report
        for direction in ("customer_to_advisor", "advisor_to_customer"):
            parts = [c.snapshot[direction] for c in self.calls if direction in c.snapshot]
            latencies = [ms for p in parts for ms in p["latencies"]]
            fps = [p["fps"] for p in parts]
            report[direction] = {
                "video_sent": sum(p["video_sent"] for p in parts),
                "video_received": sum(p["video_received"] for p in parts),
                "audio_sent": sum(p["audio_sent"] for p in parts),
                "audio_received": sum(p["audio_received"] for p in parts),
                "min_fps": round(min(fps), 1) if fps else 0.0,
                "mean_fps": round(sum(fps) / len(fps), 1) if fps else 0.0,
                "min_audio_fps": round(min((p["audio_fps"] for p in parts), default=0.0), 1),
                "out_of_order": sum(p["out_of_order"] for p in parts),
                "missing": sum(p["missing"] for p in parts),
                "latency_p50_ms": _ms(latencies, 0.5),
                "latency_p99_ms": _ms(latencies, 0.99),
            }
        return report


def format_report(report: dict[str, Any]) -> str:
    """Human-readable lines (the JSON line follows them)."""
    lines = [
        f"{report['channel']} calls: {report['completed']} completed, {report['failed']} failed "
        f"(window {report['seconds']} s)"
    ]
    for error in report["errors"]:
        lines.append(f"  error: {error}")
    if "chat" in report:
        chat = report["chat"]
        lines.append(
            f"chat: {chat['sent']} sent ({chat['rate_per_s']}/s), {chat['relayed']} relayed, "
            f"{chat['replies']} replies, {chat['out_of_order']} out of order, "
            f"{chat['send_errors']} send errors"
        )
        lines.append(
            f"chat relay p50/p99 {chat['relay_p50_ms']}/{chat['relay_p99_ms']} ms; "
            f"round trip p50/p99 {chat['round_trip_p50_ms']}/{chat['round_trip_p99_ms']} ms"
        )
    for direction in ("customer_to_advisor", "advisor_to_customer"):
        if direction in report:
            d = report[direction]
            lines.append(
                f"{direction.replace('_', ' ')}: video {d['video_sent']} sent / "
                f"{d['video_received']} received, audio {d['audio_sent']} / {d['audio_received']}, "
                f"fps min {d['min_fps']} mean {d['mean_fps']}, out of order {d['out_of_order']}, "
                f"missing {d['missing']}, latency p50/p99 {d['latency_p50_ms']}/"
                f"{d['latency_p99_ms']} ms"
            )
    return "\n".join(lines)


def advisors_needed(channel: str, calls: int) -> int:
    return math.ceil(calls / TEXT_CAPACITY) if channel == "text" else calls


def create_advisors(count: int, channel: str) -> list[tuple[str, str]]:
    """Throwaway advisors ``sim-advisor-<n>`` through ``contact-center users create``.

    Runs the CLI with this process's environment, so it only works on the server's machine with
    the server's ``CC_*`` settings. Names already taken are skipped (their passwords are unknown).
    """
    password = secrets.token_urlsafe(18)
    made: list[tuple[str, str]] = []
    n = 0
    while len(made) < count:
        n += 1
        if n > count + 1000:
            raise RuntimeError("could not find free sim-advisor-<n> names")
        name = f"sim-advisor-{n}"
        done = subprocess.run(
            [sys.executable, "-m", "contact_center", "users", "create", name, "--role", "advisor",
             "--languages", "en", "--skills", "general:3",
             "--capacity", f"video:1,voice:1,text:{TEXT_CAPACITY}", "--password-stdin"],
            input=password + "\n", capture_output=True, text=True, timeout=60, env=os.environ.copy(),
        )  # fmt: skip
        if done.returncode == 0:
            made.append((name, password))
        elif "already exists" not in done.stderr:
            raise RuntimeError(f"users create {name} failed: {done.stderr.strip()}")
    return made


def _advisor_arg(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD")
    return user, password


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``simulate`` on the ``contact-center`` sub-command parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate", help="run synthetic calls against a running server (a client)"
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL")
    parser.add_argument("--calls", type=int, default=1, help=f"concurrent calls (1-{MAX_CALLS})")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per call")
    parser.add_argument("--channel", choices=CHANNELS, default="video")
    parser.add_argument(
        "--advisor", action="append", type=_advisor_arg, default=[], metavar="USER:PASSWORD",
        help="an advisor account to answer calls (repeat: one per concurrent voice/video call)",
    )  # fmt: skip
    parser.add_argument(
        "--create-advisors", action="store_true",
        help="create throwaway sim-advisor-<n> accounts (same machine and CC_* env as the server)",
    )  # fmt: skip
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--chat-rate", type=float, default=1.0, help="text: lines/s per call")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.set_defaults(func=run)
    return parser


def run(settings: object | None, args: argparse.Namespace) -> int:
    """Run the simulation from parsed arguments; 0 when every call completed.

    ``settings`` is ignored: this is a client of a server, possibly another machine's.
    """
    if not 1 <= args.calls <= MAX_CALLS or not 0 < args.seconds <= MAX_SECONDS:
        print(f"contact-center: error: --calls 1-{MAX_CALLS}, --seconds up to {MAX_SECONDS:.0f}",
              file=sys.stderr)  # fmt: skip
        return 2
    advisors = list(args.advisor)
    needed = advisors_needed(args.channel, args.calls)
    if args.create_advisors and len(advisors) < needed:
        progress(f"creating {needed - len(advisors)} advisor account(s)")
        advisors += create_advisors(needed - len(advisors), args.channel)
    if not advisors:
        print("contact-center: error: give --advisor USER:PASSWORD or --create-advisors",
              file=sys.stderr)  # fmt: skip
        return 2
    if len(advisors) < needed:
        progress(f"warning: {len(advisors)} advisor(s) for {args.calls} call(s) needing {needed}")
    simulation = Simulation(
        args.url,
        advisors,
        calls=args.calls,
        seconds=args.seconds,
        channel=args.channel,
        warmup=args.warmup,
        chat_rate=args.chat_rate,
        width=args.width,
        height=args.height,
        fps=args.fps,
    )
    report = asyncio.run(simulation.run())
    print(format_report(report))
    print(json.dumps(report), flush=True)
    return 0 if report["failed"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m contact_center.tools.simulate`` until the CLI has the sub-command."""
    parser = argparse.ArgumentParser(prog="contact-center")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return int(args.func(None, args))


if __name__ == "__main__":
    sys.exit(main())
