"""The ``contact-center`` command: serve, migrate, manage users, seed the demo, recordings."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import os
import socket
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from contact_center.config import Settings, SettingsError, load_settings

EXIT_USAGE = 2
log = logging.getLogger("contact_center")


def _fail(message: str, code: int = 1) -> int:
    print(f"contact-center: error: {message}", file=sys.stderr)
    return code


def _listen(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so that a busy port is one clear error, not a half start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None
    sock.listen(512)
    sock.set_inheritable(False)
    return sock


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from contact_center.db.engine import DatabaseNotMigrated
    from contact_center.server import heap, workers
    from contact_center.server.app import create_app
    from contact_center.server.valkey import EmbeddedValkeyError

    shared = workers.inherited_socket()
    if shared is None:
        try:
            sock = _listen(settings.host, settings.port)
        except OSError as exc:
            return _fail(exc.strerror or str(exc))
        log.info(
            "serving",
            extra={
                "url": settings.public_base_url,
                "mode": settings.mode.value,
                "workers": settings.workers,
            },
        )
        if settings.workers > 1:
            try:
                return workers.supervise(settings, sock)
            finally:
                sock.close()
    app = create_app(settings)
    # only in a server process of its own: a test process making app after app must not freeze
    app.on_startup.append(heap.freeze_after_start)
    try:
        if shared is not None:
            assert settings.media_port is not None
            asyncio.run(workers.run_worker(app, shared, settings.host, settings.media_port))
        else:
            web.run_app(app, sock=sock, print=None, access_log=None, shutdown_timeout=10)
    except (DatabaseNotMigrated, EmbeddedValkeyError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen: {exc.strerror or exc}")
    finally:
        (shared or sock).close()
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from contact_center.db import engine as db

    if settings.database_url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    if args.db_command == "upgrade":
        db.upgrade(settings.database_url, args.revision)
        print(f"database at revision {args.revision}")
    elif args.db_command == "downgrade":
        db.downgrade(settings.database_url, args.revision)
        print(f"database at revision {args.revision}")
    else:
        db.current(settings.database_url)
    return 0


async def _with_session(settings: Settings, work):
    from contact_center.db.engine import check_migrated, create_engine, session_factory, transaction

    engine = create_engine(settings.database_url)
    try:
        await check_migrated(engine)
        async with transaction(session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


TEMPORARY_HELP = "the user must choose their own password at the next sign-in"


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    from contact_center.db.engine import DatabaseNotMigrated
    from contact_center.identity.users import (
        UserCreate,
        create_user,
        get_user_by_username,
        parse_levels,
    )

    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif password is None:
        password = getpass.getpass(f"password for {args.username}: ")
    try:
        data = UserCreate(
            username=args.username,
            password=password,
            role=args.role,
            display_name=args.display_name or "",
            languages=[x.strip() for x in args.languages.split(",") if x.strip()],
            skills=parse_levels(args.skills, what="skill"),
            capacity=parse_levels(args.capacity, what="capacity") if args.capacity else {},
            vip=args.vip,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return _fail(
            f"--{field.replace('_', '-')}: {first['msg'].removeprefix('Value error, ')}", EXIT_USAGE
        )
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)

    async def work(session):
        if await get_user_by_username(session, username=data.username):
            return None
        return await create_user(session, data=data, temporary=args.temporary)

    try:
        user = asyncio.run(_with_session(settings, work))
    except DatabaseNotMigrated as exc:
        return _fail(str(exc))
    if user is None:
        return _fail(f"a user named {args.username!r} already exists")
    print(
        f"created {user.role.value if hasattr(user.role, 'value') else user.role} {user.username} (id {user.id})"
    )
    return 0


def cmd_users_change(settings: Settings, args: argparse.Namespace) -> int:
    """``users disable|enable|set-password NAME``: change the account, end its sessions."""
    from contact_center.db.engine import DatabaseNotMigrated
    from contact_center.db.models import AuditLog
    from contact_center.identity.users import get_user_by_username, set_disabled, set_password

    password = None
    if args.users_command == "set-password":
        password = (
            sys.stdin.readline().rstrip("\n")
            if args.password_stdin
            else getpass.getpass(f"new password for {args.username}: ")
        )

    async def work(session):
        user = await get_user_by_username(session, username=args.username)
        if user is None or user.id is None:
            return None
        if password is not None:
            await set_password(
                session, user_id=user.id, password=password, temporary=args.temporary
            )
        else:
            await set_disabled(session, user_id=user.id, disabled=args.users_command == "disable")
        return user.id

    try:
        user_id = asyncio.run(_with_session(settings, work))
    except DatabaseNotMigrated as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        return _fail(f"password: {exc.errors()[0]['msg']}", EXIT_USAGE)
    if user_id is None:
        return _fail(f"no user named {args.username!r}")
    ended = asyncio.run(_end_sessions(settings, user_id)) if args.users_command != "enable" else 0

    async def record(session):
        session.add(
            AuditLog(
                actor="cli", action=f"user.{args.users_command}", target=f"user:{user_id}",
                detail={"sessions_ended": ended}
                | ({"temporary": args.temporary} if password is not None else {}),
            )
        )

    asyncio.run(_with_session(settings, record))
    done = {"disable": "disabled", "enable": "enabled", "set-password": "new password set for"}
    print(f"{done[args.users_command]} {args.username}", end="")
    if args.users_command == "enable":
        print()
    elif ended is None:
        # No Redis to reach (the embedded one is private to the server): the server re-checks
        # every live session's account at least once a minute and ends it then.
        print("; their sessions end within a minute")
    else:
        print(f"; {ended} session(s) ended")
    return 0


async def _end_sessions(settings: Settings, user_id: int) -> int | None:
    """End every session of a user through Redis; None when no Redis URL is configured."""
    if settings.embedded_redis:
        return None
    from contact_center import redis_client
    from contact_center.identity.sessions import SessionStore

    client = redis_client.connect(settings)
    try:
        store = SessionStore(client, staff_idle_s=settings.staff_idle_timeout_s)
        return await store.revoke_user(user_id)
    finally:
        await client.aclose()


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from contact_center.db.engine import DatabaseNotMigrated
    from contact_center.identity.users import count_users, create_user, get_user_by_username
    from contact_center.server.demo import DEMO_PASSWORD, DEMO_USERS

    async def work(session):
        if args.if_empty and await count_users(session):
            return []
        created = []
        for data in DEMO_USERS:
            if await get_user_by_username(session, username=data.username) is None:
                created.append(await create_user(session, data=data))
        return created

    try:
        created = asyncio.run(_with_session(settings, work))
    except DatabaseNotMigrated as exc:
        return _fail(str(exc))
    if not created:
        print("demo users: nothing to create (the database already has users)")
        return 0
    print(f"demo users created (password for all: {DEMO_PASSWORD}):")
    for user in created:
        langs = ",".join(user.languages)
        skills = ",".join(f"{k}:{v}" for k, v in user.skills.items())
        vip = " VIP" if user.vip else ""
        print(f"  {user.role.value:<10} {user.username:<8} {langs:<10} {skills}{vip}")
    print(f"sign in at {settings.public_base_url}/login")
    return 0


def cmd_bot_classify(settings: Settings, args: argparse.Namespace) -> int:
    from chatbot.classify import main as classify

    return classify(
        ["--rasa-url", args.rasa_url or settings.rasa_url, "--timeout", str(args.timeout)]
    )


RECORDINGS_COMMANDS = ("verify", "purge", "hold", "unhold", "export", "verify-export")


def cmd_recordings(settings: Settings, args: argparse.Namespace) -> int:
    """``recordings.cli`` on the app's database and recording store (S3 when configured)."""
    from recordings import cli as recordings_cli
    from recordings.storage import LocalStorage

    argv = list(args.arguments)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: contact-center recordings {" + ",".join(RECORDINGS_COMMANDS) + "} ...\n"
            "  on the database (CC_DATABASE_URL) and recording store (CC_RECORDINGS_URL, else\n"
            "  CC_RECORDINGS_DIR) of the settings; each command's --help says more"
        )
        return 0 if argv else EXIT_USAGE
    if argv[0] not in RECORDINGS_COMMANDS:
        return _fail(
            f"recordings: unknown command {argv[0]!r} (one of {', '.join(RECORDINGS_COMMANDS)})",
            EXIT_USAGE,
        )
    assert settings.recordings_dir is not None
    storage = settings.recordings_storage() or LocalStorage(settings.recordings_dir)
    return recordings_cli.main(
        argv,
        prog="contact-center recordings",
        database_url=settings.database_url,
        storage=storage,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contact-center",
        description="A multimedia contact center. Settings come from CC_* environment variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web server")
    serve.add_argument("--host", help="overrides CC_HOST")
    serve.add_argument("--port", type=int, help="overrides CC_PORT")
    serve.add_argument("--workers", type=int, help="server processes (overrides CC_WORKERS)")
    serve.set_defaults(func=cmd_serve)

    dbp = sub.add_parser("db", help="database migrations")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="migrate to the newest revision")
    up.add_argument("revision", nargs="?", default="head")
    down = dbsub.add_parser("downgrade", help="migrate back to a revision (base: empty)")
    down.add_argument("revision")
    dbsub.add_parser("current", help="show the current revision")
    dbp.set_defaults(func=cmd_db)

    users = sub.add_parser("users", help="manage accounts")
    usub = users.add_subparsers(dest="users_command", required=True)
    create = usub.add_parser("create", help="create an account")
    create.add_argument("username")
    create.add_argument(
        "--role",
        required=True,
        choices=["customer", "advisor", "supervisor", "compliance", "admin"],
    )
    create.add_argument("--languages", default="en", help="comma-separated among en, zh, yue")
    create.add_argument("--skills", default="", help="e.g. cards:4,fx:3 (proficiency 1-5)")
    create.add_argument("--capacity", default="", help="e.g. text:3,voice:1,video:1")
    create.add_argument("--display-name")
    create.add_argument("--vip", action="store_true")
    pw = create.add_mutually_exclusive_group()
    pw.add_argument("--password", help="prefer --password-stdin: arguments show in ps")
    pw.add_argument("--password-stdin", action="store_true")
    create.add_argument("--temporary", action="store_true", help=TEMPORARY_HELP)
    create.set_defaults(func=cmd_users_create)
    for name, what in (
        ("enable", "enable a disabled account"),
        ("set-password", "give an account a new password and end its sessions"),
    ):
        change = usub.add_parser(name, help=what)
        change.add_argument("username")
        if name == "set-password":
            change.add_argument("--password-stdin", action="store_true")
            change.add_argument("--temporary", action="store_true", help=TEMPORARY_HELP)
        change.set_defaults(func=cmd_users_change)
    from contact_center.server import users_cli

    users_cli.add_parsers(usub)  # list, update, disable (which also ends the sessions)

    demo = sub.add_parser("demo", help="create the demo accounts")
    demo.add_argument("--if-empty", action="store_true", help="only when there are no users yet")
    demo.set_defaults(func=cmd_demo)

    bot = sub.add_parser("bot", help="the chatbot")
    botsub = bot.add_subparsers(dest="bot_command", required=True)
    classify = botsub.add_parser(
        "classify",
        help="read lines on stdin, print {text, language, intent, confidence} per line",
        description="Uses CC_RASA_URL (or --rasa-url) when it answers; otherwise starts Rasa.",
    )
    classify.add_argument("--rasa-url", help="overrides CC_RASA_URL")
    classify.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    classify.set_defaults(func=cmd_bot_classify)

    recordings = sub.add_parser(
        "recordings",
        help="sealed recordings: verify, purge, hold, unhold, export",
        description="Runs on the database and recording store of the settings: "
        "verify [--since DATE] [--contact ID] [--jobs N] [--progress]; purge [--dry-run]; "
        "hold|unhold CONTACT --reason TEXT --actor WHO; export --contact ID --out FILE.zip; "
        "verify-export FILE.zip.",
        add_help=False,
    )
    recordings.add_argument("arguments", nargs=argparse.REMAINDER)
    recordings.set_defaults(func=cmd_recordings)

    from chatbot.speech import transcribe
    from contact_center.tools import simulate

    simulate.add_parser(sub)
    transcribe.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from contact_center.server.logs import configure_logging

    args = build_parser().parse_args(argv)
    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        return _fail(str(exc), EXIT_USAGE)
    configure_logging(settings.log_level, json_lines=settings.log_json)
    os.umask(0o027)
    return int(args.func(settings, args))


if __name__ == "__main__":
    sys.exit(main())
