"""The tempo clock: beat <-> time conversion, tempo changes, MIDI clock following, quantizing."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtmidi.midiconstants import SONG_CONTINUE, SONG_POSITION_POINTER, SONG_START, SONG_STOP, TIMING_CLOCK

from bridge.clock import PPQ, TempoClock
from bridge.errors import BridgeError


def feed_ticks(clock: TempoClock, t0: float, bpm: float, count: int, jitter: float = 0.0, seed: int = 0) -> float:
    """Send ``count`` clock ticks at ``bpm`` from ``t0`` (with arrival jitter); returns the next tick's time."""
    rng = random.Random(seed)
    period = 60.0 / bpm / PPQ
    for i in range(count):
        clock.midi_message([TIMING_CLOCK], t0 + i * period + rng.uniform(0, jitter))
    return t0 + count * period


def test_internal_time_and_beat_are_inverse() -> None:
    clock = TempoClock(bpm=90)
    t = clock.time_of(10.0)
    assert clock.beat_at(t) == pytest.approx(10.0)
    assert clock.time_of(11.0) - t == pytest.approx(60 / 90)


def test_tempo_change_keeps_the_beat_now_and_applies_to_later_beats() -> None:
    clock = TempoClock(bpm=120)
    now = time.monotonic()
    beat_now = clock.beat_at(now)
    clock.set_bpm(60)
    assert clock.beat_at(now) == pytest.approx(beat_now, abs=0.01)  # only the time set_bpm took moves it
    assert clock.time_of(beat_now + 4) - clock.time_of(beat_now) == pytest.approx(4.0)


def test_bad_tempo_and_source_are_errors() -> None:
    with pytest.raises(BridgeError, match="out of range"):
        TempoClock(bpm=5)
    with pytest.raises(BridgeError, match="unknown"):
        TempoClock(source="ltc")


@pytest.mark.parametrize(
    ("quantize", "after", "expected"),
    [("bar", 0.0, 0.0), ("bar", 0.1, 4.0), ("bar", 4.0, 4.0), ("beat", 5.2, 6.0), ("none", 5.2, 5.2)],
)
def test_next_boundary(quantize: str, after: float, expected: float) -> None:
    assert TempoClock().next_boundary(quantize, after) == pytest.approx(expected)


@given(st.floats(0, 1000), st.sampled_from([3, 4, 7]))
def test_next_bar_is_a_bar_at_or_after(after: float, beats_per_bar: int) -> None:
    bar = TempoClock().next_boundary("bar", after, beats_per_bar)
    assert after - 1e-6 <= bar < after + beats_per_bar
    assert bar / beats_per_bar == pytest.approx(round(bar / beats_per_bar))


def test_midi_clock_is_ignored_by_the_internal_clock() -> None:
    clock = TempoClock(bpm=100)
    assert clock.midi_message([SONG_STOP], 0.0) is None
    assert clock.running


def test_midi_clock_runs_only_between_start_and_stop() -> None:
    clock = TempoClock(source="midi")
    assert clock.time_of(0.0) is None
    t0 = 1000.0
    clock.midi_message([SONG_START], t0 - 0.001)
    next_t = feed_ticks(clock, t0, 120, 48)
    assert clock.running
    assert clock.time_of(0.0) == pytest.approx(t0, abs=1e-6)  # the first tick after Start is beat 0
    assert clock.time_of(2.0) == pytest.approx(next_t, abs=1e-6)
    assert clock.bpm == pytest.approx(120, rel=1e-6)
    assert clock.midi_message([SONG_STOP], next_t) == "stop"
    assert clock.time_of(2.0) is None
    assert clock.position() == pytest.approx(47 / PPQ)


def test_midi_clock_follows_a_tempo_change_within_a_beat_and_smooths_jitter() -> None:
    clock = TempoClock(source="midi")
    clock.midi_message([SONG_START], 0.0)
    t = feed_ticks(clock, 1.0, 120, 96, jitter=0.002)
    assert clock.bpm == pytest.approx(120, rel=0.01)
    t = feed_ticks(clock, t, 150, PPQ + 1, jitter=0.002, seed=1)
    assert clock.bpm == pytest.approx(150, rel=0.01)
    # the grid is anchored on the fitted line: a 2 ms arrival jitter moves a beat's time far less
    beat = clock.beat_at(t)
    assert clock.time_of(beat + 1) - clock.time_of(beat) == pytest.approx(0.4, abs=0.004)


def test_song_position_and_continue() -> None:
    clock = TempoClock(source="midi")
    spp = 32  # sixteenth notes: beat 8
    assert clock.midi_message([SONG_POSITION_POINTER, spp & 0x7F, spp >> 7], 0.0) == "position"
    assert clock.position() == pytest.approx(8.0)
    assert clock.midi_message([SONG_CONTINUE], 0.5) == "continue"
    feed_ticks(clock, 1.0, 120, 1)
    assert clock.time_of(8.0) == pytest.approx(1.0)
