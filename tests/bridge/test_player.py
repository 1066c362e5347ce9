"""The player thread against an in-memory port: times, cuts, stops, tempo changes, errors."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from midi_recording import MemoryOutput, is_note_on, stuck_notes, unpaired_note_ons
from rtmidi.midiconstants import PROGRAM_CHANGE

from bridge.clock import TempoClock
from bridge.codec import Note
from bridge.ledger import NoteLedger
from bridge.player import Player, Started, note_events

BPM = 200.0  # a quarter note is 0.3 s: tests stay short


@pytest.fixture
def rig() -> Iterator[tuple[Player, MemoryOutput, list[Started]]]:
    started: list[Started] = []
    errors: list[BaseException] = []
    with MemoryOutput() as port:
        player = Player(TempoClock(bpm=BPM), NoteLedger(port), on_start=started.append, on_error=errors.append)
        player.start()
        try:
            yield player, port, started
        finally:
            player.stop()
    assert not player.alive
    assert errors == []


def scale_run(count: int, step: float = 0.25, channel: int = 0) -> list[Note]:
    return [Note(i * step, 60 + i, step * 0.9, 90, channel) for i in range(count)]


def wait_for(predicate, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_events_are_sent_at_their_times_in_order(rig) -> None:
    player, port, started = rig
    clock = player.clock
    start = clock.beat_at(time.monotonic()) + 0.5
    notes = scale_run(8)
    player.play(note_events(notes, serial=1, program=5), start, tag="p1")
    wait_for(lambda: player.pending() == (0, None) and len(port.received) >= 17)
    sent = port.received
    assert sent[0][1] == [PROGRAM_CHANGE, 5]
    ons = [(t, m) for t, m in sent if is_note_on(m)]
    assert [m[1] for _, m in ons] == [n.pitch for n in notes]
    errors = [t - clock.time_of(start + n.onset) for (t, _), n in zip(ons, notes, strict=True)]
    assert max(abs(e) for e in errors) < 0.005  # generous for a shared CI machine; the benchmark measures
    assert [s.tag for s in started] == ["p1"]
    assert unpaired_note_ons(m for _, m in sent) == set()


def test_a_new_phrase_cuts_the_old_one_at_its_start(rig) -> None:
    player, port, _ = rig
    beat = player.clock.beat_at(time.monotonic())
    long_note = [Note(0.0, 50, 100.0)]
    player.play(note_events(long_note, serial=1), beat + 0.2)
    player.play(note_events([Note(0.0, 70, 0.25)], serial=2), beat + 1.0)
    wait_for(lambda: player.pending() == (0, None))
    msgs = [m for _, m in port.received]
    assert [m[1] for m in msgs if is_note_on(m)] == [50, 70]
    cut_at = next(t for t, m in port.received if not is_note_on(m) and m[1] == 50)
    assert cut_at - player.clock.time_of(beat + 1.0) < 0.005
    assert unpaired_note_ons(msgs) == set()


def test_clear_silences_at_once(rig) -> None:
    player, port, _ = rig
    beat = player.clock.beat_at(time.monotonic())
    player.play(note_events([Note(0.0, 60, 50.0), Note(0.0, 64, 50.0)], serial=1), beat + 0.1)
    wait_for(lambda: len(player.ledger.sounding) == 2)
    t = time.monotonic()
    assert player.clear() == 2
    assert time.monotonic() - t < 0.01
    assert stuck_notes(m for _, m in port.received) == set()
    assert player.pending() == (0, None)


def test_tempo_change_applies_to_the_rest_of_the_phrase(rig) -> None:
    player, port, _ = rig
    clock = player.clock
    start = clock.beat_at(time.monotonic()) + 0.2
    player.play(note_events(scale_run(6, step=0.5), serial=1), start)
    wait_for(lambda: sum(is_note_on(m) for _, m in port.received) >= 2)
    clock.set_bpm(400.0)  # twice as fast from now on
    wait_for(lambda: player.pending() == (0, None))
    ons = [t for t, m in port.received if is_note_on(m)]
    gaps = [b - a for a, b in itertools.pairwise(ons)]
    assert gaps[0] == pytest.approx(0.15, abs=0.01)  # half a beat at 200 bpm
    assert gaps[-1] == pytest.approx(0.075, abs=0.01)  # half a beat at 400 bpm


def test_offset_sends_early_when_negative(rig) -> None:
    player, port, _ = rig
    player.offset_s = -0.05
    start = player.clock.beat_at(time.monotonic()) + 0.5
    player.play(note_events([Note(0.0, 60, 0.25)], serial=1), start)
    wait_for(lambda: player.pending() == (0, None))
    sent_at = next(t for t, m in port.received if is_note_on(m))
    assert sent_at - player.clock.time_of(start) == pytest.approx(-0.05, abs=0.005)


def test_an_error_in_the_player_is_reported_and_silences() -> None:
    errors: list[BaseException] = []
    with MemoryOutput() as port:
        ledger = NoteLedger(port)
        player = Player(TempoClock(bpm=BPM), ledger, on_start=lambda s: 1 / 0, on_error=errors.append)
        ledger.note_on(0, 60, 100)  # as if an earlier phrase were still sounding
        player.start()
        player.play(note_events([Note(0.0, 62, 1.0)], serial=1), player.clock.beat_at(time.monotonic()) + 0.1)
        wait_for(lambda: not player.alive)
        player.stop()
    assert isinstance(errors[0], ZeroDivisionError)
    assert stuck_notes(m for _, m in port.received) == set()
