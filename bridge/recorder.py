"""Respond mode's ears: the notes the musician plays on the input port, until they pause.

Times are kept in monotonic seconds and turned into beats at the current tempo when the
phrase is taken, so a stopped transport (MIDI clock) does not matter while they play.
"""

from __future__ import annotations

import threading
from collections import deque

from rtmidi.midiconstants import NOTE_OFF, NOTE_ON

from bridge.codec import Note

MAX_NOTES = 256  # the model continues at most half a segment; older notes are dropped


class PhraseRecorder:
    """Thread-safe: ``feed`` from the MIDI input thread, ``take`` from the daemon's main loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: deque[tuple[float, float, int, int, int]] = deque(maxlen=MAX_NOTES)  # (on, off, pitch, vel, ch)
        self._open: dict[tuple[int, int], tuple[float, int]] = {}
        self._last = 0.0

    def feed(self, message: list[int], t: float) -> None:
        """A note-on or note-off played at monotonic time ``t``; other messages are ignored."""
        if len(message) != 3 or message[0] & 0xF0 not in (NOTE_ON, NOTE_OFF):
            return
        key = (message[0] & 0x0F, message[1])
        with self._lock:
            self._last = t
            if message[0] & 0xF0 == NOTE_ON and message[2] > 0:
                self._open[key] = (t, message[2])
            elif key in self._open:
                on, velocity = self._open.pop(key)
                self._done.append((on, t, key[1], velocity, key[0]))

    def take(self, now: float, bpm: float, gap_s: float | None) -> tuple[tuple[Note, ...], float] | None:
        """(notes in beats from the first onset, beats to the end of the last note) and forget them.

        With ``gap_s``, only once nothing has been played or held for that long; None: nothing yet.
        """
        with self._lock:
            if not self._done or (gap_s is not None and (self._open or now - self._last < gap_s)):
                return None
            played, self._done = sorted(self._done), deque(maxlen=MAX_NOTES)
        first = played[0][0]
        beats = bpm / 60.0
        notes = tuple(Note((on - first) * beats, p, (off - on) * beats, v, ch) for on, off, p, v, ch in played)
        return notes, max(n.onset + n.duration for n in notes)

    def clear(self) -> None:
        with self._lock:
            self._done.clear()
            self._open.clear()
