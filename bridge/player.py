"""The player thread: sends each event at its time, converting beats with the clock at the last moment.

It waits for absolute ``time.monotonic()`` deadlines on a Condition (so a new phrase or a stop
wakes it at once, and it re-reads the clock at least every few milliseconds, so a tempo change
applies at once), then spins for the last fraction of a millisecond, which a sleep cannot hit.
A new phrase cuts the schedule at its start beat: what the old phrase would have played from
there is dropped and its sounding notes get their note-offs at that beat (``START``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

from rtmidi.midiconstants import PROGRAM_CHANGE

from bridge.clock import TempoClock
from bridge.codec import Note
from bridge.ledger import NoteLedger

log = logging.getLogger(__name__)

RT_PRIORITY = 20  # SCHED_FIFO priority when allowed: above desktop load, below JACK's audio threads (~70+)
SPIN_S = 0.0008  # spin for the last 0.8 ms: a Condition wait overshoots by ~0.1-1 ms
MAX_WAIT_S = 0.005  # re-read the clock at least this often while waiting
LATE_S = 0.1  # a note-on this late is dropped (a stalled machine must not fire a burst)
TIMING_KEPT = 8192  # send-time errors kept for status and benchmarks


class Kind(IntEnum):
    """Order of events at the same beat: the cut first, note-offs before program and note-ons."""

    START = 0
    OFF = 1
    PROGRAM = 2
    ON = 3


@dataclass(frozen=True, order=True)
class Event:
    """One scheduled message; ``beat`` is relative to its phrase until :meth:`Player.play` places it."""

    beat: float
    kind: Kind
    channel: int = 0
    number: int = 0  # pitch, or program
    velocity: int = 0
    owner: Hashable = field(default=None, compare=False)
    tag: object = field(default=None, compare=False)


def note_events(notes: Iterable[Note], serial: int, program: int | None = None) -> list[Event]:
    """A phrase's notes as sorted events (beats relative to its start); ``owner`` ties on to off."""
    events = []
    channels = set()
    for index, note in enumerate(notes):
        owner = (serial, index)
        channels.add(note.channel)
        events.append(Event(note.onset, Kind.ON, note.channel, note.pitch, note.velocity, owner))
        events.append(Event(note.onset + max(note.duration, 1e-3), Kind.OFF, note.channel, note.pitch, 0, owner))
    if program is not None:
        events += [Event(0.0, Kind.PROGRAM, ch, program) for ch in channels]
    return sorted(events)


@dataclass(frozen=True)
class Started:
    """A phrase began sounding (for takes and status)."""

    tag: object
    start_beat: float
    due: float
    sent: float


class Player:
    """One thread that owns the timeline. ``play`` and ``clear`` may be called from any thread."""

    def __init__(
        self,
        clock: TempoClock,
        ledger: NoteLedger,
        *,
        offset_s: float = 0.0,
        on_start: Callable[[Started], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        spin_s: float = SPIN_S,
    ) -> None:
        self.clock = clock
        self.ledger = ledger
        self.offset_s = offset_s
        self.spin_s = spin_s
        self._on_start = on_start
        self._on_error = on_error
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._next = 0
        self._generation = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.timing: deque[tuple[float, float]] = deque(maxlen=TIMING_KEPT)  # (due, sent)
        self.dropped_late = 0
        self.realtime = False  # whether the thread got real-time scheduling

    # --- thread lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dmc-player", daemon=True)
        self._thread.start()

    def stop(self, block: bool = True, timeout: float = 2.0) -> None:
        """End the thread; its last act is a note-off for every sounding note."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if block and self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- the schedule -------------------------------------------------------------------

    def play(self, events: Sequence[Event], start_beat: float, tag: object = None) -> None:
        """Schedule a phrase at ``start_beat``, cutting whatever was scheduled from there on."""
        placed = [replace(e, beat=e.beat + start_beat) for e in events]
        with self._cond:
            kept = [e for e in self._events[self._next :] if e.beat < start_beat]
            self._events = [*kept, Event(start_beat, Kind.START, tag=tag), *placed]
            self._next = 0
            self._generation += 1
            self._cond.notify_all()

    def clear(self) -> int:
        """Stop the music now: drop the schedule, note-off everything, All Notes Off; returns notes ended."""
        with self._cond:
            self._events, self._next = [], 0
            self._generation += 1
            self._cond.notify_all()
            return self.ledger.silence()

    def pending(self) -> tuple[int, float | None]:
        """(phrases scheduled but not started, beat of the last event or None when idle)."""
        with self._cond:
            ahead = self._events[self._next :]
        starts = sum(1 for e in ahead if e.kind is Kind.START)
        return starts, (ahead[-1].beat if ahead else None)

    def recent_timing(self, count: int) -> list[tuple[float, float]]:
        """The last ``count`` (due, sent) pairs of sent events."""
        with self._cond:
            return list(self.timing)[-count:]

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        self.realtime = _realtime_priority()
        try:
            while not self._stopping.is_set():
                self._step()
        except BaseException as exc:
            log.exception("player thread failed")
            if self._on_error is not None:
                self._on_error(exc)
        finally:
            with self._cond:
                self._events, self._next = [], 0
                self.ledger.release_all()

    def _step(self) -> None:
        with self._cond:
            if self._next >= len(self._events):
                self._cond.wait(MAX_WAIT_S * 10)
                return
            event, generation = self._events[self._next], self._generation
        beat_time = self.clock.time_of(event.beat)
        if beat_time is None:  # transport stopped: wait for it
            with self._cond:
                self._cond.wait(MAX_WAIT_S)
            return
        due = beat_time + self.offset_s
        remaining = due - time.monotonic()
        if remaining > self.spin_s:
            with self._cond:
                if generation == self._generation:
                    self._cond.wait(min(remaining - self.spin_s, MAX_WAIT_S))
            return
        while time.monotonic() < due:
            pass
        with self._cond:
            if generation != self._generation:
                return
            self._next += 1
            self._fire(event, due)

    def _fire(self, event: Event, due: float) -> None:
        now = time.monotonic()
        if event.kind is Kind.START:
            self.ledger.release_all()
            if self._on_start is not None:
                self._on_start(Started(event.tag, event.beat, due, now))
            return
        if event.kind is Kind.ON:
            if now - due > LATE_S:
                self.dropped_late += 1
                return
            self.ledger.note_on(event.channel, event.number, event.velocity, event.owner)
        elif event.kind is Kind.OFF:
            self.ledger.note_off(event.channel, event.number, event.owner)
        else:
            self.ledger.send([PROGRAM_CHANGE | event.channel, event.number])
        self.timing.append((due, time.monotonic()))


def _realtime_priority() -> bool:
    """Ask for SCHED_FIFO for the calling thread (Linux), so a busy machine does not delay a wake-up.

    Allowed for root or with an rtprio limit (the 'audio' group on most distributions); else
    the player runs at normal priority and says so once.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except (AttributeError, OSError) as exc:
        log.info("player runs without real-time priority (%s); timing may suffer on a busy machine", exc)
        return False
    return True
