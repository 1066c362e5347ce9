"""The sounding-notes ledger: every note-on that leaves the port is recorded, so every one gets its
note-off, whoever stops the music and from whichever thread.

Recording and sending happen under one lock, so a stop from another thread can never slip
between a note-on and its record. Each note has an owner (the scheduled note it belongs to):
when a phrase plays the same pitch twice overlapping, the second note-on first ends the first
note, and the first note's own note-off, coming later, is then skipped instead of cutting the
second note short.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence

from rtmidi.midiconstants import ALL_NOTES_OFF, CONTROL_CHANGE

from bridge.ports import MidiOutput


class NoteLedger:
    """Sends notes through ``port`` and remembers which are sounding, by (channel, pitch)."""

    def __init__(self, port: MidiOutput) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._sounding: dict[tuple[int, int], Hashable] = {}
        self.channels: set[int] = set()

    def note_on(self, channel: int, pitch: int, velocity: int, owner: Hashable = None) -> None:
        """Start a note; a note already sounding at this pitch is ended first (one on, one off)."""
        key = (channel, pitch)
        with self._lock:
            if key in self._sounding:
                self.port.note_off(channel, pitch)
            self._sounding[key] = owner
            self.channels.add(channel)
            self.port.note_on(channel, pitch, velocity)

    def note_off(self, channel: int, pitch: int, owner: Hashable = None) -> None:
        """End a note if it is still the one ``owner`` started."""
        key = (channel, pitch)
        with self._lock:
            if key in self._sounding and self._sounding[key] == owner:
                del self._sounding[key]
                self.port.note_off(channel, pitch)

    def send(self, message: Sequence[int]) -> None:
        """Any other message (program change, CC), in order with the notes."""
        with self._lock:
            self.port.send(message)

    def release_all(self) -> int:
        """Note-off for every sounding note; returns how many there were."""
        with self._lock:
            return self._release_locked()

    def silence(self) -> int:
        """Note-offs, then All Notes Off on every channel we played on: for stop, errors and exit."""
        with self._lock:
            released = self._release_locked()
            for channel in sorted(self.channels):
                self.port.send([CONTROL_CHANGE | channel, ALL_NOTES_OFF, 0])
            return released

    def _release_locked(self) -> int:
        sounding, self._sounding = self._sounding, {}
        for channel, pitch in sorted(sounding):
            self.port.note_off(channel, pitch)
        return len(sounding)

    def forget(self) -> None:
        """Drop the records without sending: the port was reopened, its old notes died with it."""
        with self._lock:
            self._sounding.clear()

    @property
    def sounding(self) -> frozenset[tuple[int, int]]:
        with self._lock:
            return frozenset(self._sounding)
