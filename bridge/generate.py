"""Offline generation: N pieces as ``sample-1.mid`` ... plus ``samples.json`` to make them again.

Each piece has its own seed (``seed + i``), recorded in ``samples.json``, so any one file can be
regenerated alone and identically (``dmc generate OUT --from samples.json``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.atomic import write_bytes
from bridge.chords import CHORD_CHOICES
from bridge.codec import Note, merge_unisons
from bridge.constraints import PitchConstraint
from bridge.continuation import continue_long, prompt_features, prompt_phase
from bridge.decoding import DecodeOptions, decode_one
from bridge.errors import BridgeError
from bridge.home_key import move_prompt, output_offset
from bridge.midifile import read_midi, write_midi
from bridge.note_lengths import NOTE_LENGTH_CHOICES
from bridge.onset_gaps import ONSET_CHOICES
from bridge.progress import progress
from bridge.runtime import PRECISIONS, Denoiser, load_model
from bridge.samplers import SAMPLERS, Progress, make_sampler
from bridge.styles import MIX, check_style, pick_style

log = logging.getLogger(__name__)
SAMPLES_FILE = "samples.json"
SAMPLES_VERSION = 1


@dataclass(frozen=True)
class GenerateOptions:
    """Everything that decides the output; stored in ``samples.json`` (seed resolved)."""

    n: int = 8
    model: str | None = None
    sampler: str = "dpm++"
    steps: int | None = None  # None: the sampler's default (DDPM: all T; DDIM 50; DPM++ 20)
    seed: int | None = None
    prompt: str | None = None
    notes: int | None = None  # None: the model's segment length L
    bpm: float = 120.0
    key: str | None = "auto"  # "auto": each piece keeps to the key it leans toward; None: all 12 pitch classes
    low: int = 21
    high: int = 108
    grid: float | None = 0.25  # beats; kept during denoising too; None: free timing
    note_lengths: str = "corpus"  # corpus: durations on the grid weighed by the model's corpus; grid: nearest
    chords: str = "corpus"  # corpus: each chord snapped to the nearest the model's corpus struck; model: its own
    onsets: str = "echo"  # onset gaps on the grid: echo, corpus or grid (bridge.onset_gaps.ONSET_CHOICES)
    transpose: int = 0
    velocity: int = 80
    program: int = 0
    channel: int = 0
    device: str = "auto"
    precision: str = "auto"  # see bridge.runtime.PRECISIONS
    guidance: float | None = None  # autoguidance weight; None: the card's (see bridge.guidance)
    style: str = MIX  # a style name of a conditioned model, "mix" (each piece draws one) or "none" (bridge.styles)

    def __post_init__(self) -> None:
        checks = {
            "n": self.n >= 1, "sampler": self.sampler in SAMPLERS, "steps": self.steps is None or self.steps >= 1,
            "notes": self.notes is None or self.notes >= 1, "bpm": 1.0 <= self.bpm <= 999.0,
            "low": 0 <= self.low <= self.high <= 127, "velocity": 1 <= self.velocity <= 127,
            "program": 0 <= self.program <= 127, "channel": 0 <= self.channel <= 15,
            "precision": self.precision in PRECISIONS, "note_lengths": self.note_lengths in NOTE_LENGTH_CHOICES,
            "chords": self.chords in CHORD_CHOICES, "onsets": self.onsets in ONSET_CHOICES,
        }  # fmt: skip
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise BridgeError(f"invalid generate option {bad[0]}={getattr(self, bad[0])!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerateOptions:
        """Options from ``samples.json``; an unknown key is an error that names it."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise BridgeError(f"unknown generate option(s) {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class ModelIdentity:
    """The checksums of the graphs that made a record's pieces: the model's, and its guide's if guided."""

    sha256: str
    guide_sha256: str | None = None

    @classmethod
    def of(cls, denoiser: Denoiser) -> ModelIdentity:
        return cls(denoiser.card.sha256, None if denoiser.guide is None else denoiser.guide.card.sha256)


def generate(
    options: GenerateOptions,
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    expect: ModelIdentity | None = None,
) -> list[Path]:
    """Write ``options.n`` pieces and ``samples.json`` into ``out_dir``; returns the .mid paths.

    ``expect``: refuse a model (or guide) other than the one a record was made with.
    """
    out = _prepare(Path(out_dir), force)
    options = dataclasses.replace(options, seed=_resolve_seed(options.seed))
    denoiser = load_model(options.model, options.device, precision=options.precision, guidance=options.guidance)
    if expect is not None and expect != ModelIdentity.of(denoiser):
        which = "model" if expect.sha256 != denoiser.card.sha256 else "model's guide"
        raise BridgeError(
            f"the {which} in {denoiser.model_dir} is not the one these samples were made with (its checksum "
            "differs); pass --model with the original model folder"
        )
    options = dataclasses.replace(options, guidance=denoiser.guidance)  # the record names the weight used
    check_style(denoiser.card.styles, options.style)  # a bad style is refused before anything is written
    if options.chords == "corpus" and denoiser.card.chords is None:
        log.info("%s's card has no corpus chords (exported before them): its own are kept", denoiser.card.name)
    if options.onsets != "grid" and denoiser.card.onset_gaps is None:
        log.info("%s's card has no corpus onset gaps (exported before them): the grid rounds them", denoiser.card.name)
    prompt, prompt_start = _prompt(options, denoiser)
    paths, files = [], []
    with progress(options.n, "composing") as advance:
        for i in range(options.n):
            seed = options.seed + i  # type: ignore[operator]
            notes = compose(denoiser, options, seed, prompt, lambda done, total: advance(0, step=f"{done}/{total}"),
                            prompt_start=prompt_start)  # fmt: skip
            path = out / f"sample-{i + 1}.mid"
            write_midi(path, notes, bpm=options.bpm)
            paths.append(path)
            style = {"style": denoiser.style_name} if denoiser.style_name else {}  # the style it was written in
            files.append({"file": path.name, "seed": seed, "notes": len(notes), **style})
            advance()
    _write_record(out, options, denoiser, files)
    return paths


def compose(
    denoiser: Denoiser,
    options: GenerateOptions,
    seed: int,
    prompt: np.ndarray | None,
    on_step: Progress | None = None,
    *,
    prompt_start: float = 0.0,
) -> list[Note]:
    """One piece in its style: sample (continuing the prompt, its first note ``prompt_start`` beats into a
    beat, sliding windows past L), then decode to notes one keyboard can play (a file must sound as the
    port plays it: no pitch struck twice at once)."""
    card = denoiser.card
    style = pick_style(card.styles, options.style, seed)
    if style is not None:
        denoiser.set_style(style)
    constraint = _constraint(options)
    offset = output_offset(card.stats, constraint, prompt)  # home-key models: from C major / A minor
    in_model_key = constraint.moved(-offset)
    scaled = continue_long(
        denoiser, make_sampler(options.sampler, card), 1, options.notes or card.length, options.steps, seed,
        prompt=move_prompt(prompt, -offset, card.stats.encoding), constraint=in_model_key, progress=on_step,
        onset_start=prompt_start,
    )[0]  # fmt: skip
    decode_options = DecodeOptions(
        grid=options.grid, transpose=options.transpose + offset, low=options.low, high=options.high,
        velocity=options.velocity, channel=options.channel, program=options.program,
        chords=card.chords if options.chords == "corpus" else None,
        chord_classes=in_model_key.pitch_classes, prompt_notes=0 if prompt is None else len(prompt),
    )  # fmt: skip
    return merge_unisons(decode_one(scaled, card.stats, decode_options, rng=np.random.default_rng(seed)))


def _constraint(options: GenerateOptions) -> PitchConstraint:
    return PitchConstraint.parse(
        options.key, options.low, options.high, grid=options.grid, corpus_lengths=options.note_lengths == "corpus",
        onsets=options.onsets,
    )  # fmt: skip


def read_record(record: str | os.PathLike[str]) -> tuple[GenerateOptions, ModelIdentity]:
    """The options and model checksums of a ``samples.json``, to make its pieces again identically."""
    try:
        data = json.loads(Path(record).read_text(encoding="utf-8"))
        options = {"guidance": 0.0, "chords": "model", "onsets": "grid"} | data["options"]  # older: without these
        guide = data.get("guide")
        identity = ModelIdentity(str(data["model"]["sha256"]), None if guide is None else str(guide["sha256"]))
        return GenerateOptions.from_dict(options), identity
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BridgeError(f"cannot read {record} as a {SAMPLES_FILE}: {exc}") from exc


def _prepare(out: Path, force: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise BridgeError(f"{out} is a file; give a folder for the generated pieces")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BridgeError(f"{out} is not empty; choose another folder or add --force to write into it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _resolve_seed(seed: int | None) -> int:
    return int(np.random.default_rng().integers(2**31)) if seed is None else seed


def _prompt(options: GenerateOptions, denoiser: Denoiser) -> tuple[np.ndarray | None, float]:
    """The prompt file's last notes (up to L - 1, so the model writes at least one), unscaled ``(k, 3)``,
    and where in the beat the first of them falls."""
    if options.prompt is None:
        return None, 0.0
    notes = read_midi(options.prompt, families=("all",), mode="merge").notes
    if not notes:
        raise BridgeError(f"{options.prompt} has no notes to continue (drums are ignored)")
    kept = denoiser.card.length - 1
    return prompt_features(notes, denoiser.card.stats.encoding, kept), prompt_phase(notes, kept)


def _write_record(out: Path, options: GenerateOptions, denoiser: Denoiser, files: list[dict[str, Any]]) -> None:
    guide = denoiser.guide
    record = {
        "version": SAMPLES_VERSION,
        "model": {"name": denoiser.card.name, "path": str(denoiser.model_dir), "sha256": denoiser.card.sha256},
        "guide": None if guide is None else {"name": guide.card.name, "sha256": guide.card.sha256},
        "device": denoiser.device,
        "precision": denoiser.precision,
        "options": dataclasses.asdict(options),
        "files": files,
    }
    write_bytes(out / SAMPLES_FILE, (json.dumps(record, indent=2) + "\n").encode())
