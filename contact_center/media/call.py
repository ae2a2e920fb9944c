"""The server's end of one contact's media: one peer connection per party, relayed both ways.

The client always offers (sendrecv transceivers); the server answers on those same transceivers
with forwarding tracks, so the server never has to start a renegotiation. A forwarding track for
party P and kind K follows the OTHER party's latest inbound track of kind K; until that track
exists it waits and the sender sends nothing. Every inbound track gets a ``TrackFanout`` whose
reader task drains it for its whole life (``subscribe()`` taps read decoded frames from it).

Two relay paths (``relay=``):

* ``"encoded"`` (default): the forwarding track is a ``RelayTrack`` fed with the other leg's
  *encoded* frames (``relay.EncodedSource``); when both legs negotiated the same VP8, H.264 or
  Opus format (``relay.same_format``)
  nothing is decoded or encoded, and keyframe requests are passed upstream. On a codec
  mismatch that track falls back to decoded frames, re-encoded by its sender, and
  ``on_event(party, "relay", "<kind>:transcode")`` says so (``"<kind>:encoded"`` otherwise).
  Inbound media is decoded only while a tap or a transcoding relay needs pixels.
* ``"transcode"``: the forwarding track is a ``Subscription`` of the other leg's fan-out, so
  every frame is decoded and re-encoded (aiortc's own path; no private hooks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, get_args

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from contact_center.media.encoded import EncodedTap
from contact_center.media.fanout import Subscription, TrackFanout
from contact_center.media.ice import IceSettings, restricted_gathering, rtc_configuration
from contact_center.media.relay import (
    EncodedSource,
    RelayMode,
    RelayPath,
    RelayTrack,
    check_aiortc,
    install_sender_hooks,
)
from recordings.recorder import CallRecorder, RecorderEvent

logger = logging.getLogger(__name__)

Party = Literal["customer", "advisor"]
Kind = Literal["audio", "video"]
PARTIES: tuple[Party, ...] = get_args(Party)
KINDS: tuple[Kind, ...] = get_args(Kind)

EventCallback = Callable[[str, str, str], None]
"""``on_event(party, "ice" | "connection" | "relay", state)``."""

DEFAULT_RELAY_PATH: RelayPath = "encoded"


class MediaStateError(RuntimeError):
    """An operation that the media object's current state forbids (the message names it)."""


def other(party: Party) -> Party:
    return "advisor" if party == "customer" else "customer"


@dataclass
class _PartyMedia:
    pc: RTCPeerConnection | None = None
    fanouts: list[TrackFanout] = field(default_factory=list)
    current: dict[Kind, TrackFanout] = field(default_factory=dict)
    sources: list[EncodedSource] = field(default_factory=list)  # encoded path only
    current_source: dict[Kind, EncodedSource] = field(default_factory=dict)
    relays: list[Subscription | RelayTrack] = field(default_factory=list)  # outgoing
    taps: list[Subscription] = field(default_factory=list)  # subscribe(): recorder, recogniser
    encoded_taps: list[EncodedTap] = field(default_factory=list)  # subscribe_encoded()


def _fingerprints(sdp: str) -> frozenset[str]:
    """The DTLS certificate fingerprints of an SDP: they identify the peer connection."""
    return frozenset(
        line.split(":", 1)[1].strip().lower()
        for line in sdp.splitlines()
        if line.startswith("a=fingerprint:")
    )


def _from_another_peer(pc: RTCPeerConnection, offer_sdp: str) -> bool:
    current = pc.remoteDescription
    if current is None:
        return False
    before, now = _fingerprints(current.sdp), _fingerprints(offer_sdp)
    return bool(before and now) and not (before & now)


