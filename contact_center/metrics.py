"""The Prometheus instruments the code updates as things happen (``views.metrics`` serves them,
with what it reads at scrape time).

Module-level on purpose, against the app-factory habit: prometheus-client keeps one value per
name and process, and in multiprocess mode (``serve --workers N``, ``PROMETHEUS_MULTIPROC_DIR``
set by the supervisor before a worker starts) each worker writes them to files under that name.
Tests therefore compare values before and after, never absolute ones.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "cc_http_requests", "HTTP requests answered, by method, route and status",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "cc_http_request_seconds", "Time to answer an HTTP request", ["route"], buckets=LATENCY_BUCKETS
)
SIGNIN_FAILURES = Counter(
    "cc_signin_failures", "Sign-ins refused: wrong (bad credentials), throttled, busy (503)",
    ["reason"],
)
WS_CONNECTIONS = Gauge(
    "cc_ws_connections", "Open WebSocket connections (sampled)", multiprocess_mode="livesum"
)
WS_FRAMES = Counter("cc_ws_frames", "WebSocket frames, by direction (in, out)", ["direction"])
WS_ERRORS = Counter("cc_ws_errors", "error frames sent, by code", ["code"])
ROUTING_SECONDS = Histogram(
    "cc_routing_decision_seconds", "Time of one routing decision (a Lua script, round trip)",
    ["script"], buckets=LATENCY_BUCKETS,
)
CHAT_BATCH = Histogram(
    "cc_chat_batch_lines", "Chat lines stored in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
ROUTER_EVENTS = Counter("cc_router_events", "Routing events, by type (each counted once)", ["type"])
OFFERS = Counter(
    "cc_offers", "Offers to advisors: made, accepted, rejected, expired, released", ["outcome"]
)
MEDIA_CALLS = Gauge(
    "cc_media_calls", "Calls with server-side media in this process (sampled)",
    multiprocess_mode="livesum",
)
RELAY_FRAMES_DROPPED = Counter(
    "cc_relay_frames_dropped", "Media frames the relay dropped for a slow receiver (sampled)"
)
RECORDING_FAILURES = Counter(
    "cc_recording_failures", "Recorded tracks whose writer failed (sampled from live calls)"
)
BOT_TURNS = Counter("cc_bot_turns", "Customer messages sent to Rasa, by outcome", ["outcome"])
RASA_SECONDS = Histogram(
    "cc_rasa_request_seconds", "Time Rasa took to answer, by endpoint", ["endpoint"],
    buckets=LATENCY_BUCKETS,
)

_OFFER_OUTCOMES = {
    "offer_created": "made",
    "offer_accepted": "accepted",
    "offer_rejected": "rejected",
    "offer_expired": "expired",
    "offer_released": "released",
}


def count_router_event(event_type: str) -> None:
    ROUTER_EVENTS.labels(event_type).inc()
    outcome = _OFFER_OUTCOMES.get(event_type)
    if outcome is not None:
        OFFERS.labels(outcome).inc()


def observe_routing(script: str, seconds: float) -> None:
    ROUTING_SECONDS.labels(script).observe(seconds)


def _rasa_endpoint(path: str) -> str:
    if path.startswith("/webhooks/"):
        return "webhook"
    return {"/model/parse": "parse", "/status": "status"}.get(path, "other")


def rasa_trace_config() -> aiohttp.TraceConfig:
    """Times every request of the bot's HTTP session to Rasa; a webhook call is one bot turn."""
    trace = aiohttp.TraceConfig()

    async def start(session: Any, ctx: SimpleNamespace, params: Any) -> None:
        ctx.started = time.perf_counter()

    async def end(session: Any, ctx: SimpleNamespace, params: Any) -> None:
        endpoint = _rasa_endpoint(params.url.path)
        RASA_SECONDS.labels(endpoint).observe(time.perf_counter() - ctx.started)
        if endpoint == "webhook":
            BOT_TURNS.labels("ok" if params.response.status < 400 else "failed").inc()

    async def failed(session: Any, ctx: SimpleNamespace, params: Any) -> None:
        endpoint = _rasa_endpoint(params.url.path)
        RASA_SECONDS.labels(endpoint).observe(time.perf_counter() - ctx.started)
        if endpoint == "webhook":
            BOT_TURNS.labels("failed").inc()

    trace.on_request_start.append(start)
    trace.on_request_end.append(end)
    trace.on_request_exception.append(failed)
    return trace
