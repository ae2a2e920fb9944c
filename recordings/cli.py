"""``python -m recordings verify|purge|hold|unhold|init-db|export|verify-export``: the
recordings' command line.

Storage: ``--root DIR`` (local, default ``var/recordings``) or ``--s3 s3://bucket/prefix``
with ``--s3-endpoint``, ``--s3-region``; the S3 keys come from the usual AWS variables.
Exit status: 0 when all is well, 1 when ``verify`` found problems (each printed on one line),
2 for usage errors. ``export --contact ID --out FILE.zip`` writes one contact's offline-checkable
export (see ``recordings.export``); ``verify-export FILE.zip`` checks one, without database or
storage: 0 when sound, 1 with each problem on a line.

``main(argv, prog=..., database_url=..., storage=...)`` is what the app's CLI mounts as
``contact-center recordings``: the app's database and storage become the defaults of ``--db``
and ``--root``/``--s3``, so that its settings (S3 credentials included) are used as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from recordings import retention
from recordings.export import ExportError, export_contact, verify_export
from recordings.ledger import ChainHead, LedgerEntry
from recordings.storage import DEFAULT_ROOT, LocalStorage, S3Settings, S3Storage, Storage
from recordings.verify import verify

__all__ = ["build_parser", "main"]


def _date(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser(
    prog: str = "python -m recordings", *, database_url: str | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Sealed recordings: verify, purge, hold."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db",
        required=database_url is None,
        default=database_url,
        help="database URL (sqlite+aiosqlite:///..., postgresql+asyncpg://...)",
    )
    common.add_argument(
        "--root", help=f"local recordings directory (default {DEFAULT_ROOT})"
    )
    common.add_argument("--s3", help="s3://bucket/prefix instead of --root")
    common.add_argument("--s3-endpoint", help="S3-compatible endpoint URL")
    common.add_argument("--s3-region", default="us-east-1")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", parents=[common], help="re-hash files, walk the chain")
    check.add_argument("--since", type=_date, help="only contacts sealed since (ISO date)")
    check.add_argument("--contact", help="only this contact")
    check.add_argument("--jobs", type=int, default=1, help="hashing processes")
    check.add_argument("--progress", action="store_true", help="show a progress bar")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    purge = commands.add_parser("purge", parents=[common], help="delete expired, unheld contacts")
    purge.add_argument("--dry-run", action="store_true")
    purge.add_argument("--actor", default="retention")
    for name in ("hold", "unhold"):
        hold = commands.add_parser(name, parents=[common], help=f"{name} a contact (legal hold)")
        hold.add_argument("contact")
        hold.add_argument("--reason", required=True)
        hold.add_argument("--actor", required=True)
    commands.add_parser("init-db", parents=[common], help="create the ledger tables")
    export = commands.add_parser(
        "export", parents=[common], help="one contact as a zip that can be checked offline"
    )
    export.add_argument("--contact", required=True, help="the contact id")
    export.add_argument("--out", required=True, help="the zip to write (never overwritten)")
    export.add_argument(
        "--allow-problems",
        action="store_true",
        help="write the zip even when it would not verify (the problems are printed)",
    )
    offline = commands.add_parser(
        "verify-export", help="check an export zip offline (no database, no storage)"
    )
    offline.add_argument("zip", help="the export zip")
    offline.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _verify_export(args: argparse.Namespace) -> int:
    problems = verify_export(args.zip)
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems}, ensure_ascii=False))
    else:
        for problem in problems:
            print(problem)
        print(f"{'OK' if not problems else 'PROBLEMS'}: {args.zip}, {len(problems)} problems")
    return 1 if problems else 0


def _storage(args: argparse.Namespace, default: Storage | None) -> Storage:
    if args.s3:
        return S3Storage(
            S3Settings.from_url(args.s3, endpoint_url=args.s3_endpoint, region=args.s3_region)
        )
    if args.root:
        return LocalStorage(args.root)
    return default if default is not None else LocalStorage(DEFAULT_ROOT)


async def _run(args: argparse.Namespace, default_storage: Storage | None = None) -> int:
    engine = create_async_engine(args.db)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    try:
        if args.command == "init-db":
            tables = [LedgerEntry.__table__, ChainHead.__table__]  # type: ignore[attr-defined]
            async with engine.begin() as conn:
                await conn.run_sync(SQLModel.metadata.create_all, tables=tables)
            return 0
        storage = _storage(args, default_storage)
        if args.command == "export":
            try:
                exported = await export_contact(
                    sessions, storage, args.contact, args.out, allow_problems=args.allow_problems
                )
            except ExportError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            for line in exported.problems:
                print(line)
            print(
                f"exported {exported.contact_id} (seq {exported.seq}): {len(exported.files)} files"
                f"{f', {len(exported.purged)} purged' if exported.purged else ''},"
                f" {exported.bytes} bytes -> {exported.path}"
            )
            return 1 if exported.problems else 0
        if args.command == "verify":
            report = await verify(
                sessions,
                storage,
                since=args.since,
                contact_id=args.contact,
                jobs=args.jobs,
                progress=args.progress,
            )
            for problem in report.problems:
                print(problem)
            summary = report.as_dict()
            if args.json:
                print(json.dumps(summary, ensure_ascii=False))
            else:
                print(
                    f"{'OK' if report.ok else 'PROBLEMS'}: {report.entries} entries, "
                    f"{report.contacts} contacts, {report.files} files, "
                    f"{report.bytes_hashed} bytes hashed, {len(report.problems)} problems"
                )
            return 0 if report.ok else 1
        if args.command == "purge":
            result = await retention.purge(
                sessions, storage, dry_run=args.dry_run, actor=args.actor
            )
            for contact, names in result.purged.items():
                print(
                    f"{'would purge' if result.dry_run else 'purged'} {contact}: {', '.join(names)}"
                )
            for message in result.locked:
                print(f"locked: {message}")
            for contact in result.held:
                print(f"held: {contact}")
            return 1 if result.locked else 0
        if args.command in ("hold", "unhold"):
            change = retention.set_hold if args.command == "hold" else retention.clear_hold
            await change(sessions, args.contact, reason=args.reason, actor=args.actor)
            print(f"{args.command}: {args.contact}")
            return 0
        return 2
    finally:
        await engine.dispose()


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m recordings",
    database_url: str | None = None,
    storage: Storage | None = None,
) -> int:
    """Run one command; ``database_url`` and ``storage`` are the defaults of ``--db`` and of
    ``--root``/``--s3`` (the app's settings, when mounted as ``contact-center recordings``)."""
    args = build_parser(prog, database_url=database_url).parse_args(argv)
    if args.command == "verify-export":
        return _verify_export(args)
    try:
        return asyncio.run(_run(args, storage))
    except (ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
