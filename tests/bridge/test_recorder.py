"""Respond mode's recorder: notes in beats, taken after a pause or at once."""

from __future__ import annotations

import pytest
from rtmidi.midiconstants import CONTROL_CHANGE, NOTE_OFF, NOTE_ON

from bridge.recorder import PhraseRecorder


def test_notes_are_taken_in_beats_after_the_pause() -> None:
    rec = PhraseRecorder()
    rec.feed([NOTE_ON, 60, 90], 10.0)
    rec.feed([NOTE_ON | 1, 64, 80], 10.5)
    rec.feed([NOTE_OFF, 60, 0], 10.5)
    rec.feed([CONTROL_CHANGE, 1, 5], 10.6)  # not a note: ignored
    assert rec.take(10.7, bpm=120, gap_s=0.5) is None  # a note still held
    rec.feed([NOTE_ON | 1, 64, 0], 11.0)  # a note-on with velocity 0 ends it
    assert rec.take(11.2, bpm=120, gap_s=0.5) is None  # not paused long enough
    notes, beats = rec.take(11.6, bpm=120, gap_s=0.5)
    assert [(n.onset, n.pitch, n.duration, n.velocity, n.channel) for n in notes] == [
        pytest.approx((0.0, 60, 1.0, 90, 0)),
        pytest.approx((1.0, 64, 1.0, 80, 1)),
    ]
    assert beats == pytest.approx(2.0)
    assert rec.take(20.0, bpm=120, gap_s=0.5) is None  # taken once


def test_take_now_ignores_the_pause_and_clear_forgets() -> None:
    rec = PhraseRecorder()
    rec.feed([NOTE_ON, 60, 90], 1.0)
    rec.feed([NOTE_OFF, 60, 0], 1.25)
    assert rec.take(1.3, bpm=60, gap_s=None)[1] == pytest.approx(0.25)
    rec.feed([NOTE_ON, 62, 90], 2.0)
    rec.feed([NOTE_OFF, 62, 0], 2.1)
    rec.clear()
    assert rec.take(5.0, bpm=60, gap_s=None) is None
