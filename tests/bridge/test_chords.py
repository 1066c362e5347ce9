"""The corpus chord vocabulary and the snap that moves sampled chords onto it."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.chords import MAX_MOVE, ChordVocabulary
from bridge.codec import pitch_to_value
from bridge.constraints import parse_scale
from bridge.errors import BridgeError

# Pitch-class sets, bit c for class c: C-E-G, G-B-D, A-C-E, C-E-flat-G-flat.
C_MAJOR, G_MAJOR, A_MINOR, C_DIMINISHED = 0b10010001, 0b100010000100, 0b1000010001, 0b1001001
ALL_CLASSES = frozenset(range(12))
SCALE_RUN = [60, 62, 64, 65, 67, 69, 71, 72]  # single notes after the chord under test: the piece is in C major


def _segment(chords: list[list[int]]) -> np.ndarray:
    """Unscaled log-pitch features ``(L, 3)``: each chord's notes start together, one beat apart."""
    rows = [(p, 1.0, 1.0 if j == 0 and i else 0.0) for i, chord in enumerate(chords) for j, p in enumerate(chord)]
    features = np.array(rows, dtype=np.float64)
    features[:, 0] = pitch_to_value(features[:, 0].astype(np.int64), "log")
    return features


def _snap_in_c(vocabulary: ChordVocabulary, chord: list[int], allowed: frozenset[int] = ALL_CLASSES) -> list[int]:
    """The chord snapped within a C-major piece (the chord at beat 0, then a scale run of single notes)."""
    pitches = np.array(chord + SCALE_RUN)
    onsets = np.r_[np.zeros(len(chord)), np.arange(1, len(SCALE_RUN) + 1)]
    snapped = vocabulary.snap(pitches, onsets, allowed)
    assert list(snapped[len(chord) :]) == SCALE_RUN  # single notes never move
    assert np.abs(snapped - pitches).max() <= MAX_MOVE
    return list(snapped[: len(chord)])


def test_fit_counts_chords_above_the_relative_major_tonic_and_keeps_the_common_ones() -> None:
    """The same chords in G major count as in C: one vocabulary serves every key."""
    c_piece = [[48, 52, 55, 60]] * 5 + [[43, 55, 59, 62]] * 3 + [[53, 57, 60]] + [[45, 48, 52]]
    g_piece = [[p + 7 for p in chord] for chord in c_piece]
    vocabulary = ChordVocabulary.fit(np.stack([_segment(c_piece), _segment(g_piece)]), "log", cover=0.75)
    assert vocabulary is not None and vocabulary.sets == (C_MAJOR, G_MAJOR)  # F major, A minor: 10% each
    assert vocabulary.shares == (0.5, 0.3)
    melody = _segment([[60 + step] for step in range(10)])
    assert ChordVocabulary.fit(melody[None], "log") is None  # no two notes start together: nothing to snap


def test_a_vocabulary_round_trips_through_the_card_and_refuses_bad_sets() -> None:
    vocabulary = ChordVocabulary((C_MAJOR, G_MAJOR), (0.6, 0.4))
    assert vocabulary.to_dict() == {"sets": [[0, 4, 7], [2, 7, 11]], "shares": [0.6, 0.4]}
    assert ChordVocabulary.from_dict(vocabulary.to_dict()) == vocabulary
    with pytest.raises(BridgeError, match=r"0\.\.11"):
        ChordVocabulary.from_dict({"sets": [[0, 12]], "shares": [1.0]})
    with pytest.raises(BridgeError, match="chords must be"):
        ChordVocabulary.from_dict({"sets": [[0, 4, 7]]})
    with pytest.raises(BridgeError, match="distinct"):
        ChordVocabulary((C_MAJOR, C_MAJOR), (0.5, 0.5))


def test_a_clashing_chord_moves_to_the_corpus_chord_that_costs_the_least_movement() -> None:
    """C-D-G holds a second. G major needs C down to B (1 semitone); C major would need D to move 2
    and then lacks its E; A minor lacks its E likewise. So it becomes B-D-G."""
    vocabulary = ChordVocabulary((C_MAJOR, G_MAJOR, A_MINOR), (0.5, 0.3, 0.2))
    assert _snap_in_c(vocabulary, [60, 62, 67]) == [59, 62, 67]


def test_chords_of_the_corpus_stay_and_so_do_chords_no_corpus_chord_is_near() -> None:
    vocabulary = ChordVocabulary((C_MAJOR, G_MAJOR, A_MINOR), (0.5, 0.3, 0.2))
    assert _snap_in_c(vocabulary, [45, 60, 64, 69]) == [45, 60, 64, 69]  # A minor
    assert _snap_in_c(vocabulary, [64, 67]) == [64, 67]  # two notes cannot make a three-note set
    assert _snap_in_c(vocabulary, [60, 61, 62, 63, 64]) == [60, 61, 62, 63, 64]  # a cluster


def test_the_more_common_chord_wins_a_tie_unless_its_classes_are_not_allowed() -> None:
    """C-E-flat-G is one semitone from both C major (E-flat up) and C diminished (G down)."""
    c_minor = [60, 63, 67]
    diminished_first = ChordVocabulary((C_DIMINISHED, C_MAJOR), (0.6, 0.4))
    major_first = ChordVocabulary((C_MAJOR, C_DIMINISHED), (0.6, 0.4))
    assert _snap_in_c(diminished_first, c_minor) == [60, 63, 66]
    assert _snap_in_c(major_first, c_minor) == [60, 64, 67]
    assert _snap_in_c(diminished_first, c_minor, parse_scale("C major")) == [60, 64, 67]  # a named key holds


def test_chords_among_the_first_kept_notes_stay_as_the_user_played_them() -> None:
    """A prompt's C-D-G stays; the same chord after it moves."""
    vocabulary = ChordVocabulary((C_MAJOR, G_MAJOR), (0.6, 0.4))
    pitches = np.array([60, 62, 67, *SCALE_RUN, 60, 62, 67])
    onsets = np.r_[0.0, 0.0, 0.0, np.arange(1, len(SCALE_RUN) + 1), 10.0, 10.0, 10.0]
    snapped = vocabulary.snap(pitches, onsets, kept=3)
    assert list(snapped[:3]) == [60, 62, 67] and list(snapped[-3:]) == [59, 62, 67]
