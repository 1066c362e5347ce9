"""Continuation: the model writes what follows a prompt, and pieces longer than L notes.

:func:`bridge.samplers.sample` holds a prompt's k notes during denoising (``prompt=``): before
each network run the first k positions become the prompt noised to the current level, and
the result keeps them exactly. The causal model makes the prompt condition what follows.
Here: prompts from notes, and long pieces as sliding windows, each continuing the last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bridge.codec import Note, notes_to_features, sort_notes
from bridge.constraints import PitchConstraint
from bridge.errors import BridgeError
from bridge.samplers import DenoiserLike, Progress, Sampler, sample


def _kept(notes: Sequence[Note], max_notes: int) -> list[Note]:
    """What a prompt keeps: the last ``max_notes`` notes in the codec's order (none for ``max_notes <= 0``)."""
    return sort_notes(notes)[-max_notes:] if max_notes > 0 else []


def prompt_phase(notes: Sequence[Note], max_notes: int) -> float:
    """Where in the beat the first of the last ``max_notes`` notes falls (beats, 0 <= phase < 1): the
    features below start it at 0, and the corpus onset gaps must know the beat the prompt keeps."""
    kept = _kept(notes, max_notes)
    return float(kept[0].onset % 1.0) if kept else 0.0


def prompt_features(notes: Sequence[Note], encoding: str, max_notes: int) -> np.ndarray:
    """The last ``max_notes`` notes (a .mid file's, or what the daemon heard) as unscaled ``(k, 3)``.

    The first delta is 0, as at the start of every training segment.
    """
    return notes_to_features(_kept(notes, max_notes), encoding)


def continue_long(
    denoiser: DenoiserLike,
    sampler: Sampler,
    n: int,
    total_notes: int,
    steps: int | None = None,
    seed: int | np.random.Generator | None = None,
    *,
    prompt: np.ndarray | None = None,
    hop: int | None = None,
    constraint: PitchConstraint | None = None,
    project_during: bool = True,
    progress: Progress | None = None,
    onset_start: float = 0.0,
) -> np.ndarray:
    """``n`` pieces of ``total_notes`` notes -> scaled ``(n, total_notes, 3)``, decoded like :func:`sample`'s.

    The first window continues ``prompt`` (unscaled ``(k, 3)``, counted in ``total_notes``) if
    given, its first note ``onset_start`` beats into a beat (:func:`prompt_phase`); each next window
    takes the previous one's last ``L - hop`` notes as its prompt and adds ``hop`` new notes (default
    L / 2), and starts where in the beat that prompt's first note falls.
    """
    length = denoiser.card.length
    hop = length // 2 if hop is None else hop
    if not 1 <= hop < length or total_notes < 1:
        raise BridgeError(f"need 1 <= hop < {length} and at least one note, got hop {hop} and {total_notes} notes")
    rng = np.random.default_rng(seed)
    windows = 1 + math.ceil(max(total_notes - length, 0) / hop)
    parts: list[np.ndarray] = []
    start = np.full(n, onset_start)
    for window in range(windows):
        if window:
            previous = denoiser.card.stats.unscale(parts[-1])
            start = (start + previous[:, 1 : hop + 1, 2].sum(axis=1)) % 1.0  # the onset of its note ``hop``
            prompt = previous[:, hop:]  # (n, L - hop, 3): the previous window's end
            prompt[:, 0, 2] = 0.0
        out = sample(
            denoiser, sampler, n, steps, rng, prompt=prompt, constraint=constraint,
            project_during=project_during, progress=_part(progress, window, windows), onset_start=start,
        )
        parts.append(out)
    return np.concatenate([parts[0], *(p[:, length - hop :] for p in parts[1:])], axis=1)[:, :total_notes]


def _part(progress: Progress | None, window: int, windows: int) -> Progress | None:
    """Report one window's steps as part of the whole piece's."""
    if progress is None:
        return None
    return lambda done, total: progress(window * total + done, windows * total)
