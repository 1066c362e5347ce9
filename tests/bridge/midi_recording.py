"""Test helpers: an in-memory output port that timestamps what it receives, and checks on a recording."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rtmidi.midiconstants import ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON

from bridge.ports import MidiOutput

Recording = list[tuple[float, list[int]]]


class _RecordingHandle:
    """Stands in for ``rtmidi.MidiOut``: keeps (monotonic time, message) of everything sent."""

    def __init__(self, sink: Recording) -> None:
        self._sink = sink

    def open_virtual_port(self, name: str) -> None:
        pass

    def send_message(self, message: list[int]) -> None:
        self._sink.append((time.monotonic(), list(message)))

    def close_port(self) -> None:
        pass

    def delete(self) -> None:
        pass


class MemoryOutput(MidiOutput):
    """A real :class:`MidiOutput` (validation, lock, panic) whose messages land in ``received``."""

    def __init__(self) -> None:
        super().__init__("memory", api="alsa")
        self.received: Recording = []

    def _make_handle(self) -> _RecordingHandle:
        return _RecordingHandle(self.received)


def is_note_on(msg: list[int]) -> bool:
    return msg[0] & 0xF0 == NOTE_ON and msg[2] > 0


def is_note_off(msg: list[int]) -> bool:
    return msg[0] & 0xF0 == NOTE_OFF or (msg[0] & 0xF0 == NOTE_ON and msg[2] == 0)


def stuck_notes(messages: Iterable[list[int]]) -> set[tuple[int, int]]:
    """(channel, pitch) still sounding at the end, as a synth would see it (All Notes Off counts)."""
    sounding: set[tuple[int, int]] = set()
    for msg in messages:
        channel = msg[0] & 0x0F
        if is_note_on(msg):
            sounding.add((channel, msg[1]))
        elif is_note_off(msg):
            sounding.discard((channel, msg[1]))
        elif msg[0] & 0xF0 == CONTROL_CHANGE and msg[1] == ALL_NOTES_OFF:
            sounding = {s for s in sounding if s[0] != channel}
    return sounding


def unpaired_note_ons(messages: Iterable[list[int]]) -> set[tuple[int, int]]:
    """Like :func:`stuck_notes` but only explicit note-offs count: every note-on must get its own."""
    sounding: set[tuple[int, int]] = set()
    for msg in messages:
        if is_note_on(msg):
            sounding.add((msg[0] & 0x0F, msg[1]))
        elif is_note_off(msg):
            sounding.discard((msg[0] & 0x0F, msg[1]))
    return sounding
