"""Server-side media (aiortc): one peer connection per party, relayed and fanned out.

A leaf package: it imports nothing else from ``contact_center``; the app wires it.
"""

from contact_center.media.call import (
    CallMedia,
    Kind,
    MediaHub,
    MediaStateError,
    Party,
)
from contact_center.media.encoded import EncodedFrame, EncodedTap
from contact_center.media.fanout import Subscription, TrackFanout
from contact_center.media.ice import IceSettings, restricted_gathering, rtc_configuration
from contact_center.media.relay import RelayPath

__all__ = [
    "CallMedia",
    "EncodedFrame",
    "EncodedTap",
    "IceSettings",
    "Kind",
    "MediaHub",
    "MediaStateError",
    "Party",
    "RelayPath",
    "Subscription",
    "TrackFanout",
    "restricted_gathering",
    "rtc_configuration",
]
