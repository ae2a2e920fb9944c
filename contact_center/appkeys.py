"""Every typed key of what the aiohttp application (and a request) holds: one place to look.

Redis keys are in ``redis_keys``; cookie-session fields in ``identity.auth``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

if TYPE_CHECKING:
    from chatbot.services import RasaServices
    from contact_center.bot.gateway import BotGateway
    from contact_center.bot.voice import VoiceBridge
    from contact_center.canned_replies import CannedReply
    from contact_center.compliance.access import ComplianceAccess
    from contact_center.config import Settings
    from contact_center.contacts.leases import Leases
    from contact_center.contacts.reconcile import Reconciler
    from contact_center.contacts.service import ContactService
    from contact_center.identity.auth import GuestQuota, Identity, LoginThrottle
    from contact_center.identity.bank_token import BankTokenVerifier
    from contact_center.identity.passwords import PasswordChecks
    from contact_center.identity.sessions import SessionStore
    from contact_center.media.call import MediaHub
    from contact_center.server.valkey import EmbeddedValkey
    from contact_center.views.supervisor import SupervisorFeed
    from contact_center.ws.connection import Connection, PresenceLocks
    from routing.store import RouterStore

# Resources (server.contexts opens and closes each)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
INSTANCE_ID: web.AppKey[str] = web.AppKey("instance_id")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
DB: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("db")
VALKEY: web.AppKey[EmbeddedValkey | None] = web.AppKey("valkey")
REDIS_URL: web.AppKey[str] = web.AppKey("redis_url")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis")
RASA_SERVICES: web.AppKey[RasaServices | None] = web.AppKey("rasa_services")

# The contact machinery
ROUTER: web.AppKey[RouterStore] = web.AppKey("router")
MEDIA: web.AppKey[MediaHub] = web.AppKey("media")
CONTACTS: web.AppKey[ContactService] = web.AppKey("contacts")
BOT: web.AppKey[BotGateway] = web.AppKey("bot")
"""Absent when the bot is disabled: customers go straight to the queue."""
LEASES: web.AppKey[Leases] = web.AppKey("leases")
RECONCILER: web.AppKey[Reconciler] = web.AppKey("reconciler")
VOICE: web.AppKey[VoiceBridge] = web.AppKey("voice")
"""Absent without the bot or with CC_VOICE_ENABLED=false: voice customers type to the bot."""
THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
PASSWORDS: web.AppKey[PasswordChecks] = web.AppKey("password_checks")
"""argon2 off the event loop, bounded (sign-in is the only caller on a request)."""
GUEST_QUOTA: web.AppKey[GuestQuota] = web.AppKey("guest_quota")
"""Conversations guests may start per address and window."""
SESSIONS: web.AppKey[SessionStore] = web.AppKey("sessions")
CANNED_REPLIES: web.AppKey[dict[str, list[CannedReply]]] = web.AppKey("canned_replies")
"""The advisor console's canned replies per contact language (views.advisor_desk)."""
"""The server-side half of signed-in sessions (Redis): sign-out and revocation end them."""
BANK_TOKENS: web.AppKey[BankTokenVerifier | None] = web.AppKey("bank_tokens")
"""Checks the bank's signed customer identities; None without CC_BANK_TOKEN_SECRET (off)."""
SUPERVISOR_FEED: web.AppKey[SupervisorFeed] = web.AppKey("supervisor_feed")
COMPLIANCE: web.AppKey[ComplianceAccess] = web.AppKey("compliance")
COMPLIANCE_GRANT_KEY: web.AppKey[bytes] = web.AppKey("compliance_grant_key")

# The WebSocket endpoint
CONNECTIONS: web.AppKey[set[Connection]] = web.AppKey("connections")
CLEANUPS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("ws_cleanups")
PRESENCE: web.AppKey[PresenceLocks] = web.AppKey("presence_locks")

# Per request
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")
"""Set by ``require_role`` once the role is allowed."""
REQUEST_IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("checked_identity")
#: Set by a page that the bank's sites may frame (the widget): its CSP lists them.
FRAMEABLE: web.RequestKey[bool] = web.RequestKey("frameable")
"""The cookie's identity once checked against Redis (None: nobody), so it is checked once."""
