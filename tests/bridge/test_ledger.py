"""The sounding-notes ledger: every note-on gets exactly one note-off, whoever stops the music."""

from __future__ import annotations

import threading

from midi_recording import MemoryOutput, stuck_notes, unpaired_note_ons
from rtmidi.midiconstants import ALL_NOTES_OFF, ALL_SOUND_OFF, CONTROL_CHANGE, NOTE_OFF, NOTE_ON

from bridge.ledger import NoteLedger


def messages(port: MemoryOutput) -> list[list[int]]:
    return [m for _, m in port.received]


def test_silence_ends_every_note_then_all_notes_off_per_used_channel() -> None:
    with MemoryOutput() as port:
        ledger = NoteLedger(port)
        ledger.note_on(0, 60, 100)
        ledger.note_on(9, 36, 90)
        assert ledger.silence() == 2
        assert ledger.sounding == frozenset()
        sent = messages(port)
    assert sent[2:] == [
        [NOTE_OFF | 0, 60, 0],
        [NOTE_OFF | 9, 36, 0],
        [CONTROL_CHANGE | 0, ALL_NOTES_OFF, 0],
        [CONTROL_CHANGE | 9, ALL_NOTES_OFF, 0],
    ]


def test_overlapping_same_pitch_retriggers_and_the_old_off_is_skipped() -> None:
    with MemoryOutput() as port:
        ledger = NoteLedger(port)
        ledger.note_on(0, 60, 100, owner="a")
        ledger.note_on(0, 60, 100, owner="b")  # ends a, starts b
        ledger.note_off(0, 60, owner="a")  # a's late off must not cut b
        assert ledger.sounding == {(0, 60)}
        ledger.note_off(0, 60, owner="b")
        sent = messages(port)
    assert sent == [[NOTE_ON, 60, 100], [NOTE_OFF, 60, 0], [NOTE_ON, 60, 100], [NOTE_OFF, 60, 0]]


def test_panic_sends_all_sound_off_and_all_notes_off_on_used_channels() -> None:
    with MemoryOutput() as port:
        port.note_on(3, 64, 1)
        port.panic()
        sent = messages(port)
    assert sent[1:] == [[CONTROL_CHANGE | 3, ALL_SOUND_OFF, 0], [CONTROL_CHANGE | 3, ALL_NOTES_OFF, 0]]


def test_concurrent_notes_and_silences_leave_nothing_unpaired() -> None:
    with MemoryOutput() as port:
        ledger = NoteLedger(port)
        done = threading.Event()

        def play() -> None:
            for i in range(3000):
                ledger.note_on(i % 16, 40 + i % 40, 90, owner=i)
                if i % 3:
                    ledger.note_off(i % 16, 40 + i % 40, owner=i)
            done.set()

        player = threading.Thread(target=play)
        player.start()
        while not done.is_set():
            ledger.silence()
        player.join(10)
        ledger.silence()
        sent = messages(port)
    assert unpaired_note_ons(sent) == set()
    assert stuck_notes(sent) == set()
