"""Test helpers: an in-memory output port that timestamps what it receives, and checks on a recording."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable

from rtmidi.midiconstants import ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON

from bridge.ports import MidiInput, MidiOutput

Recording = list[tuple[float, list[int]]]


class _MemoryHandle:
    """Stands in for an rtmidi port: keeps (monotonic time, message) of everything sent, and hands
    out what a test put in ``incoming`` as if it had arrived."""

    def __init__(self, sink: Recording, incoming: queue.SimpleQueue[list[int]]) -> None:
        self._sink = sink
        self._incoming = incoming

    def open_virtual_port(self, name: str) -> None:
        pass

    def ignore_types(self, **kinds: bool) -> None:
        pass

    def send_message(self, message: list[int]) -> None:
        self._sink.append((time.monotonic(), list(message)))

    def get_message(self) -> tuple[list[int], float] | None:
        try:
            return self._incoming.get_nowait(), 0.0
        except queue.Empty:
            return None

    def close_port(self) -> None:
        pass

    def delete(self) -> None:
        pass


class MemoryOutput(MidiOutput):
    """A real :class:`MidiOutput` (validation, lock, panic) whose messages land in ``received``."""

    def __init__(self, name: str = "memory", api: str = "alsa", *args: object, **kwargs: object) -> None:
        super().__init__(name, "alsa", *args, **kwargs)
        self.received: Recording = []

    def _make_handle(self) -> _MemoryHandle:
        return _MemoryHandle(self.received, queue.SimpleQueue())


class MemoryInput(MidiInput):
    """A real :class:`MidiInput` (its polling thread) fed by :meth:`inject`."""

    def __init__(self, callback, name: str = "memory in", api: str = "alsa", *args: object, **kwargs: object) -> None:
        super().__init__(callback, name, "alsa", *args, **kwargs)
        self.incoming: queue.SimpleQueue[list[int]] = queue.SimpleQueue()

    def _make_handle(self) -> _MemoryHandle:
        return _MemoryHandle([], self.incoming)

    def inject(self, message: list[int]) -> None:
        self.incoming.put(list(message))


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
