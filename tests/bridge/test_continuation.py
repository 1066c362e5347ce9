"""Continuation: the prompt is held at every step and kept exactly; long pieces have the asked length."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from bridge import continuation
from bridge.codec import Note, notes_to_features
from bridge.constraints import PitchConstraint, Projection
from bridge.continuation import continue_long, prompt_features, prompt_phase
from bridge.decoding import DecodeOptions, decode
from bridge.errors import BridgeError
from bridge.runtime import Denoiser
from bridge.samplers import make_sampler, sample

PROMPT_NOTES = [
    Note(0.0, 60, 1.0), Note(0.0, 64, 1.0), Note(1.0, 67, 0.5), Note(1.5, 72, 0.25), Note(2.0, 71, 2.0)
]
EXACT = DecodeOptions(min_duration=1e-3, min_delta=0.0)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm++"])
def test_a_continuation_keeps_the_prompt_notes(tiny_denoiser: Denoiser, name: str) -> None:
    prompt = prompt_features(PROMPT_NOTES, "log", 16)
    out = sample(tiny_denoiser, make_sampler(name, tiny_denoiser.card), 3, None, seed=0, prompt=prompt)
    np.testing.assert_array_equal(out[:, :5], np.broadcast_to(tiny_denoiser.card.stats.scale(prompt), (3, 5, 3)))
    for notes in decode(out, tiny_denoiser.card.stats, EXACT):
        assert len(notes) == 16
        for got, want in zip(notes[:5], PROMPT_NOTES, strict=True):
            assert got.pitch == want.pitch
            assert got.onset == pytest.approx(want.onset, abs=1e-5)
            assert got.duration == pytest.approx(want.duration, abs=1e-5)


class _PitchGain3:
    """The tiny network behind a card whose pitch spans [-3, 3]: only the scaling around it changes."""

    def __init__(self, denoiser: Denoiser) -> None:
        self._denoiser = denoiser
        stats = dataclasses.replace(denoiser.card.stats, pitch_gain=3.0)
        self.card = dataclasses.replace(denoiser.card, stats=stats)

    def __call__(self, sample: np.ndarray, timestep: np.ndarray) -> np.ndarray:
        return self._denoiser(sample, timestep)


def test_a_prompt_beyond_unit_range_is_kept_under_a_pitch_gain(tiny_denoiser: Denoiser) -> None:
    denoiser = _PitchGain3(tiny_denoiser)
    wide = [Note(0.0, 40, 1.0), Note(0.0, 88, 1.0), Note(1.0, 62, 1.0)]  # low and high in the model's range
    prompt = prompt_features(wide, "log", 16)
    assert np.abs(denoiser.card.stats.scale(prompt)[:2, 0]).min() > 1.0  # clipping to [-1, 1] would move them
    out = sample(denoiser, make_sampler("dpm++", denoiser.card), 2, None, seed=0, prompt=prompt)
    for notes in decode(out, denoiser.card.stats, EXACT):
        assert [n.pitch for n in notes[:3]] == [40, 88, 62]


def test_the_prompt_is_noised_to_each_steps_level(tiny_denoiser: Denoiser) -> None:
    """Before each network run the first k positions are sqrt(ab) prompt + sqrt(1 - ab) eps, one eps per run."""
    seen: list[tuple[np.ndarray, int]] = []

    class Spy:
        card = tiny_denoiser.card

        def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
            seen.append((x[:, 0, :5].copy(), int(t[0])))
            return tiny_denoiser(x, t)

    prompt = prompt_features(PROMPT_NOTES, "log", 16)
    sample(Spy(), make_sampler("dpm++", Spy.card), 2, 10, seed=1, prompt=prompt)
    scaled = tiny_denoiser.card.stats.scale(prompt)
    noises = []
    for x, t in seen:
        ab = tiny_denoiser.card.schedule.alpha_bars[t]
        noises.append((x - np.sqrt(ab) * scaled) / np.sqrt(1 - ab))
    for noise in noises[1:]:
        np.testing.assert_allclose(noise, noises[0], atol=1e-3)
    assert not np.allclose(noises[0][0], noises[0][1])  # each variation has its own


def test_a_prompt_per_variation(tiny_denoiser: Denoiser) -> None:
    prompts = np.stack([prompt_features(PROMPT_NOTES, "log", 3), prompt_features(PROMPT_NOTES[1:], "log", 3)])
    out = sample(tiny_denoiser, make_sampler("ddim", tiny_denoiser.card), 2, 10, seed=2, prompt=prompts)
    np.testing.assert_array_equal(out[:, :3], tiny_denoiser.card.stats.scale(prompts))


def test_an_empty_prompt_is_no_prompt(tiny_denoiser: Denoiser) -> None:
    sampler = make_sampler("ddim", tiny_denoiser.card, eta=1.0)
    plain = sample(tiny_denoiser, sampler, 2, 10, seed=3)
    empty = sample(tiny_denoiser, sampler, 2, 10, seed=3, prompt=np.zeros((0, 3)))
    np.testing.assert_array_equal(plain, empty)


@pytest.mark.parametrize("shape", [(16, 3), (5, 2), (3, 5, 3), (5,)])
def test_refuses_a_prompt_of_the_wrong_shape(tiny_denoiser: Denoiser, shape: tuple[int, ...]) -> None:
    with pytest.raises(BridgeError, match="a prompt must be features of shape"):
        sample(tiny_denoiser, make_sampler("ddim", tiny_denoiser.card), 2, 5, prompt=np.ones(shape))


def test_prompt_features_keeps_the_last_notes_from_time_zero() -> None:
    expected = notes_to_features(PROMPT_NOTES)[-3:].copy()
    expected[0, 2] = 0.0
    np.testing.assert_array_equal(prompt_features(PROMPT_NOTES, "log", 3), expected)
    assert prompt_features(PROMPT_NOTES, "log", 0).shape == (0, 3)
    assert prompt_features([], "log", 8).shape == (0, 3)


def test_prompt_phase_is_where_the_first_kept_note_falls_in_the_beat() -> None:
    assert prompt_phase(PROMPT_NOTES, 2) == 0.5 and prompt_phase(PROMPT_NOTES, 1) == 0.0  # notes at 1.5, then 2.0
    assert prompt_phase(PROMPT_NOTES, 16) == 0.0 and prompt_phase([], 4) == 0.0


def test_the_projection_sees_the_prompt_as_it_is_and_how_long_it_is(
    tiny_denoiser: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key and the beat run on through the prompt: each step's projection gets the prompt's notes
    exactly (not the network's reading of them), and the onset weighing is told to keep their gaps."""
    prompt = prompt_features(PROMPT_NOTES, "log", 16)
    seen: list[np.ndarray] = []
    make = PitchConstraint.projection

    class Watched:
        """The run's projection, noting the prompt's positions of each x0 it gets."""

        def __init__(self, projection: Projection) -> None:
            assert projection.time_grid is not None and projection.time_grid.held == len(PROMPT_NOTES)
            self.projection = projection

        def __call__(self, x: np.ndarray) -> np.ndarray:
            seen.append(x[:, :5].copy())
            return self.projection(x)

        def finish(self, x: np.ndarray) -> np.ndarray:
            seen.append(x[:, :5].copy())
            return self.projection.finish(x)

    monkeypatch.setattr(PitchConstraint, "projection", lambda *args, **kwargs: Watched(make(*args, **kwargs)))
    out = sample(tiny_denoiser, make_sampler("dpm++", tiny_denoiser.card), 2, 6, seed=0, prompt=prompt,
                 constraint=PitchConstraint(grid=0.25))  # fmt: skip
    assert len(seen) == 7  # six steps and the final snap
    for x in seen:
        np.testing.assert_allclose(x, np.broadcast_to(out[:, :5], x.shape), atol=1e-6)


