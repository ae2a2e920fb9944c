"""Every Redis key the contact center itself uses (the router builds its own in routing.keys)."""

from __future__ import annotations

#: Sorted set: "<party>|<contact id>" scored by the time at which that party's grace ends.
GRACE = "cc:grace"


def grace_member(party: str, contact_id: str) -> str:
    return f"{party}|{contact_id}"


def parse_grace_member(member: str) -> tuple[str, str]:
    party, _, contact_id = member.partition("|")
    return party, contact_id


def resume(token: str) -> str:
    """String: the contact a resume token gives back."""
    return f"cc:resume:{token}"


def resume_of(contact_id: str) -> str:
    """String: the resume token of a contact."""
    return f"cc:resume-of:{contact_id}"


def upgrade(contact_id: str, channel: str) -> str:
    """Set: the parties who asked to add ``channel`` to a contact."""
    return f"cc:upgrade:{contact_id}:{channel}"


def login_failures(username: str, address: str) -> str:
    """Counter: failed sign-ins of one account from one address within the window."""
    return f"cc:login-fail:{username.lower()}:{address}"


def ws_token(token: str) -> str:
    """String: the identity a short-lived WebSocket token stands for."""
    return f"cc:ws-token:{token}"


#: Hash: server instance id -> the WebSocket URL where the media of its contacts is negotiated.
INSTANCES = "cc:instances"


#: Stream: supervisor alarms (recorder failures...), newest last; see ``contacts.alarms``.
ALARMS = "cc:alarms"


def timeline(contact_id: str) -> str:
    """Stream: a contact's timeline events, in the one order its ``timeline.jsonl`` keeps."""
    return f"cc:timeline:{contact_id}"


def recording_pause(contact_id: str) -> str:
    """String (JSON, expires with the pause limit): the open pause of a contact's recording."""
    return f"cc:rec-pause:{contact_id}"
