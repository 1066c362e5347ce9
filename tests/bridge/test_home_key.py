"""bridge.home_key: moving requests into C major / A minor for home-key models, and the music back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tiny_model import TINY_STATS

from bridge.constraints import KEY_FIT_SCALES, MODES, NOTE_NAMES, PitchConstraint, parse_scale
from bridge.home_key import home_shift, move_prompt, output_offset, scale_offset

HOME = dataclasses.replace(TINY_STATS, home_key=True)


def _scale_notes(tonic: int, mode: str) -> np.ndarray:
    """Two octaves of a key's fitting scale, tonic and fifth doubled, from MIDI 48 + tonic."""
    steps = np.array(KEY_FIT_SCALES[mode])
    return np.concatenate([48 + tonic + steps, 60 + tonic + steps, [48 + tonic, 55 + tonic] * 2])


@pytest.mark.parametrize("mode", ["major", "minor"])
@pytest.mark.parametrize("tonic", range(12))
def test_home_shift_brings_every_key_to_c_major_or_a_minor(tonic: int, mode: str) -> None:
    shift = home_shift(_scale_notes(tonic, mode))
    assert -6 <= shift <= 5
    assert (tonic + shift) % 12 == (0 if mode == "major" else 9)


@pytest.mark.parametrize("mode", ["major", "minor"])
@pytest.mark.parametrize("name", ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"])
def test_scale_offset_moves_the_home_key_onto_the_named_one(name: str, mode: str) -> None:
    offset = scale_offset(parse_scale(f"{name} {mode}"))
    home_tonic = 0 if mode == "major" else 9
    assert {(home_tonic + step + offset) % 12 for step in MODES[mode]} == parse_scale(f"{name} {mode}")
    assert (home_tonic + offset) % 12 == (NOTE_NAMES[name[0].lower()] + {"#": 1, "b": -1}.get(name[1:], 0)) % 12


def test_scale_offset_of_modes_and_class_lists() -> None:
    assert scale_offset(parse_scale("D minor")) == 5  # from A minor
    assert scale_offset(parse_scale("E dorian")) == 2  # D dorian shares C major's classes
    assert scale_offset(parse_scale("0,2,4,7,9")) == 0  # C major pentatonic: no move on a tie


def test_output_offset_comes_from_the_prompt_then_the_scale() -> None:
    d_minor = PitchConstraint.parse("D minor")
    e_major = np.stack([_scale_notes(4, "major").astype(float), np.ones(18), np.zeros(18)], axis=1)
    assert output_offset(TINY_STATS, d_minor, e_major) == 0  # not a home-key model: nothing moves
    assert output_offset(HOME, d_minor) == 5
    assert output_offset(HOME, d_minor, e_major) == 4  # the prompt's key wins
    assert output_offset(HOME, PitchConstraint.parse("auto")) == 0
    assert output_offset(HOME, PitchConstraint.parse(None)) == 0


def test_move_prompt_in_both_encodings_and_never_in_place() -> None:
    prompt = np.array([[60.0, 1.0, 0.0], [64.0, 0.5, 1.0]])
    moved = move_prompt(prompt, -4, "log")
    np.testing.assert_array_equal(moved, [[56.0, 1.0, 0.0], [60.0, 0.5, 1.0]])
    assert prompt[0, 0] == 60.0
    hz = move_prompt(np.array([[440.0, 1.0, 0.0]]), 12, "linear")
    np.testing.assert_allclose(hz, [[880.0, 1.0, 0.0]])
    assert move_prompt(None, 3, "log") is None


def test_constraint_moved_keeps_classes_and_range_valid() -> None:
    moved = PitchConstraint.parse("D minor", 50, 126).moved(-5)
    assert moved.pitch_classes == parse_scale("A minor") and (moved.low, moved.high) == (45, 121)
    assert PitchConstraint.parse(None, 0, 125).moved(4).high == 127
