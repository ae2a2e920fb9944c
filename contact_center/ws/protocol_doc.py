"""Writes docs/protocol.md from the protocol models, so that the document cannot drift.

``python -m contact_center.ws.protocol_doc`` rewrites it; a test fails when it is stale.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from contact_center import protocol
from contact_center.errors import ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

HEADER = f"""# Signalling protocol (WebSocket `/ws`, version {protocol.PROTOCOL_VERSION})

Generated from `contact_center/protocol.py` by `python -m contact_center.ws.protocol_doc`; do not
edit by hand (a test compares them).

Frames are JSON text, at most {protocol.MAX_FRAME_BYTES // 1024} KiB, each `{{"v": 1, "type": ..., ...}}`.
The first frame must be `hello`; the cookie session (or the `token` from
`POST /api/ws-token`) says who you are. Every request carries an `id` and is answered by `ack`
(`ref` = that id, `data` = the result) or `error` (`ref`, `code`, `message`). The server also
pushes messages without `ref`. A bad frame gets an `error` and the connection stays open; a
flood (more than the configured rate) or a client that does not read is disconnected.

Error codes (from `contact_center.errors.ErrorCode`):

{{codes}}
"""


def _codes() -> str:
    docs = _attribute_docs(ErrorCode)
    return "\n".join(f"- `{code.value}`: {docs.get(code.name, '')}" for code in ErrorCode)


def _attribute_docs(cls: type) -> dict[str, str]:
    """The docstring under each member of an enum, read from its source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for first, second in zip(body, body[1:], strict=False):
        if (
            isinstance(first, ast.Assign)
            and isinstance(first.targets[0], ast.Name)
            and isinstance(second, ast.Expr)
            and isinstance(second.value, ast.Constant)
            and isinstance(second.value.value, str)
        ):
            docs[first.targets[0].id] = " ".join(second.value.value.split())
    return docs


def _roles(model: type[BaseModel]) -> str:
    roles = getattr(model, "roles", None)
    if not roles:
        return ""
    return "Sent by: " + ", ".join(sorted(role.value for role in roles)) + "."


def _result(model: type[BaseModel]) -> list[str]:
    result = getattr(model, "result_model", None)
    if result is None or not result.model_fields:
        return []
    return ["", f"`ack.data` ({result.__name__}):", "", "| field | type | required | notes |",
            "|---|---|---|---|", *_rows(result)]


def _type_name(annotation: object) -> str:
    text = str(annotation).replace("typing.", "").replace("contact_center.protocol.", "")
    text = text.replace("<class '", "").replace("'>", "").replace("NoneType", "null")
    return text.replace("|", "\\|")


def _rows(model: type[BaseModel]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if name in ("v", "type"):
            continue
        required = "yes" if field.is_required() else "no"
        default = "" if field.is_required() else f" (default `{field.get_default(call_default_factory=True)!r}`)"
        doc = (field.description or "").replace("\n", " ")
        rows.append(f"| `{name}` | {_type_name(field.annotation)} | {required}{default} | {doc} |")
    return rows


def _section(model: type[BaseModel]) -> str:
    type_name = typing.get_args(model.model_fields["type"].annotation)[0]
    doc = " ".join((model.__doc__ or "").split())
    lines = [f"### `{type_name}`", ""]
    if doc:
        lines += [doc, ""]
    if _roles(model):
        lines += [_roles(model), ""]
    rows = _rows(model)
    if rows:
        lines += ["| field | type | required | notes |", "|---|---|---|---|", *rows]
    else:
        lines.append("No fields besides `v` and `type`.")
    lines += _result(model)
    return "\n".join(lines) + "\n"


def _members(union: object) -> list[type[BaseModel]]:
    inner = typing.get_args(union)[0]
    return list(typing.get_args(inner))


def render() -> str:
    parts = [HEADER.replace("{codes}", _codes()), "## Client to server\n"]
    parts += [_section(m) for m in _members(protocol.ClientMessage)]
    parts.append("## Server to client\n")
    parts += [_section(m) for m in _members(protocol.ServerMessage)]
    return "\n".join(parts)


def main() -> int:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
