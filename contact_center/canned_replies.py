"""Canned replies per contact language: what the advisor console offers to put in the composer.

Read from a YAML file (``CC_CANNED_REPLIES``, else the built-in ``canned_replies.yaml``) of
``{language: [{title, text}, ...]}``; a bad file is refused at start naming what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from contact_center.db.models import LANGUAGES

BUILT_IN = Path(__file__).with_name("canned_replies.yaml")


class CannedReply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=4000)


_FILE: TypeAdapter[dict[str, list[CannedReply]]] = TypeAdapter(
    dict[str, list[CannedReply]]
)


class CannedRepliesError(ValueError):
    """The canned replies file cannot be used; the message says why."""


def load_canned_replies(path: Path | None = None) -> dict[str, list[CannedReply]]:
    """The replies of each language in ``path`` (the built-in list when None)."""
    source = path or BUILT_IN
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        replies = _FILE.validate_python(data or {})
    except (OSError, yaml.YAMLError) as exc:
        raise CannedRepliesError(f"{source}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise CannedRepliesError(f"{source}: {where}: {first.get('msg')}") from None
    unknown = sorted(set(replies) - set(LANGUAGES))
    if unknown:
        raise CannedRepliesError(f"{source}: unknown language {unknown[0]!r} (one of {LANGUAGES})")
    return replies
