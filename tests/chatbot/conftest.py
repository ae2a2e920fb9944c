"""A client of the session's real Rasa server (``rasa_services`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from chatbot.client import RasaClient
from chatbot.services import RasaServices


@pytest.fixture
async def rasa_client(rasa_services: RasaServices) -> AsyncIterator[RasaClient]:
    """A client of the session's Rasa server."""
    async with aiohttp.ClientSession() as session:
        yield RasaClient(rasa_services.url, session=session, timeout=30)
