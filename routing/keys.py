"""Every Redis key name of the router, built in one place.

All keys share the hash tag ``{prefix}`` so that a Redis Cluster keeps them in one slot and
every script can name all of them in KEYS. The order of :meth:`RouterKeys.script_keys` is the
layout that ``routing/lua/common.lua`` decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.models import CHANNELS


@dataclass(frozen=True)
class RouterKeys:
    prefix: str = "cc:rt"
    languages: tuple[str, ...] = ()
    _base: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_base", "{" + self.prefix + "}")

    def _k(self, *parts: str) -> str:
        return ":".join((self._base, *parts))

    @property
    def agents(self) -> str:
        """Hash: agent id -> JSON state."""
        return self._k("agents")

    @property
    def contacts(self) -> str:
        """Hash: contact id -> JSON state."""
        return self._k("contacts")

    @property
    def due(self) -> str:
        """Sorted set of deadlines: ``o|contact`` offer, ``w|agent`` wrap-up, ``a|contact`` aging,
        ``x|contact`` purge; scored by due time."""
        return self._k("due")

    @property
    def events(self) -> str:
        """Stream of routing events."""
        return self._k("events")

    @property
    def stats(self) -> str:
        """Hash of service-level counters ``language|skill|answered`` and ``...|in_sl``."""
        return self._k("stats")

    def aht(self, channel: str) -> str:
        """List of recent handle times (seconds) of a channel, newest first."""
        return self._k("aht", channel)

    def slot_mate(self, name: str) -> str:
        """A key of another part's in the router's hash slot, so that one XREAD (or script)
        can name it with the router's keys on a Redis Cluster; ``name`` keeps it apart."""
        return f"{self._base}:ext:{name}"

    def queue(self, language: str, channel: str) -> str:
        """Sorted set of waiting contacts, scored by the ordering key (lowest first)."""
        return self._k("q", language, channel)

    def available(self, language: str) -> str:
        """Lexicographic index of the agents of a language that can take a contact now."""
        return self._k("avail", language)

    def staffed(self, language: str) -> str:
        """Lexicographic index of logged-in agents of a language (expected-wait estimate)."""
        return self._k("staffed", language)

    def script_keys(self) -> list[str]:
        """KEYS of every router script, in the order common.lua expects."""
        keys = [self.agents, self.contacts, self.due, self.events, self.stats]
        keys += [self.aht(c) for c in CHANNELS]
        keys += [self.queue(lang, ch) for lang in self.languages for ch in CHANNELS]
        keys += [self.available(lang) for lang in self.languages]
        keys += [self.staffed(lang) for lang in self.languages]
        return keys
