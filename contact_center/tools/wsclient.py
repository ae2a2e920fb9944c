"""A signalling client in Python: for the simulator, benchmarks, tests and app integrators."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
from typing import Any

import aiohttp


class RequestFailed(Exception):
    """The server answered a request with ``error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SignallingClient:
    """One WebSocket to ``/ws``: ``request`` waits for the ack; pushes wait in ``seen``."""

    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._own_session = session is None
        self.http = session or aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.seen: list[dict[str, Any]] = []  # pushed messages not yet taken by wait_for
        self.received = 0
        self._arrived = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(6)
        self._reader: asyncio.Task[None] | None = None
        self.welcome: dict[str, Any] | None = None
        self.hello_result: dict[str, Any] = {}

    async def login(self, username: str, password: str, *, busy_retries: int = 30) -> None:
        """Sign in through the real form, as a browser does; a server busy checking other
        sign-ins (503) is asked again after its Retry-After."""
        async with self.http.get(f"{self.base_url}/login") as page:
            match = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
        if match is None:
            raise RuntimeError("no CSRF token on the sign-in page")
        for _ in range(busy_retries + 1):
            async with self.http.post(
                f"{self.base_url}/login",
                data={"username": username, "password": password, "csrf_token": match.group(1)},
                allow_redirects=False,
            ) as resp:
                if resp.status == 303:
                    return
                if resp.status != 503:
                    raise RuntimeError(f"sign-in of {username} failed with HTTP {resp.status}")
                wait = float(resp.headers.get("Retry-After", "1"))
            await asyncio.sleep(wait)
        raise RuntimeError(f"sign-in of {username}: the server stayed busy")

    async def as_guest(self) -> None:
        """Open the customer start page, which gives a guest identity."""
        async with self.http.get(f"{self.base_url}/") as resp:
            resp.raise_for_status()

    async def connect(
        self, url: str | None = None, *, media_only: bool = False, **hello: Any
    ) -> dict[str, Any]:
        """Open the WebSocket and say hello (``hello``: more of its fields, e.g. ``bank_token``);
        returns the welcome message. The hello's ack data is kept as ``hello_result``."""
        ws_url = url or self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.http.ws_connect(ws_url, max_msg_size=4 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read(), name="signalling-reader")
        self.hello_result = await self.request("hello", media_only=media_only, **hello)
        welcome = await self.wait_for("welcome")
        self.welcome = welcome
        return welcome

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            ref = message.get("ref")
            future = self._pending.pop(ref, None) if ref else None
            if future is not None and not future.done():
                future.set_result(message)
                if message["type"] in ("ack", "error"):
                    continue
            self.seen.append(message)
            self.received += 1
            self._arrived.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("websocket closed"))

    async def send_raw(self, frame: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(frame)

    async def request(
        self,
        type_: str,
        *,
        timeout: float = 10,  # noqa: ASYNC109
        request_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Send a request and return the ack's data; raise RequestFailed on an error reply.
        A retry passes the ``request_id`` of the first try: the server answers it once."""
        assert self.ws is not None
        # request ids are idempotency keys of the person: unique across connections
        request_id = request_id or self.next_request_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self.ws.send_str(json.dumps({"v": 1, "type": type_, "id": request_id, **fields}))
            async with asyncio.timeout(timeout):
                reply = await future
        finally:
            self._pending.pop(request_id, None)
        if reply["type"] == "error":
            raise RequestFailed(reply["code"], reply["message"])
        data: dict[str, Any] = reply.get("data", {})
        return data

    def next_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    async def wait_for(
        self, type_: str, *, timeout: float = 10, **match: Any  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The next pushed message of ``type_`` whose fields equal ``match`` (others are kept)."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.seen:
                    if message["type"] == type_ and all(
                        message.get(k) == v for k, v in match.items()
                    ):
                        self.seen.remove(message)
                        return message
                self._arrived.clear()
                await self._arrived.wait()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._own_session:
            await self.http.close()
