"""Classify lines of text with the bot's NLU: `contact-center bot classify < lines.txt`.

Prints one JSON object per input line: {"text", "language", "intent", "confidence"}. Uses the
Rasa server at --rasa-url when it answers, otherwise builds/loads the env and model
(chatbot.env) and runs the servers itself for the duration (chatbot.services).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import aiohttp

from chatbot import env
from chatbot.client import BotError, RasaClient
from chatbot.services import RasaServices, free_port


def reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a Rasa server with a loaded model answers at url."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/status", timeout=timeout) as resp:
            return bool(json.loads(resp.read()).get("model_file"))
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def rasa_server(rasa_url: str | None = None, *, out: TextIO = sys.stderr) -> Iterator[str]:
    """Yield the URL of a Rasa server: rasa_url if it answers, else one started here."""
    if rasa_url and reachable(rasa_url):
        yield rasa_url.rstrip("/")
        return
    if rasa_url:
        out.write(f"{rasa_url} does not answer; starting a Rasa server\n")
    paths = env.ensure(out=out)
    assert paths.env_dir is not None
    with tempfile.TemporaryDirectory(prefix="cc-rasa-") as logs:
        services = RasaServices(paths.env_dir, paths.model_path, rasa_port=free_port(),
                                actions_port=free_port(), log_dir=Path(logs))
        out.write("starting the Rasa server (about 20 s)\n")
        with services:
            yield services.url


async def _classify(url: str, lines: list[str], out: TextIO, request_timeout: float) -> None:
    async with aiohttp.ClientSession() as session:
        client = RasaClient(url, session=session, timeout=request_timeout)
        for text in lines:
            result = await client.parse(text)
            out.write(json.dumps({"text": text, "language": result.language,
                                  "intent": result.intent,
                                  "confidence": round(result.confidence, 4)},
                                 ensure_ascii=False) + "\n")
            out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="contact-center bot classify", description=__doc__.split("\n")[0])
    parser.add_argument("--rasa-url", help="a running Rasa server, e.g. http://127.0.0.1:5005")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)
    lines = [line.strip() for line in sys.stdin if line.strip()]
    if not lines:
        return 0
    try:
        with rasa_server(args.rasa_url) as url:
            asyncio.run(_classify(url, lines, sys.stdout, args.timeout))
    except (env.EnvError, BotError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