def test_each_window_starts_where_in_the_beat_its_first_note_falls(
    tiny_denoiser: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window continues from the previous one's note ``hop``: the corpus onset gaps must count the beat
    from that note's place in the piece, not restart it there."""
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    def recording(*args: object, onset_start: np.ndarray, **kwargs: object) -> np.ndarray:
        out = sample(*args, onset_start=onset_start, **kwargs)  # type: ignore[arg-type]
        calls.append((np.array(onset_start), out))
        return out

    monkeypatch.setattr(continuation, "sample", recording)
    length, hop = tiny_denoiser.card.length, 6
    continue_long(tiny_denoiser, make_sampler("dpm++", tiny_denoiser.card), 2, length + 2 * hop, 8, seed=4, hop=hop,
                  constraint=PitchConstraint(grid=0.25), onset_start=0.25)  # fmt: skip
    assert len(calls) == 3 and (calls[0][0] == 0.25).all()
    for (start, out), (following, _) in itertools.pairwise(calls):
        gaps = tiny_denoiser.card.stats.unscale(out)[:, 1 : hop + 1, 2]
        np.testing.assert_allclose(following, (start + gaps.sum(axis=1)) % 1.0)
    assert not np.allclose(calls[1][0], 0.25)  # the windows did move on


@pytest.mark.parametrize("total", [1, 15, 16, 17, 45])
def test_long_pieces_have_the_asked_length(tiny_denoiser: Denoiser, total: int) -> None:
    out = continue_long(tiny_denoiser, make_sampler("dpm++", tiny_denoiser.card), 2, total, 8, seed=4, hop=6)
    assert out.shape == (2, total, 3)


def test_a_long_piece_keeps_its_prompt_and_constraint_and_overlaps(tiny_denoiser: Denoiser) -> None:
    constraint = PitchConstraint.parse("A minor", 45, 81)
    prompt = prompt_features(PROMPT_NOTES, "log", 16)
    calls: list[tuple[int, int]] = []
    seen: list[np.ndarray] = []

    class Spy:
        card = tiny_denoiser.card

        def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
            seen.append(x.copy())
            return tiny_denoiser(x, t)

    sampler = make_sampler("dpm++", tiny_denoiser.card)
    out = continue_long(
        Spy(), sampler, 2, 40, 6, seed=5, prompt=prompt, hop=8, constraint=constraint,
        progress=lambda *a: calls.append(a),
    )
    again = continue_long(tiny_denoiser, sampler, 2, 40, 6, seed=5, prompt=prompt, hop=8, constraint=constraint)
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(out[:, :5], np.broadcast_to(tiny_denoiser.card.stats.scale(prompt), (2, 5, 3)))
    notes = decode(out, tiny_denoiser.card.stats)
    assert {n.pitch % 12 for piece in notes for n in piece} <= {9, 11, 0, 2, 4, 5, 7}
    assert calls[-1] == (4 * 6, 4 * 6)  # 16 + 3 windows of 8 new notes >= 40
    # The second window's last run sees the first window's last 8 notes at (almost) no noise, the
    # first of them starting the window (delta 0, scaled -1) as in a training segment.
    expected = out[:, 8:16].copy()
    expected[:, 0, 2] = -1.0
    np.testing.assert_allclose(seen[6 + 5][:, 0, :8], expected, atol=0.05)


def test_long_piece_refusals(tiny_denoiser: Denoiser) -> None:
    sampler = make_sampler("dpm++", tiny_denoiser.card)
    for hop in (0, 16):
        with pytest.raises(BridgeError, match="need 1 <= hop < 16"):
            continue_long(tiny_denoiser, sampler, 1, 40, 5, hop=hop)
