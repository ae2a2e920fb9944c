"""compose.yaml agrees with the settings: no Docker engine runs here, so the YAML is checked."""

from __future__ import annotations

import re

import yaml

from contact_center.config import Settings, load_settings
from tests.helpers import ROOT


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _resolve(value: str) -> str:
    """Expand ${VAR:-default} / ${VAR:?message} the way compose would with VAR unset."""
    def sub(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name == "CC_SECRET_KEY":
            return "s" * 48
        return rest if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", sub, str(value))


def test_services_have_health_checks_and_volumes():
    services = _compose()["services"]
    assert set(services) >= {"app", "postgres", "redis", "rasa", "rasa-actions"}
    for name, service in services.items():
        assert "healthcheck" in service, name
    for name in ("app", "postgres", "redis"):
        assert services[name].get("volumes"), name


def test_app_environment_is_valid_settings_pointing_at_the_other_services(monkeypatch, tmp_path):
    app = _compose()["services"]["app"]
    env = {key: _resolve(value) for key, value in app["environment"].items()}
    fields = {f"CC_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    for key in list(__import__("os").environ):
        if key.startswith("CC_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.mode.value == "production"
    assert settings.database_url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in settings.database_url
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.rasa_url == "http://rasa:5005"
    assert f"{settings.port}:{settings.port}" in app["ports"]
    assert f"127.0.0.1:{settings.port}/readyz" in " ".join(app["healthcheck"]["test"])


def test_service_ports_match_what_the_app_dials():
    services = _compose()["services"]
    env = services["app"]["environment"]
    assert "5432:5432" in services["postgres"]["ports"]
    assert "6379:6379" in services["redis"]["ports"]
    assert "5005:5005" in services["rasa"]["ports"] and ":5005" in env["CC_RASA_URL"]
    assert "5055:5055" in services["rasa-actions"]["ports"]
    pg = services["postgres"]["environment"]
    assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}" in env["CC_DATABASE_URL"]


def test_secret_is_required_not_defaulted():
    env = _compose()["services"]["app"]["environment"]
    assert env["CC_SECRET_KEY"].startswith("${CC_SECRET_KEY:?")
