"""Settings, read from the environment (prefix ``CC_``) and validated once at start."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recordings.retention import RetentionPolicy, parse_period
from recordings.storage import S3Settings, S3Storage, parse_s3_url

DEFAULT_SECRET = "change-me"
#: What an advisor picks as a contact's outcome at wrap-up unless ``CC_WRAPUP_OUTCOMES`` says.
DEFAULT_WRAPUP_OUTCOMES = (
    "resolved",
    "information_given",
    "follow_up",
    "callback_requested",
    "escalated",
    "complaint_logged",
    "transferred",
    "no_action",
)
OUTCOME_CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(ValueError):
    """A setting has a bad value; the message names it in one line."""


def _half_the_cores() -> int:
    return max(1, min(4, (os.cpu_count() or 2) // 2))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The web origin ``scheme://host[:port]`` of ``url`` (lowercase, default port left out);
    None when it is not an http(s) URL with nothing after the host but an optional ``/``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything an operator can set. Paths left empty derive from ``var_dir``."""

    model_config = SettingsConfigDict(
        env_prefix="CC_", extra="ignore", validate_default=True, case_sensitive=False
    )

    mode: Mode = Mode.DEVELOPMENT
    var_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    #: Redis Sentinel instead of one URL: ``host:port,host:port`` of the sentinels, and the
    #: name they monitor the primary under; the app follows a failover to the new primary.
    redis_sentinels: Annotated[list[tuple[str, int]], NoDecode] = Field(default_factory=list)
    redis_sentinel_service: str = Field(default="mymaster", min_length=1, max_length=64)
    #: Redis Cluster instead: ``host:port,host:port`` of some of its nodes (the client learns
    #: the rest and follows the slots when they move).
    redis_cluster: Annotated[list[tuple[str, int]], NoDecode] = Field(default_factory=list)
    secret_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_base_url: str = ""
    recordings_dir: Path | None = None
    recordings_url: str | None = None
    recordings_s3_endpoint: str | None = None
    recordings_s3_region: str = "us-east-1"
    recordings_s3_access_key: str | None = None
    recordings_s3_secret_key: SecretStr | None = None
    recordings_keep_local: bool = False
    recordings_retention: str = "7y"
    recordings_retention_topics: str = ""
    recordings_upload_attempts: int = Field(default=5, ge=1, le=100)
    recordings_upload_backoff_s: float = Field(default=5.0, ge=0, le=3600)
    recording_pause_limit_s: float = Field(default=120.0, gt=0, le=3600)
    rasa_url: str = "http://127.0.0.1:5005"
    bot_enabled: bool = True
    rasa_manage: bool = False
    rasa_actions_port: int = Field(default=5055, ge=1, le=65535)
    ice_servers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ice_host_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    routing_policy: Path | None = None
    media_relay: Literal["encoded", "transcode"] = "encoded"
    workers: int = Field(default=1, ge=1, le=64)
    media_port: int | None = Field(default=None, ge=1, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    log_level: str = "INFO"
    log_json: bool = True
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_window_s: int = Field(default=60, ge=1, le=86400)
    ws_rate_per_s: float = Field(default=20.0, gt=0, le=10_000)
    ws_burst: int = Field(default=40, ge=1, le=100_000)
    ws_send_queue: int = Field(default=256, ge=8, le=100_000)
    #: chat lines waiting to be stored (group commit) beyond which a new one is refused ``busy``
    chat_max_pending: int = Field(default=1000, ge=1, le=100_000)
    customer_grace_s: float = Field(default=60.0, ge=0, le=3600)
    advisor_grace_s: float = Field(default=60.0, ge=0, le=3600)
    # reliability: how long an instance's presence outlives its last heartbeat
    presence_lease_s: float = Field(default=10.0, ge=1, le=600)
    #: how often the database, the router and live presence are brought back in line
    reconcile_every_s: float = Field(default=30.0, ge=1, le=3600)

    # --- Security and operations (issue 13): sign-in cost and limits, sessions, origins, metrics
    #: argon2 checks at once (each takes a core for ~0.1-0.2 s); 32 each may wait, then 503.
    password_hash_concurrency: int = Field(default_factory=_half_the_cores, ge=1, le=64)
    #: failed sign-ins from one address (IPv6: its /64), any accounts, within the login window
    login_address_max_failures: int = Field(default=20, ge=1, le=100_000)
    #: proxies (addresses or CIDR networks) whose X-Forwarded-For names the client
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: origins besides the public base URL's whose pages may open /ws (``https://host[:port]``)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: conversations guests may start from one address (IPv6: its /64) within the window
    guest_contacts_per_address: int = Field(default=10, ge=1, le=100_000)
    guest_contacts_window_s: int = Field(default=600, ge=1, le=86400)
    #: a staff session without a request (or a WebSocket message) for this long ends
    staff_idle_timeout_s: int = Field(default=900, ge=1, le=12 * 3600)
    #: bearer token for GET /metrics; unset, /metrics answers loopback only
    metrics_token: SecretStr | None = None
    voice_enabled: bool = True
    voice_models: Annotated[dict[str, Path], NoDecode] = Field(default_factory=dict)
    #: engine per language (``en=sphinx,zh=vosk``; vosk, sphinx or none). Unset for a language:
    #: Vosk when CC_VOICE_MODELS has its model, else English gets PocketSphinx's bundled model
    voice_engines: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)

    # --- Advisor desktop and customer client (issue 16)
    #: the secret the bank's app signs customer identities with (HS256); unset: the feature is off
    bank_token_secret: SecretStr | None = None
    #: a bank identity token may not be valid for longer than this (its exp minus now)
    bank_token_max_age_s: int = Field(default=300, ge=10, le=3600)
    #: the bank's sites whose pages may frame the widget (``/widget``, CSP ``frame-ancestors``);
    #: every other page keeps ``frame-ancestors 'none'``
    widget_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: outcome codes of a wrap-up (``wrapup.done``'s ``outcome``), comma-separated, in the order
    #: the console lists them; the console names each (``desk.outcome_<code>``) or shows the code
    wrapup_outcomes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WRAPUP_OUTCOMES)
    )
    #: a YAML file of canned replies per contact language (``contacts.canned``); unset: the
    #: built-in list
    canned_replies: Path | None = None

    @field_validator("wrapup_outcomes", mode="before")
    @classmethod
    def _wrapup_outcomes(cls, value: Any) -> Any:
        value = _split_list(value)
        if not value:
            raise ValueError("list at least one outcome code, e.g. resolved,follow_up")
        for code in value:
            if not OUTCOME_CODE.match(str(code)):
                raise ValueError(f"{code!r} is not a code like follow_up (a-z, 0-9, _; 32 at most)")
        if len(set(value)) != len(value):
            raise ValueError("an outcome code is listed twice")
        return value

    @field_validator("voice_models", mode="before")
    @classmethod
    def _voice_models(cls, value: Any) -> Any:
        if isinstance(value, str):  # "en=/models/en,zh=/models/zh"
            from chatbot.speech.stream import parse_models

            return parse_models(value)
        return value

    @field_validator("voice_engines", mode="before")
    @classmethod
    def _voice_engines(cls, value: Any) -> Any:
        if isinstance(value, str):  # "en=sphinx,zh=vosk"
            from chatbot.speech.stream import parse_engines

            return parse_engines(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (an async driver)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value == "":
            return None
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_sentinels", "redis_cluster", mode="before")
    @classmethod
    def _redis_addresses(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        addresses = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port (for example 10.0.0.5:26379)")
            addresses.append((host.strip("[]"), int(port)))
        return addresses

    @field_validator("public_base_url", "rasa_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("recordings_url")
    @classmethod
    def _recordings_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parse_s3_url(value)  # raises naming what is wrong
        return value

    @field_validator("recordings_s3_endpoint")
    @classmethod
    def _s3_endpoint(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    @field_validator("recordings_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        parse_period(value)  # a bad or too short period is refused here, naming it
        return value.strip()

    @field_validator("recordings_retention_topics")
    @classmethod
    def _retention_topics(cls, value: str) -> str:
        _topic_periods(value)
        return value.strip()

    @field_validator("ice_servers", mode="before")
    @classmethod
    def _ice_servers(cls, value: Any) -> Any:
        value = _split_list(value)
        for url in value or []:
            if not str(url).startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"{url!r} is not a stun:, turn: or turns: URL")
        return value

    @field_validator("ice_host_addresses", mode="before")
    @classmethod
    def _ice_host_addresses(cls, value: Any) -> Any:
        value = _split_list(value)
        for address in value or []:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address") from None
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: Any) -> Any:
        value = _split_list(value)
        for network in value or []:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("allowed_origins", "widget_origins", mode="before")
    @classmethod
    def _allowed_origins(cls, value: Any) -> Any:
        origins = []
        for url in _split_list(value) or []:
            origin = origin_of(str(url))
            if origin is None:
                raise ValueError(f"{url!r} is not an origin like https://host or https://host:8443")
            origins.append(origin)
        return origins

    @field_validator("bank_token_secret")
    @classmethod
    def _bank_token_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 32:
            # HS256 is as strong as its key: a short one can be guessed offline from one token
            raise ValueError("must be at least 32 characters (a random value shared with the bank)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.var_dir / 'contact_center.db')}"
        if self.recordings_dir is None:
            self.recordings_dir = self.var_dir / "recordings"
        if not self.public_base_url:
            self.public_base_url = f"http://{self.host}:{self.port}"
        given = [
            name
            for name, value in (
                ("CC_REDIS_URL", self.redis_url),
                ("CC_REDIS_SENTINELS", self.redis_sentinels),
                ("CC_REDIS_CLUSTER", self.redis_cluster),
            )
            if value
        ]
        if len(given) > 1:
            raise ValueError(
                f"{' and '.join(given)}: set one of them (one server, the sentinels of a "
                "primary, or the nodes of a cluster)"
            )
        if self.mode is Mode.PRODUCTION:
            secret = self.secret_key.get_secret_value() if self.secret_key else ""
            if not secret or secret == DEFAULT_SECRET:
                raise ValueError(
                    "CC_SECRET_KEY: must be set to a random value in production mode "
                    "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            if len(secret) < 32:
                raise ValueError("CC_SECRET_KEY: must be at least 32 characters in production mode")
        bank = self.bank_token_secret.get_secret_value() if self.bank_token_secret else None
        if bank is not None and self.secret_key is not None and bank == self.secret_key.get_secret_value():
            raise ValueError("CC_BANK_TOKEN_SECRET: must differ from CC_SECRET_KEY (the bank holds it)")
        return self

    @property
    def development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None and not self.redis_sentinels and not self.redis_cluster

    @property
    def websocket_origins(self) -> frozenset[str]:
        """Where the pages that may open ``/ws`` come from: our public URL and the extras."""
        own = origin_of(self.public_base_url)
        return frozenset([*([own] if own else []), *self.allowed_origins])

    @property
    def cookie_secure(self) -> bool:
        return self.public_base_url.startswith("https://")

    def retention_policy(self) -> RetentionPolicy:
        """How long sealed recordings are kept: the default and per-topic periods."""
        return RetentionPolicy.from_strings(
            self.recordings_retention, _topic_periods(self.recordings_retention_topics)
        )

    def recordings_storage(self) -> S3Storage | None:
        """The S3-compatible store sealed recordings are uploaded to (None: local only)."""
        if not self.recordings_url:
            return None
        secret = self.recordings_s3_secret_key
        return S3Storage(
            S3Settings.from_url(
                self.recordings_url,
                endpoint_url=self.recordings_s3_endpoint,
                region=self.recordings_s3_region,
                access_key=self.recordings_s3_access_key,
                secret_key=secret.get_secret_value() if secret else None,
            )
        )

    def secret(self) -> str:
        """The signing secret; in development a random one is kept under ``var_dir``."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        path = self.var_dir / "dev-secret"
        if path.exists():
            return path.read_text().strip()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.write_text(value)
        path.chmod(0o600)
        return value


def _topic_periods(text: str) -> dict[str, str]:
    """``"complaints=10y, loans=8y"`` -> ``{"complaints": "10y", "loans": "8y"}``, each period
    checked (at least 6 months)."""
    periods: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        topic, sep, period = part.partition("=")
        if not sep or not topic.strip():
            raise ValueError(f"{part!r}: write topic=period, e.g. complaints=10y")
        parse_period(period)
        periods[topic.strip()] = period.strip()
    return periods


_SECRET_FIELDS = frozenset(
    {"secret_key", "recordings_s3_secret_key", "metrics_token", "bank_token_secret"}
)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        name, _, rest = message.partition(": ")
        if name.startswith("CC_") and rest:
            return f"invalid setting {name}: {rest}"
        return f"invalid settings: {message}"
    name = "CC_" + loc[0].upper()
    given = first.get("input")
    secret = loc[0] in _SECRET_FIELDS  # a secret's value is never echoed (logs, terminals)
    shown = "" if secret or isinstance(given, dict) or given is None else f" (got {given!r})"
    return f"invalid setting {name}: {message}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise SettingsError naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
