"""A real Rasa server and action server, trained model included, once per test session.

The first run builds the Rasa env (Python 3.10, about 2 minutes) and trains the model (about
40 s) into the cache (chatbot.env); later runs reuse both and only start the servers (~15 s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from chatbot import env
from chatbot.client import RasaClient
from chatbot.services import RasaServices, free_port


@pytest.fixture(scope="session")
def rasa_paths() -> env.RasaPaths:
    """The Rasa env and model, built or trained now if the cache lacks them."""
    try:
        return env.ensure()
    except env.EnvError as exc:
        pytest.fail(f"cannot build the Rasa environment: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def rasa_services(rasa_paths: env.RasaPaths,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaServices]:
    """Both servers on free loopback ports for the whole session."""
    assert rasa_paths.env_dir is not None
    services = RasaServices(rasa_paths.env_dir, rasa_paths.model_path, rasa_port=free_port(),
                            actions_port=free_port(), log_dir=tmp_path_factory.mktemp("rasa-logs"))
    services.start()
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
async def rasa_client(rasa_services: RasaServices) -> AsyncIterator[RasaClient]:
    """A client of the session's Rasa server."""
    async with aiohttp.ClientSession() as session:
        yield RasaClient(rasa_services.url, session=session, timeout=30)
