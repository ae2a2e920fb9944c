"""Where sealed files live: a local directory or an S3-compatible bucket.

Every backend names a file by (contact id, name) and gives it a location string:
``local:<contact>/<name>`` (relative to the root) or ``s3://<bucket>/<key>``. The functions are
synchronous (boto3 and file I/O): the app calls them in a worker thread (``asyncio.to_thread``).

S3: when the bucket has Object Lock enabled (``get_object_lock_configuration``), every upload
carries COMPLIANCE retention until the entry's ``retain_until``: nobody, root included, can
delete or overwrite that object version before then. A purge deletes every *version* of a key
(a plain DELETE on a versioned bucket would only add a delete marker); a version still under
retention raises ``LockedObject`` naming it and its date, it is never hidden.

``open_range`` has the same meaning on both backends: bytes ``start`` to ``end`` inclusive, cut
at the end of the file, ``b""`` for an empty span (S3 itself would answer a whole object for
``end < start`` and 416 for any range of an empty object). A missing file is
``FileNotFoundError`` on both.
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, runtime_checkable

from recordings.manifest import BLOCK

__all__ = [
    "DEFAULT_ROOT",
    "LocalStorage",
    "LockedObject",
    "S3Settings",
    "S3Storage",
    "Storage",
    "parse_s3_url",
    "retrying",
]

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("var/recordings")
T = TypeVar("T")


class LockedObject(PermissionError):
    """A stored file that cannot be deleted yet (Object Lock retention or a legal hold)."""

    def __init__(self, location: str, retain_until: datetime | None, detail: str = "") -> None:
        until = retain_until.isoformat() if retain_until else "an unknown date"
        super().__init__(f"{location} is locked until {until}{': ' + detail if detail else ''}")
        self.location = location
        self.retain_until = retain_until


@runtime_checkable
class Storage(Protocol):
    """What sealing, verifying and purging need from a store of sealed files."""

    def location(self, contact_id: str, name: str) -> str:
        """The location string of a file (stored or not)."""
        ...

    def put(
        self, contact_id: str, name: str, source: Path, *, retain_until: datetime | None
    ) -> str:
        """Store one file, return its location."""
        ...

    def open(self, contact_id: str, name: str) -> IO[bytes]:
        """A binary stream of the whole file (``FileNotFoundError`` if absent)."""
        ...

    def open_range(self, contact_id: str, name: str, start: int, end: int | None) -> bytes:
        """Bytes ``start`` to ``end`` *inclusive* (HTTP ``Range`` semantics; None: to the end)."""
        ...

    def size(self, contact_id: str, name: str) -> int:
        """Size in bytes (``FileNotFoundError`` if absent)."""
        ...

    def list(self, contact_id: str) -> dict[str, int]:
        """Every stored file of a contact: name -> size."""
        ...

    def contacts(self) -> builtins.list[str]:
        """Contact ids with at least one stored file."""
        ...

    def delete(self, contact_id: str, name: str) -> None:
        """Delete a file for good (``LockedObject`` when it may not be yet)."""
        ...

    def upload_sealed(
        self, contact_id: str, directory: Path, *, retain_until: datetime | None = None
    ) -> dict[str, str]:
        """Store every file of a sealed contact directory (with retries): name -> location."""
        ...


def retrying(
    action: Callable[[], T],
    *,
    attempts: int = 5,
    backoff: float = 0.5,
    what: str = "storage call",
    retry_on: tuple[type[BaseException], ...] = (OSError,),
    retry_if: Callable[[BaseException], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``action()``, retried on ``retry_on`` with exponential backoff (0.5, 1, 2, 4 s...).

    ``retry_if``, when given, is asked about each caught error: False raises it at once (an
    error that another attempt cannot cure, such as a refused permission).
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except retry_on as error:
            if attempt == attempts or (retry_if is not None and not retry_if(error)):
                raise
            delay = backoff * 2 ** (attempt - 1)
            logger.warning("%s failed (%s), retry %d in %.1f s", what, error, attempt, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _sealed_files(directory: Path) -> list[tuple[str, Path]]:
    return sorted(
        (path.relative_to(directory).as_posix(), path)
        for path in directory.rglob("*")
        if path.is_file() and not path.name.startswith(".manifest.")
    )


class LocalStorage:
    """Files under ``root/<contact_id>/<name>`` (the server's recording directory by default)."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path(self, contact_id: str, name: str) -> Path:
        if "/" in contact_id or contact_id in ("", ".", ".."):
            raise ValueError(f"bad contact id {contact_id!r}")
        path = (self.root / contact_id / name).resolve()
        if not path.is_relative_to((self.root / contact_id).resolve()):
            raise ValueError(f"bad file name {name!r}")
        return path

    def location(self, contact_id: str, name: str) -> str:
        return f"local:{contact_id}/{name}"

    def put(
        self, contact_id: str, name: str, source: Path, *, retain_until: datetime | None = None
    ) -> str:
        target = self.path(contact_id, name)
        if Path(source).resolve() != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.part")
            shutil.copyfile(source, temp)
            os.replace(temp, target)
        return self.location(contact_id, name)

    def open(self, contact_id: str, name: str) -> IO[bytes]:
        return open(self.path(contact_id, name), "rb")

    def open_range(self, contact_id: str, name: str, start: int, end: int | None) -> bytes:
        with self.open(contact_id, name) as file:
            file.seek(start)
            return file.read() if end is None else file.read(max(0, end - start + 1))

    def size(self, contact_id: str, name: str) -> int:
        return self.path(contact_id, name).stat().st_size

    def list(self, contact_id: str) -> dict[str, int]:
        directory = self.root / contact_id
        if not directory.is_dir():
            return {}
        return {name: path.stat().st_size for name, path in _sealed_files(directory)}

    def contacts(self) -> builtins.list[str]:
        if not self.root.is_dir():
            return []
        # Dot-directories are not contacts (``.claims``: see ``recordings.claim``).
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def delete(self, contact_id: str, name: str) -> None:
        path = self.path(contact_id, name)
        path.unlink()
        directory = self.root / contact_id
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()

    def upload_sealed(
        self, contact_id: str, directory: Path, *, retain_until: datetime | None = None
    ) -> dict[str, str]:
        return {
            name: retrying(
                lambda n=name, p=path: self.put(contact_id, n, p),  # type: ignore[misc]
                what=f"store {contact_id}/{name}",
            )
            for name, path in _sealed_files(Path(directory))
        }


_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
_TRANSIENT = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
    }
)


