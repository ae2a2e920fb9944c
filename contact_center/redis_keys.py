"""Every Redis key the contact center itself uses (the router builds its own in routing.keys).

Keys that one transaction, script or XREAD names together share a hash tag (the part in
``{}``), so that a Redis Cluster keeps them in one slot and runs the command: a session and the
set of its user's sessions (``{cc:sessions}``), the two failure counters of an address
(``{<address>}``), every contact's timeline stream (``{cc:tl}``: one XREAD follows all of an
instance's contacts), and the alarms with the router's events (the router's tag: the supervisor
feed reads both in one XREAD). Every other key is used alone and spreads over the slots.
"""

from __future__ import annotations

import hashlib

from routing.keys import RouterKeys

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
    return f"cc:login-fail:{{{address}}}:{username.lower()}"


def login_failures_of_address(address: str) -> str:
    """Counter: failed sign-ins from one address (or IPv6 /64), whatever the account."""
    return f"cc:login-fail-addr:{{{address}}}"


def guest_contacts(address: str) -> str:
    """Counter: conversations guests started from one address (or IPv6 /64) in the window."""
    return f"cc:guest-contacts:{address}"


def session(sid: str) -> str:
    """Hash: one signed-in session (uid, role, password mark, created, checked); its TTL is the
    idle or maximum age deadline, whichever comes first."""
    return f"{{cc:sessions}}:session:{sid}"


def user_sessions(user_id: int) -> str:
    """Set: the session ids of one user, so that all of them can be ended at once."""
    return f"{{cc:sessions}}:user:{user_id}"


def ws_token(token: str) -> str:
    """String: the identity a short-lived WebSocket token stands for."""
    return f"cc:ws-token:{token}"


#: Hash: server instance id -> the WebSocket URL where the media of its contacts is negotiated.
INSTANCES = "cc:instances"

#: Sorted set: server instance id scored by the time its presence lease ends (renewed by its
#: heartbeat). An instance whose lease ran out is dead: whoever removes its entry takes over.
LEASES = "cc:leases"


def presence(instance_id: str) -> str:
    """Hash: who has a WebSocket on one instance: person ref -> JSON identity."""
    return f"cc:presence:{instance_id}"


def presence_before(agent_id: str) -> str:
    """The status an advisor had when their socket went (string, expires with the grace)."""
    return f"cc:status-before:{agent_id}"


def presence_lock(ref: str) -> str:
    """String: held (with a token, briefly) while one person's connect or disconnect runs."""
    return f"cc:presence-lock:{ref}"


#: String: held by the instance running a reconciliation pass.
RECONCILE_LOCK = "cc:reconcile-lock"


def client_request(ref: str, request_id: str) -> str:
    """String: the first answer to one client request id of one person (idempotent retries)."""
    return f"cc:req:{ref}:{request_id}"


#: Hash: router agent id -> JSON {state, since}: when the supervisor feed first saw the agent in
#: its current state (the router keeps no such time), so that every instance shows the same.
SUPERVISOR_STATE_SINCE = "cc:sup:since"

#: List: the supervisor charts' samples of the last hour (JSON, oldest first, trimmed).
SUPERVISOR_HISTORY = "cc:sup:history"


def supervisor_sample_lock(bucket: int) -> str:
    """String: held by the instance that takes the history sample of one time bucket."""
    return f"cc:sup:sample:{bucket}"

#: Stream: supervisor alarms (recorder failures...), newest last; see ``contacts.alarms``. In
#: the hash slot of the app's router (its default keys), whose events the feed reads with it.
ALARMS = RouterKeys().slot_mate("alarms")


def timeline(contact_id: str) -> str:
    """Stream: a contact's timeline events, in the one order its ``timeline.jsonl`` keeps."""
    return f"{{cc:tl}}:timeline:{contact_id}"


def recording_pause(contact_id: str) -> str:
    """String (JSON, expires with the pause limit): the open pause of a contact's recording."""
    return f"cc:rec-pause:{contact_id}"


def bank_token_seen(jti: str) -> str:
    """String (expires with the token): a bank identity token's id, used once (no replays).
    Hashed: the id is the bank's, of any length and alphabet."""
    return f"cc:bank-jti:{hashlib.sha256(jti.encode()).hexdigest()[:32]}"
