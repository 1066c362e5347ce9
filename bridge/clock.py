"""Tempo: beats <-> ``time.monotonic()`` seconds, from an internal bpm or the DAW's MIDI clock.

Everything is scheduled in beats and converted here at the last moment, so a tempo change
applies at once. Following MIDI clock (24 ticks per quarter note), the tempo is the slope of a
least-squares line through the last beat of tick arrival times, and the line's value at the
newest tick anchors the beat grid: arrival jitter (a JACK period, a USB frame) is averaged out
instead of moving every note. Start, Stop, Continue and Song Position Pointer set the position
and whether time runs at all; while stopped, :meth:`time_of` answers None.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from rtmidi.midiconstants import (
    SONG_CONTINUE,
    SONG_POSITION_POINTER,
    SONG_START,
    SONG_STOP,
    TIMING_CLOCK,
)

from bridge.errors import BridgeError

PPQ = 24  # MIDI clock ticks per quarter note
TICKS_PER_SPP_UNIT = 6  # a Song Position Pointer counts sixteenth notes
CLOCK_SOURCES = ("internal", "midi")
QUANTIZE = ("bar", "beat", "none")
MIN_BPM, MAX_BPM = 20.0, 400.0
TICK_GAP_S = 0.5  # no tick for this long: the clock stopped, forget the old arrivals


@dataclass(frozen=True)
class ClockState:
    """What the status line shows."""

    bpm: float
    source: str
    running: bool
    beat: float | None


class TempoClock:
    """Thread-safe beat grid. Internal: runs from creation at ``bpm``. MIDI: follows ``midi_message``."""

    def __init__(self, bpm: float = 120.0, source: str = "internal", window: int = PPQ) -> None:
        if source not in CLOCK_SOURCES:
            raise BridgeError(f"clock source {source!r} is unknown; use one of {', '.join(CLOCK_SOURCES)}")
        self.source = source
        self._lock = threading.Lock()
        self._bpm = check_bpm(bpm)
        self._anchor_time = time.monotonic()
        self._anchor_beat = 0.0
        self._running = source == "internal"
        self._ticks: deque[float] = deque(maxlen=max(window, 2) + 1)
        self._tick = 0  # song position in ticks of the newest tick
        self._await_first_tick = False  # after Start/Continue the next tick is the position

    # --- conversions ---------------------------------------------------------------------

    @property
    def bpm(self) -> float:
        with self._lock:
            return self._bpm

    @property
    def running(self) -> bool:
        with self._lock:
            return self._running

    def beat_at(self, t: float) -> float | None:
        """The beat at monotonic time ``t``, or None while the transport is stopped."""
        with self._lock:
            if not self._running:
                return None
            return self._anchor_beat + (t - self._anchor_time) * self._bpm / 60.0

    def time_of(self, beat: float) -> float | None:
        """The monotonic time of ``beat`` at the current tempo, or None while stopped."""
        with self._lock:
            if not self._running:
                return None
            return self._anchor_time + (beat - self._anchor_beat) * 60.0 / self._bpm

    def position(self) -> float:
        """The beat now, or where the transport stands while stopped."""
        now = self.beat_at(time.monotonic())
        if now is not None:
            return now
        with self._lock:
            return self._tick / PPQ

    def state(self) -> ClockState:
        with self._lock:
            running, bpm = self._running, self._bpm
        return ClockState(bpm, self.source, running, self.beat_at(time.monotonic()) if running else None)

    # --- internal tempo ----------------------------------------------------------------

    def set_bpm(self, bpm: float) -> None:
        """Change the internal tempo from now on; the beat now stays where it is."""
        if self.source != "internal":
            return
        bpm = check_bpm(bpm)
        now = time.monotonic()
        with self._lock:
            self._anchor_beat += (now - self._anchor_time) * self._bpm / 60.0
            self._anchor_time = now
            self._bpm = bpm

    def set_source(self, source: str) -> None:
        """Switch between the internal tempo and MIDI clock, keeping the position."""
        if source not in CLOCK_SOURCES:
            raise BridgeError(f"clock source {source!r} is unknown; use one of {', '.join(CLOCK_SOURCES)}")
        position = self.position()
        with self._lock:
            if source == self.source:
                return
            self.source = source
            self._anchor_time, self._anchor_beat = time.monotonic(), position
            self._tick = round(position * PPQ)
            self._running = source == "internal"
            self._await_first_tick = False

    # --- MIDI clock ----------------------------------------------------------------------

    def midi_message(self, message: list[int], t: float) -> str | None:
        """Feed one input message; returns "start", "stop", "continue", "position", "tick" or None.

        Ignored (None) unless the source is ``midi`` or the message is not a clock message.
        """
        if self.source != "midi" or not message:
            return None
        status = message[0]
        with self._lock:
            if status == TIMING_CLOCK:
                self._on_tick(t)
                return "tick"
            if status == SONG_START:
                self._tick, self._await_first_tick, self._running = 0, True, False
                return "start"
            if status == SONG_CONTINUE:
                self._await_first_tick, self._running = True, False
                return "continue"
            if status == SONG_STOP:
                self._running = self._await_first_tick = False
                return "stop"
            if status == SONG_POSITION_POINTER and len(message) == 3:
                self._tick = (message[1] | message[2] << 7) * TICKS_PER_SPP_UNIT
                return "position"
        return None

    def _on_tick(self, t: float) -> None:
        if self._ticks and t - self._ticks[-1] > TICK_GAP_S:
            self._ticks.clear()
        self._ticks.append(t)
        if self._await_first_tick:
            self._await_first_tick, self._running = False, True
        elif self._running:
            self._tick += 1
        period, anchor = _fit(self._ticks)
        if period is not None:
            self._bpm = min(max(60.0 / (period * PPQ), MIN_BPM), MAX_BPM)
        self._anchor_time = anchor
        self._anchor_beat = self._tick / PPQ

    # --- quantizing -----------------------------------------------------------------------

    def next_boundary(self, quantize: str, after_beat: float, beats_per_bar: int = 4) -> float:
        """The first bar or beat at or after ``after_beat``; ``none``: ``after_beat`` itself."""
        grid = {"bar": float(beats_per_bar), "beat": 1.0, "none": 0.0}.get(quantize)
        if grid is None:
            raise BridgeError(f"quantize {quantize!r} is unknown; use one of {', '.join(QUANTIZE)}")
        if grid == 0.0:
            return after_beat
        return math.ceil(after_beat / grid - 1e-9) * grid


def check_bpm(bpm: float) -> float:
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise BridgeError(f"tempo {bpm} bpm is out of range; use {MIN_BPM:g} to {MAX_BPM:g}")
    return float(bpm)


def _fit(times: deque[float]) -> tuple[float | None, float]:
    """Least-squares line through (i, times[i]): (seconds per tick or None, fitted time of the last)."""
    n = len(times)
    if n < 3:
        return None, times[-1]
    mean_i = (n - 1) / 2.0
    mean_t = sum(times) / n
    cov = sum((i - mean_i) * (t - mean_t) for i, t in enumerate(times))
    var = sum((i - mean_i) ** 2 for i in range(n))
    slope = cov / var
    if slope <= 0:
        return None, times[-1]
    return slope, mean_t + slope * (n - 1 - mean_i)