class CallMedia:
    """One contact's media on this server instance: answer offers, relay, fan out, close.

    ``on_event(party, "connection", state)`` reports every ``connectionState`` change and
    ``on_event(party, "ice", state)`` every ``iceConnectionState`` change (``failed``,
    ``closed``...). A failed peer connection is left for the caller to act on; a new offer from
    that party then starts a fresh one (the other party's relay follows automatically).
    """

    _live: ClassVar[set[CallMedia]] = set()
    _open_pcs: ClassVar[set[RTCPeerConnection]] = set()

    def __init__(
        self,
        contact_id: str,
        ice: IceSettings,
        *,
        on_event: EventCallback | None = None,
        relay: RelayPath = DEFAULT_RELAY_PATH,
    ) -> None:
        if relay not in ("encoded", "transcode"):
            raise ValueError(f"unknown relay path {relay!r}")
        if relay == "encoded":
            check_aiortc()
        self.contact_id = contact_id
        self.ice = ice
        self.relay_path: RelayPath = relay
        self._on_event = on_event
        self._parties: dict[Party, _PartyMedia] = {p: _PartyMedia() for p in PARTIES}
        self._lock = asyncio.Lock()
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        self._recorder: CallRecorder | None = None
        CallMedia._live.add(self)
        logger.info("media %s: created", contact_id)

    # ------------------------------------------------------------------ counters (diagnostics)

    @classmethod
    def live_instances(cls) -> int:
        """CallMedia objects created and not yet closed, in this process."""
        return len(cls._live)

    @classmethod
    def open_peer_connections(cls) -> int:
        """Peer connections created by CallMedia and not yet closed, in this process."""
        return len(cls._open_pcs)

    @property
    def closed(self) -> bool:
        return self._closed

    def peer_connection(self, party: Party) -> RTCPeerConnection | None:
        return self._parties[party].pc

    def frames_received(self) -> dict[str, int]:
        """Frames received so far on each party's inbound tracks, keyed ``"party/kind"``.

        Encoded path: assembled encoded frames; transcode path: decoded frames.
        """
        counts: dict[str, int] = {}
        for party, media in self._parties.items():
            inbound: list[EncodedSource] | list[TrackFanout]
            inbound = media.sources if self.relay_path == "encoded" else media.fanouts
            for item in inbound:
                key = f"{party}/{item.kind}"
                frames = item.frames if isinstance(item, EncodedSource) else item.frames_read
                counts[key] = counts.get(key, 0) + frames
        return counts

    def relay_stats(self) -> dict[str, dict[str, object]]:
        """Each outgoing relay (encoded path), keyed ``"party/kind"`` of the party it sends to."""
        stats: dict[str, dict[str, object]] = {}
        for party, media in self._parties.items():
            for relay in media.relays:
                if isinstance(relay, RelayTrack):
                    source = relay.encoded_source
                    stats[f"{party}/{relay.kind}"] = {
                        "mode": relay.mode,
                        "packets_relayed": relay.packets_relayed,
                        "frames_dropped": relay.frames_dropped,
                        "keyframe_requests_forwarded": relay.keyframe_requests_forwarded,
                        "source_keyframes": source.keyframes if source else 0,
                        "source_keyframe_requests": source.keyframe_requests if source else 0,
                    }
        return stats

    # ------------------------------------------------------------------ signalling

    async def answer(self, party: Party, offer_sdp: str) -> str:
        """Apply ``party``'s offer (first one or renegotiation) and return the full answer SDP."""
        if party not in PARTIES:
            raise ValueError(f"unknown party {party!r}")
        async with self._lock:
            if self._closed:
                raise MediaStateError(f"media {self.contact_id} is closed")
            media = self._parties[party]
            if media.pc is not None and media.pc.connectionState in ("failed", "closed"):
                logger.info(
                    "media %s: %s offers again after %s; new peer connection",
                    self.contact_id,
                    party,
                    media.pc.connectionState,
                )
                await self._close_party(party)
            elif media.pc is not None and _from_another_peer(media.pc, offer_sdp):
                # A reloaded page or restarted app offers from a new peer connection while the
                # old one still looks alive: it cannot be renegotiated, it is replaced.
                logger.info(
                    "media %s: %s offers from a new peer connection; replacing its own",
                    self.contact_id,
                    party,
                )
                await self._close_party(party)
            if media.pc is None:
                media.pc = self._new_peer_connection(party)
            pc = media.pc
            with restricted_gathering(self.ice):
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                for transceiver in pc.getTransceivers():
                    kind = transceiver.kind
                    if kind in KINDS and transceiver.sender.track is None:
                        relay = self._new_relay(party, kind)
                        sender = pc.addTrack(relay)
                        if isinstance(relay, RelayTrack):
                            hooked = next(t for t in pc.getTransceivers() if t.sender is sender)
                            install_sender_hooks(hooked, relay)
                await pc.setLocalDescription(await pc.createAnswer())
            logger.info(
                "media %s: answered %s (%s)",
                self.contact_id,
                party,
                ", ".join(t.kind for t in pc.getTransceivers()),
            )
            return pc.localDescription.sdp

    async def add_candidate(
        self,
        party: Party,
        candidate: str,
        sdp_mid: str | None = None,
        sdp_mline_index: int | None = None,
    ) -> None:
        """Add a candidate trickled by ``party`` after its offer (``""``: end of candidates)."""
        async with self._lock:
            if self._closed:
                raise MediaStateError(f"media {self.contact_id} is closed")
            pc = self._parties[party].pc
            if pc is None or pc.remoteDescription is None:
                raise MediaStateError(f"media {self.contact_id}: no offer from {party} yet")
            if not candidate:
                await pc.addIceCandidate(None)
                return
            text = candidate.removeprefix("a=").removeprefix("candidate:")
            if len(text.split()) < 8:
                raise ValueError(f"malformed ICE candidate {candidate!r}")
            parsed = candidate_from_sdp(text)
            parsed.sdpMid, parsed.sdpMLineIndex = sdp_mid, sdp_mline_index
            await pc.addIceCandidate(parsed)

    def subscribe(self, party: Party, kind: Kind, *, max_queued: int = 1) -> Subscription:
        """An independent, latest-frame-only feed of ``party``'s inbound ``kind`` (own copies).

        It may be taken before the track exists; frames start when it does and follow
        renegotiations. It ends (``recv`` raises ``MediaStreamError``) when the call closes;
        ``stop()`` it to unsubscribe earlier.
        """
        if self._closed:
            raise MediaStateError(f"media {self.contact_id} is closed")
        media = self._parties[party]
        tap = Subscription(
            kind, copy=True, name=f"{self.contact_id}/{party}/{kind}/tap", max_queued=max_queued
        )
        tap.attach(media.current.get(kind))
        media.taps.append(tap)
        return tap

    def subscribe_encoded(
        self, party: Party, kind: Kind, *, max_queued: int | None = None
    ) -> EncodedTap:
        """A bounded feed of ``party``'s inbound ``kind`` as received: ``EncodedFrame``s.

        Encoded relay path only. Nothing is decoded for it; a video tap starts at a keyframe
        (requested upstream). Like ``subscribe()`` it may be taken before the track exists and
        follows renegotiations (``EncodedFrame.track_id`` changes); it ends when the call
        closes (queued frames are still delivered) or on ``stop()``.
        """
        if self._closed:
            raise MediaStateError(f"media {self.contact_id} is closed")
        if self.relay_path != "encoded":
            raise MediaStateError(
                f"media {self.contact_id}: encoded taps need relay path 'encoded', "
                f"not {self.relay_path!r}"
            )
        media = self._parties[party]
        tap = EncodedTap(
            kind, name=f"{self.contact_id}/{party}/{kind}/encoded", max_queued=max_queued
        )
        tap.attach(media.current_source.get(kind))
        media.encoded_taps.append(tap)
        return tap

    def start_recording(
        self,
        directory: Path,
        *,
        on_event: RecorderEvent | None = None,
        paused: bool = False,
    ) -> list[Path]:
        """Record every inbound track of both parties into ``directory``, until ``close()``.

        One file per inbound track, written as received (no decoding): see
        ``recordings.recorder``, which reports each file opened and closed and each failure to
        ``on_event``; ``paused`` starts it paused (``recorder.pause()``/``resume()``).
        Returns the recorder's list of files, which grows as tracks send their first frames.
        """
        if self._recorder is not None:
            raise MediaStateError(f"media {self.contact_id} is already recording")
        recorder = CallRecorder(
            directory, contact_id=self.contact_id, on_event=on_event, paused=paused
        )
        taps = [(p, k, self.subscribe_encoded(p, k)) for p in PARTIES for k in KINDS]
        self._recorder = recorder
        for party, kind, tap in taps:
            recorder.record(party, kind, tap)
        logger.info("media %s: recording into %s", self.contact_id, directory)
        return recorder.files

    async def end_kind(self, kind: Kind) -> None:
        """The contact dropped ``kind`` (a downgrade): the recording files of that kind end.

        Each party's encoded taps of ``kind`` stop: the recorder writes what they hold, closes
        the file and reports ``media_close`` before this returns. Whatever a client still sends
        of that kind is not recorded until ``restore_kind`` (an upgrade agreed again). The peer
        connections stay: the clients set their transceivers inactive by renegotiating.
        """
        ended: list[EncodedTap] = []
        async with self._lock:
            if self._closed:
                return
            for party in PARTIES:
                media = self._parties[party]
                for tap in [t for t in media.encoded_taps if t.kind == kind]:
                    tap.stop()
                    media.encoded_taps.remove(tap)
                    ended.append(tap)
        if self._recorder is not None:
            await self._recorder.drained(ended)
        logger.info("media %s: %s ended", self.contact_id, kind)

    def restore_kind(self, kind: Kind) -> None:
        """``kind`` is part of the contact again (an upgrade after a downgrade): record it."""
        if self._closed or self._recorder is None:
            return
        for party in PARTIES:
            if not any(t.kind == kind for t in self._parties[party].encoded_taps):
                self._recorder.record(party, kind, self.subscribe_encoded(party, kind))

    @property
    def recorder(self) -> CallRecorder | None:
        """The recorder started by ``start_recording`` (files and per-file counters)."""
        return self._recorder

    # ------------------------------------------------------------------ internals

    def _new_peer_connection(self, party: Party) -> RTCPeerConnection:
        pc = RTCPeerConnection(configuration=rtc_configuration(self.ice))
        CallMedia._open_pcs.add(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._on_track(party, track)

        @pc.on("connectionstatechange")
        def on_connection_state() -> None:
            self._emit(party, "connection", pc.connectionState)

        @pc.on("iceconnectionstatechange")
        def on_ice_state() -> None:
            self._emit(party, "ice", pc.iceConnectionState)

        logger.info("media %s: peer connection for %s created", self.contact_id, party)
        return pc

    def _new_relay(self, party: Party, kind: Kind) -> Subscription | RelayTrack:
        name = f"{self.contact_id}/{party}/{kind}/relay"
        source = self._parties[other(party)]
        relay: Subscription | RelayTrack
        if self.relay_path == "encoded":
            relay = RelayTrack(kind, name=name, on_mode=self._relay_mode_callback(party))
            relay.attach_encoded(source.current_source.get(kind))
        else:
            relay = Subscription(kind, copy=False, name=name)
        relay.attach(source.current.get(kind))
        self._parties[party].relays.append(relay)
        return relay

    def _relay_mode_callback(self, party: Party) -> Callable[[RelayTrack, RelayMode], None]:
        def on_mode(relay: RelayTrack, mode: RelayMode) -> None:
            self._emit(party, "relay", f"{relay.kind}:{mode}")

        return on_mode

    def _on_track(self, party: Party, track: MediaStreamTrack) -> None:
        if track.kind not in KINDS:
            return
        kind: Kind = track.kind
        media = self._parties[party]
        fanout = TrackFanout(track, name=f"{self.contact_id}/{party}/{kind}")
        fanout.start()
        media.fanouts.append(fanout)
        media.current[kind] = fanout
        source = self._new_source(party, kind, track)
        for tap in media.taps:
            if tap.kind == kind:
                tap.attach(fanout)
        for relay in self._parties[other(party)].relays:
            if relay.kind == kind:
                relay.attach(fanout)
                if isinstance(relay, RelayTrack):
                    relay.attach_encoded(source)
        logger.info("media %s: inbound %s from %s", self.contact_id, kind, party)

    def _new_source(
        self, party: Party, kind: Kind, track: MediaStreamTrack
    ) -> EncodedSource | None:
        """Encoded path: tap the receiver of ``track`` before its decoder."""
        pc = self._parties[party].pc
        if self.relay_path != "encoded" or pc is None:
            return None
        receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
        source = EncodedSource(
            receiver, kind, name=f"{self.contact_id}/{party}/{kind}", track_id=track.id
        )
        media = self._parties[party]
        relays = self._parties[other(party)].relays

        def wants_decoding() -> bool:
            # Decode only for pixels someone reads: a live tap, or a relay that transcodes.
            return any(tap.kind == kind and tap.readyState == "live" for tap in media.taps) or any(
                isinstance(r, RelayTrack) and r.mode == "transcode" and r.encoded_source is source
                for r in relays
            )

        source.wants_decoding = wants_decoding
        media.sources.append(source)
        media.current_source[kind] = source
        for tap in media.encoded_taps:
            if tap.kind == kind:
                tap.attach(source)
        return source

    def _emit(self, party: Party, what: str, state: str) -> None:
        logger.info("media %s: %s %s state %s", self.contact_id, party, what, state)
        if self._on_event is None:
            return
        try:
            self._on_event(party, what, state)
        except Exception:  # a broken listener must not break the peer connection's events
            logger.exception("media %s: on_event failed", self.contact_id)

    async def _close_party(self, party: Party) -> None:
        media = self._parties[party]
        pc, media.pc = media.pc, None
        if pc is not None:
            try:
                await pc.close()
            except Exception:  # keep cleaning up: the fan-out tasks must still end
                logger.exception("media %s: closing %s's peer connection", self.contact_id, party)
            CallMedia._open_pcs.discard(pc)
        for source in media.sources:
            await source.stop()
        media.sources.clear()
        media.current_source.clear()
        for fanout in media.fanouts:
            await fanout.stop()
        media.fanouts.clear()
        media.current.clear()
        for relay in media.relays:
            relay.stop()
        media.relays.clear()

    async def close(self) -> None:
        """Close both peer connections and end every task and subscription. Idempotent."""
        if self._close_done is not None:
            await asyncio.shield(self._close_done)
            return
        self._close_done = asyncio.get_running_loop().create_future()
        self._closed = True
        try:
            async with self._lock:
                for party in PARTIES:
                    await self._close_party(party)
                    for tap in self._parties[party].taps:
                        tap.stop()
                    self._parties[party].taps.clear()
                    for encoded in self._parties[party].encoded_taps:
                        encoded.stop()
                    self._parties[party].encoded_taps.clear()
                if self._recorder is not None:
                    await self._recorder.wait()  # every file gets its trailer
        finally:
            CallMedia._live.discard(self)
            self._close_done.set_result(None)
            logger.info("media %s: closed", self.contact_id)


HubEventCallback = Callable[[str, str, str, str], None]
"""``on_event(contact_id, party, "ice" | "connection" | "relay", state)``."""


class MediaHub:
    """Every CallMedia of this process: get-or-create by contact, close one, close all."""

    def __init__(
        self,
        ice: IceSettings,
        *,
        on_event: HubEventCallback | None = None,
        relay: RelayPath = DEFAULT_RELAY_PATH,
    ) -> None:
        self.ice = ice
        self.relay_path: RelayPath = relay
        self._on_event = on_event
        self._calls: dict[str, CallMedia] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, contact_id: str) -> CallMedia | None:
        return self._calls.get(contact_id)

    def get_or_create(self, contact_id: str) -> CallMedia:
        if self._closed:
            raise MediaStateError("media hub is closed")
        call = self._calls.get(contact_id)
        if call is None or call.closed:
            call = CallMedia(
                contact_id,
                self.ice,
                on_event=self._callback_for(contact_id),
                relay=self.relay_path,
            )
            self._calls[contact_id] = call
        return call

    def _callback_for(self, contact_id: str) -> EventCallback | None:
        hub_callback = self._on_event
        if hub_callback is None:
            return None

        def forward(party: str, what: str, state: str) -> None:
            hub_callback(contact_id, party, what, state)

        return forward

    async def close_call(self, contact_id: str) -> None:
        """Close one contact's media (no-op if unknown)."""
        call = self._calls.pop(contact_id, None)
        if call is not None:
            await call.close()

    async def close(self) -> None:
        """Close every call (the app's cleanup context calls this on shutdown). Idempotent."""
        self._closed = True
        calls = list(self._calls.values())
        self._calls.clear()
        results = await asyncio.gather(*(call.close() for call in calls), return_exceptions=True)
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("media %s: close failed: %r", call.contact_id, result)
        logger.info("media hub closed (%d calls)", len(calls))
