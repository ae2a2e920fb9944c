"""docs/protocol.md is generated from the protocol models and kept in step with them."""

from __future__ import annotations

from contact_center import protocol
from contact_center.ws.protocol_doc import DOC, render


def test_protocol_doc_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/protocol.md is stale: run `python -m contact_center.ws.protocol_doc`"
    )


def test_every_message_type_is_documented_once():
    text = DOC.read_text(encoding="utf-8")
    for union in (protocol.ClientMessage, protocol.ServerMessage):
        adapter_schema = protocol.TypeAdapter(union).json_schema()
        for name in adapter_schema["discriminator"]["mapping"]:
            assert text.count(f"### `{name}`") >= 1, name
