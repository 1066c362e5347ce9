"""Where the daemon's phrases come from: the small interface between the real-time side and the model.

A :class:`PhraseSource` turns a :class:`PhraseRequest` into a :class:`Phrase` (notes in beats
from the phrase start) before a deadline. :class:`ModelPhraseSource` runs the diffusion model
(samplers, constraints, continuation, decoding), choosing the most denoising steps that fit
before the deadline; :class:`ArpeggioSource` needs no model (``dmc serve --model none``) and
lets a musician check ports, clock and triggers in their DAW before a model is installed.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bridge.codec import Note, merge_unisons
from bridge.constraints import ACCIDENTALS, AUTO_KEY, NOTE_NAMES, PitchConstraint, parse_scale
from bridge.continuation import prompt_features, prompt_phase
from bridge.deadline import StepBudget
from bridge.decoding import DecodeOptions, decode_one, fold_into_range
from bridge.errors import BridgeError
from bridge.home_key import move_prompt, output_offset
from bridge.runtime import Denoiser, set_guidance
from bridge.samplers import make_sampler, sample
from bridge.styles import MIX, check_style, pick_style

SEED_RANGE = 2**32


@dataclass(frozen=True)
class PhraseRequest:
    """What to write. ``low``/``high``: range of the played notes (after ``transpose``).

    ``prime`` (beats from its own start, ``prime_beats`` long) is continued when given.
    """

    length_beats: float = 8.0
    scale: str = "C major"
    low: int = 36
    high: int = 96
    steps: int = 20  # the most steps allowed
    min_steps: int = 4
    sampler: str = "dpm++"
    seed: int | None = None
    grid: float | None = 0.25
    corpus_lengths: bool = True  # durations on the grid weighed by the model's corpus (bridge.note_lengths)
    corpus_chords: bool = True  # chords snapped to the nearest of the model's corpus (bridge.chords)
    onsets: str = "echo"  # onset gaps on the grid: one of bridge.onset_gaps.ONSET_CHOICES
    velocity: int = 90
    channel: int = 0
    program: int = 0
    transpose: int = 0
    prime: tuple[Note, ...] = ()
    prime_beats: float = 0.0
    style: str = MIX  # a conditioned model's style, "mix" (each phrase draws one) or "none" (bridge.styles)


@dataclass(frozen=True)
class PhraseInfo:
    """How a phrase was made (status line and the take's parameters)."""

    steps: int
    generation_ms: float
    seed: int
    source: str
    style: str | None = None  # the style it was written in (a styled model; "mix" draws one per phrase)


@dataclass(frozen=True)
class Phrase:
    """Notes in beats from the phrase start (onsets in ``[0, length_beats)``), and how they were made."""

    notes: tuple[Note, ...]
    length_beats: float
    info: PhraseInfo
    request: PhraseRequest


class PhraseSource(Protocol):
    """Anything that writes phrases: the model, the arpeggio demo, a test's scripted source."""

    name: str
    device: str
    guidance: float  # the autoguidance weight now used (0: none)

    def generate(self, request: PhraseRequest, deadline: float | None) -> Phrase:
        """A phrase, ready by ``deadline`` (``time.monotonic()``) when possible; None: no hurry."""
        ...

    def seconds_for(self, steps: int) -> float:
        """A cautious estimate of how long ``generate`` takes with ``steps`` steps."""
        ...

    def set_guidance(self, weight: float | None) -> None:
        """Autoguide from the next phrase at ``weight`` (None: the model card's, 0: off); BridgeError if it cannot."""
        ...

    def check_style(self, style: str) -> None:
        """BridgeError, naming the styles there are, for a style this source cannot write."""
        ...


def resolve_seed(seed: int | None) -> int:
    """The seed itself, or a fresh random one (kept in the phrase's info, so a take can be redone)."""
    return int(np.random.default_rng().integers(SEED_RANGE)) if seed is None else seed


def fit_to_length(notes: list[Note], length_beats: float) -> tuple[Note, ...]:
    """Notes that start inside the phrase, with durations cut at its end."""
    kept = [n for n in notes if 0.0 <= n.onset < length_beats]
    return tuple(sorted(dataclasses.replace(n, duration=min(n.duration, length_beats - n.onset)) for n in kept))


class ModelPhraseSource:
    """The diffusion model behind the daemon: one sample per phrase, continuing ``prime`` if any."""

    device: str

    def __init__(self, denoiser: Denoiser, budget: StepBudget | None = None) -> None:
        self.denoiser = denoiser
        self.budget = budget or StepBudget()
        self.name = denoiser.card.name
        self.device = denoiser.device
        self._lock = threading.Lock()  # one phrase at a time; a guidance change waits for it

    def warm_up(self) -> None:
        """Pay onnxruntime's first-run cost now, then measure the fixed cost and the step time."""
        with self._lock:
            self._measure()

    @property
    def guidance(self) -> float:
        return self.denoiser.guidance  # 0 unless a guide is loaded (runtime.set_guidance)

    def set_guidance(self, weight: float | None) -> None:
        """Between phrases: a guided step costs more, so the step time is measured again."""
        with self._lock:
            set_guidance(self.denoiser, weight)
            self.budget = StepBudget()
            self._measure()

    def check_style(self, style: str) -> None:
        check_style(self.denoiser.card.styles, style)

    def _measure(self) -> None:
        """One step and eight steps, timed apart: the difference is seven steps' worth."""
        request = PhraseRequest(grid=None, seed=0)
        self._notes(request, 1)  # the first run is slow (allocations, kernel choice): not measured
        one = self._timed(request, 1)
        eight = self._timed(request, 8)
        per_step = max((eight - one) / 7, 1e-6)
        self.budget.observe_fixed(max(one - per_step, 0.0))
        self.budget.observe(8, eight)

    def _timed(self, request: PhraseRequest, steps: int) -> float:
        started = time.monotonic()
        self._notes(request, steps)
        return time.monotonic() - started

    def seconds_for(self, steps: int) -> float:
        return self.budget.seconds_for(steps)

    def generate(self, request: PhraseRequest, deadline: float | None) -> Phrase:
        with self._lock:
            started = time.monotonic()
            steps = request.steps
            if deadline is not None:
                steps = self.budget.steps_for(deadline - started, request.min_steps, request.steps) or request.min_steps
            seed = resolve_seed(request.seed)
            notes = self._notes(dataclasses.replace(request, seed=seed), steps)
            seconds = time.monotonic() - started
            self.budget.observe(steps, seconds)
            style = self.denoiser.style_name
        info = PhraseInfo(steps, seconds * 1000.0, seed, self.name, style)
        return Phrase(fit_to_length(notes, request.length_beats), request.length_beats, info, request)

    def _notes(self, request: PhraseRequest, steps: int) -> list[Note]:
        """Sample, constrain, decode to one keyboard's notes; only the continuation's new notes when
        there is a prime."""
        seed = request.seed
        card = self.denoiser.card
        style = pick_style(card.styles, request.style, seed)
        if style is not None:
            self.denoiser.set_style(style)
        prompt = prompt_features(request.prime, card.stats.encoding, card.length // 2) if request.prime else None
        start = prompt_phase(request.prime, card.length // 2)  # where in the beat the kept prime starts
        constraint = self._constraint(request)
        offset = output_offset(card.stats, constraint, prompt)  # home-key models: from C major / A minor
        in_model_key = constraint.moved(-offset)
        scaled = sample(
            self.denoiser,
            make_sampler(request.sampler, card),
            1,
            steps,
            seed,
            constraint=in_model_key,
            prompt=move_prompt(prompt, -offset, card.stats.encoding),
            onset_start=start,
        )[0]
        kept = 0 if prompt is None else len(prompt)
        decode_options = self._decode_options(request, offset, in_model_key.pitch_classes, kept)
        notes = decode_one(scaled, card.stats, decode_options, rng=np.random.default_rng(seed))
        return merge_unisons(_after_prime(notes, len(prompt), request) if prompt is not None else notes)

    @staticmethod
    def _constraint(request: PhraseRequest) -> PitchConstraint:
        """The scale, the range ``low..high`` of played notes moved back by the transposition, the rhythm grid."""
        low, high = (min(max(p - request.transpose, 0), 127) for p in (request.low, request.high))
        return PitchConstraint.parse(request.scale, low, high, grid=request.grid, corpus_lengths=request.corpus_lengths,
                                     onsets=request.onsets)  # fmt: skip

    def _decode_options(
        self, request: PhraseRequest, offset: int, classes: frozenset[int], prompt_notes: int
    ) -> DecodeOptions:
        """The request's decoding, moved ``offset`` more semitones (a home-key model's move to the key asked);
        chords snap within the sampler's pitch ``classes``, the prime's ``prompt_notes`` left as played."""
        return DecodeOptions(
            grid=request.grid,
            transpose=request.transpose + offset,
            low=request.low,
            high=request.high,
            velocity=request.velocity,
            channel=request.channel,
            program=request.program,
            chords=self.denoiser.card.chords if request.corpus_chords else None,
            chord_classes=classes,
            prompt_notes=prompt_notes,
        )


def _after_prime(notes: list[Note], k: int, request: PhraseRequest) -> list[Note]:
    """The new notes of a continuation, in beats from the end of the prime.

    The decoded piece (in the model's order, onsets never decreasing) starts with the prime's
    last k notes, the first of them at 0 where it sat at ``tail[0].onset`` in the prime. A new
    note that would start before the prime's end moves the new notes later together.
    """
    new = notes[k:]
    if not new:
        return []
    tail = sorted(request.prime)[-k:]
    shift = tail[0].onset - request.prime_beats
    shift += max(0.0, -(new[0].onset + shift))
    return [dataclasses.replace(n, onset=n.onset + shift) for n in new]


class ArpeggioSource:
    """A model-free demo: arpeggios through I-vi-IV-V in the requested scale, a bar per chord.

    Continues from the prime's length (the next chords), varies the pattern by seed.
    """

    name = "arpeggio (no model)"
    device = "none"
    guidance = 0.0

    def seconds_for(self, steps: int) -> float:
        return 0.001

    def set_guidance(self, weight: float | None) -> None:
        if weight:
            raise BridgeError("the arpeggio demo (--model none) has no model to guide; set guidance=none")

    def check_style(self, style: str) -> None:
        check_style(None, style)

    def generate(self, request: PhraseRequest, deadline: float | None) -> Phrase:
        started = time.monotonic()
        seed = resolve_seed(request.seed)
        scale = "C major" if request.scale == AUTO_KEY else request.scale  # no model to lean toward a key
        tonic = _tonic(scale)
        intervals = sorted((pc - tonic) % 12 for pc in parse_scale(scale))
        base = request.low + (tonic - request.low) % 12
        step = request.grid or 0.25
        pattern = np.random.default_rng(seed).permutation([0, 2, 4, 7])  # a triad and its octave, in degrees
        first_chord = int(request.prime_beats // 4)
        notes = []
        for i in range(math.ceil(request.length_beats / step)):
            onset = i * step
            degree = (0, 5, 3, 4)[(first_chord + int(onset // 4)) % 4] + int(pattern[i % 4])
            pitch = base + 12 * (degree // len(intervals)) + intervals[degree % len(intervals)] + request.transpose
            notes.append(Note(onset, pitch, step * 0.9, request.velocity, request.channel, request.program))
        pitches = fold_into_range(np.array([n.pitch for n in notes]), request.low, request.high)
        notes = [dataclasses.replace(n, pitch=int(p)) for n, p in zip(notes, pitches, strict=True)]
        info = PhraseInfo(0, (time.monotonic() - started) * 1000.0, seed, self.name)
        return Phrase(fit_to_length(notes, request.length_beats), request.length_beats, info, request)


def _tonic(scale: str) -> int:
    """The pitch class of the scale's root ("F# minor" -> 6); the lowest class for "0,2,4,7,9"."""
    words = scale.split()
    if words and words[0][0].lower() in NOTE_NAMES:
        return (NOTE_NAMES[words[0][0].lower()] + ACCIDENTALS.get(words[0][1:], 0)) % 12
    return min(parse_scale(scale))