def _error_code(error: BaseException) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _transient(error: BaseException) -> bool:
    """Whether another attempt may succeed: not for a client error such as AccessDenied."""
    response = getattr(error, "response", None)
    if response is None:  # connection errors, timeouts, local I/O
        return True
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status >= 500 or _error_code(error) in _TRANSIENT


def _whole_seconds_up(value: datetime) -> datetime:
    """S3 keeps retain-until dates to the second: round up, never unlock before the ledger."""
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class S3Settings:
    """Where an S3-compatible bucket is and how to sign in (None: boto3's own lookup)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Settings:
        bucket, prefix = parse_s3_url(url)
        return cls(bucket=bucket, prefix=prefix, **options)


class S3Storage:
    """Objects ``<prefix>/<contact_id>/<name>`` in one bucket, Object Lock when enabled.

    Picklable (the boto3 client is made again in each process), so ``verify`` can hash with
    several processes.
    """

    multipart_threshold = 64 << 20

    def __init__(self, settings: S3Settings, *, attempts: int = 5, backoff: float = 0.5) -> None:
        self.settings = settings
        self.attempts = attempts
        self.backoff = backoff
        self._client: Any = None
        self._locking: bool | None = None

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.settings.bucket}/{self.settings.prefix})"

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "attempts": self.attempts, "backoff": self.backoff}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["settings"], attempts=state["attempts"], backoff=state["backoff"])  # type: ignore[misc]

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._client = boto3.client(
                "s3",
                endpoint_url=s.endpoint_url,
                region_name=s.region,
                aws_access_key_id=s.access_key,
                aws_secret_access_key=s.secret_key,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}),
            )
        return self._client

    def key(self, contact_id: str, name: str) -> str:
        if "/" in contact_id or not contact_id or ".." in name.split("/"):
            raise ValueError(f"bad contact id or name {contact_id!r} {name!r}")
        prefix = f"{self.settings.prefix}/" if self.settings.prefix else ""
        return f"{prefix}{contact_id}/{name}"

    def location(self, contact_id: str, name: str) -> str:
        return f"s3://{self.settings.bucket}/{self.key(contact_id, name)}"

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock (asked once)."""
        if self._locking is None:
            from botocore.exceptions import ClientError

            try:
                reply = self.client.get_object_lock_configuration(Bucket=self.settings.bucket)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in (
                    "ObjectLockConfigurationNotFoundError",
                    "NoSuchObjectLockConfiguration",
                ):
                    raise
                self._locking = False
            else:
                config = reply.get("ObjectLockConfiguration", {})
                self._locking = config.get("ObjectLockEnabled") == "Enabled"
        return self._locking

    def _retry(self, action: Callable[[], T], what: str) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        return retrying(
            action,
            attempts=self.attempts,
            backoff=self.backoff,
            what=what,
            retry_on=(BotoCoreError, ClientError, OSError),
            retry_if=_transient,
        )

    def put(
        self, contact_id: str, name: str, source: Path, *, retain_until: datetime | None = None
    ) -> str:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {}
        if retain_until is not None and self.object_lock_enabled():
            extra["ObjectLockMode"] = "COMPLIANCE"
            extra["ObjectLockRetainUntilDate"] = _whole_seconds_up(retain_until)
        key = self.key(contact_id, name)
        try:
            self.client.upload_file(
                str(source),
                self.settings.bucket,
                key,
                ExtraArgs=extra,
                Config=TransferConfig(multipart_threshold=self.multipart_threshold),
            )
        except S3UploadFailedError as error:
            # boto3 wraps the ClientError in an exception that is not one: unwrap it, so
            # that retries see the S3 error code (and do retry a 503).
            if isinstance(error.__context__, ClientError):
                raise error.__context__ from None
            raise
        return self.location(contact_id, name)

    def open(self, contact_id: str, name: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        try:
            reply = self.client.get_object(
                Bucket=self.settings.bucket, Key=self.key(contact_id, name)
            )
        except ClientError as error:
            if _error_code(error) in _MISSING:
                raise FileNotFoundError(self.location(contact_id, name)) from None
            raise
        body: IO[bytes] = reply["Body"]
        return body

    def open_range(self, contact_id: str, name: str, start: int, end: int | None) -> bytes:
        from botocore.exceptions import ClientError

        if start < 0:
            raise ValueError(f"negative range start {start}")
        if end is not None and end < start:
            return b""  # S3 would ignore such a Range header and send the whole object
        options: dict[str, Any] = {}
        if start or end is not None:
            options["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            reply = self.client.get_object(
                Bucket=self.settings.bucket, Key=self.key(contact_id, name), **options
            )
        except ClientError as error:
            code = _error_code(error)
            if code in _MISSING:
                raise FileNotFoundError(self.location(contact_id, name)) from None
            if code == "InvalidRange":  # start at or past the end (or an empty object)
                return b""
            raise
        with reply["Body"] as body:
            data: bytes = body.read()
        return data

    def iter_chunks(self, contact_id: str, name: str, block: int = BLOCK) -> Iterator[bytes]:
        body = self.open(contact_id, name)
        try:
            while chunk := body.read(block):
                yield chunk
        finally:
            body.close()

    def size(self, contact_id: str, name: str) -> int:
        from botocore.exceptions import ClientError

        try:
            reply = self.client.head_object(
                Bucket=self.settings.bucket, Key=self.key(contact_id, name)
            )
        except ClientError as error:
            if _error_code(error) in _MISSING:
                raise FileNotFoundError(self.location(contact_id, name)) from error
            raise
        return int(reply["ContentLength"])

    def retention(
        self, contact_id: str, name: str, version_id: str | None = None
    ) -> tuple[str, datetime] | None:
        """(mode, retain-until date in UTC) of a version (the current one by default), None
        without retention or when it cannot be read.

        Read from HEAD (``ObjectLockMode``, ``ObjectLockRetainUntilDate``), which S3 fills in
        for a caller allowed ``s3:GetObjectRetention``, as GetObjectRetention would; moto's
        server answers GetObjectRetention with a 500.
        """
        from botocore.exceptions import ClientError

        options = {"VersionId": version_id} if version_id else {}
        try:
            reply = self.client.head_object(
                Bucket=self.settings.bucket, Key=self.key(contact_id, name), **options
            )
        except ClientError:
            return None
        mode, until = reply.get("ObjectLockMode"), reply.get("ObjectLockRetainUntilDate")
        if not mode or until is None:
            return None
        return str(mode), until.astimezone(UTC)

    def list(self, contact_id: str) -> dict[str, int]:
        prefix = self.key(contact_id, "")
        found: dict[str, int] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"][len(prefix) :]] = int(item["Size"])
        return found

    def contacts(self) -> builtins.list[str]:
        prefix = f"{self.settings.prefix}/" if self.settings.prefix else ""
        names: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=prefix, Delimiter="/"):
            for item in page.get("CommonPrefixes", []):
                names.add(item["Prefix"][len(prefix) :].rstrip("/"))
        return sorted(names)

    def delete(self, contact_id: str, name: str) -> None:
        from botocore.exceptions import ClientError

        key = self.key(contact_id, name)
        bucket = self.settings.bucket
        versions: builtins.list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            versions += [
                v
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                if v["Key"] == key
            ]
        if not versions:
            raise FileNotFoundError(self.location(contact_id, name))
        for version in versions:
            try:
                self.client.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
            except ClientError as error:
                code = _error_code(error)
                if code != "AccessDenied":
                    raise
                held = self.retention(contact_id, name, version["VersionId"])
                raise LockedObject(
                    f"{self.location(contact_id, name)} (version {version['VersionId']})",
                    held[1] if held else None,
                    code,
                ) from error

    def upload_sealed(
        self, contact_id: str, directory: Path, *, retain_until: datetime | None = None
    ) -> dict[str, str]:
        locations: dict[str, str] = {}
        for name, path in _sealed_files(Path(directory)):
            locations[name] = self._retry(
                lambda n=name, p=path: self.put(contact_id, n, p, retain_until=retain_until),  # type: ignore[misc]
                f"upload {contact_id}/{name}",
            )
        return locations
