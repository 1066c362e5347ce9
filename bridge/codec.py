"""The note codec: note events <-> the seed's per-note features <-> scaled segments.

A note becomes three features (DESIGN.md, "The representation"):
``pitch`` as frequency (semitones above MIDI 0 for the ``log`` encoding, Hz for ``linear``),
``duration`` in beats, and ``delta`` = onset minus the previous note's onset, in beats
(0 inside a chord). Notes are ordered by onset, then pitch. Feature arrays are ``(n, 3)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bridge.errors import BridgeError

FEATURES = ("pitch", "duration", "delta")
PITCH_ENCODINGS = ("log", "linear")
TIME_ENCODINGS = ("linear", "log")
PITCH_GAIN_RANGE = (0.1, 10.0)  # FeatureStats.pitch_gain: beyond it pitch is squeezed or spread past use
A4_HZ = 440.0
# Beats added before the log of a time feature: a chord's gap of 0 stays finite and two octaves
# below a 16th note, so the common note values (1/4, 1/2, 1, 2 beats) sit evenly apart.
LOG_TIME_OFFSET = 1.0 / 16.0


@dataclass(frozen=True, order=True)
class Note:
    """One note event; times in beats (quarter notes), so tempo stays a playback choice."""

    onset: float
    pitch: int
    duration: float
    velocity: int = 80
    channel: int = 0
    program: int = 0


def sort_notes(notes: Iterable[Note]) -> list[Note]:
    """The codec's order: by onset, then pitch (then the rest, for a stable total order)."""
    return sorted(notes)


def merge_unisons(notes: Iterable[Note]) -> list[Note]:
    """The notes as one keyboard plays them, in codec order: a pitch struck twice at one onset sounds
    once (the longer note stays), and striking a sounding pitch again ends it there.

    Merged parts double voices (a violin on the soprano line, a viola in unison with the cello),
    and no keyboard or MIDI channel can sound one pitch twice: a DAW shows such notes stacked, and
    a synth cuts the longer one at the shorter one's note-off.
    """
    longest: dict[tuple[float, int], Note] = {}
    for n in notes:
        kept = longest.get((n.onset, n.pitch))
        if kept is None or n.duration > kept.duration:
            longest[n.onset, n.pitch] = n
    out = sort_notes(longest.values())
    next_onset: dict[int, float] = {}
    for i in reversed(range(len(out))):
        n = out[i]
        if n.pitch in next_onset and next_onset[n.pitch] < n.onset + n.duration:
            out[i] = replace(n, duration=next_onset[n.pitch] - n.onset)
        next_onset[n.pitch] = n.onset
    return out


def pitch_to_value(pitch: np.ndarray | float, encoding: str = "log") -> np.ndarray:
    """MIDI pitch -> pitch feature: semitones (``log``) or Hz (``linear``, the seed's)."""
    p = np.asarray(pitch, dtype=np.float64)
    if encoding == "log":
        return p
    if encoding == "linear":
        return A4_HZ * 2.0 ** ((p - 69.0) / 12.0)
    raise BridgeError(f"pitch encoding {encoding!r} is unknown; use one of {PITCH_ENCODINGS}")


def value_to_pitch(value: np.ndarray | float, encoding: str = "log") -> np.ndarray:
    """Pitch feature -> nearest MIDI pitch (int, clipped to 0..127)."""
    v = np.asarray(value, dtype=np.float64)
    if encoding == "linear":
        v = 69.0 + 12.0 * np.log2(np.maximum(v, 1e-6) / A4_HZ)
    elif encoding != "log":
        raise BridgeError(f"pitch encoding {encoding!r} is unknown; use one of {PITCH_ENCODINGS}")
    return np.clip(np.rint(v), 0, 127).astype(np.int64)


def transpose_values(values: np.ndarray, semitones: int | np.ndarray, encoding: str = "log") -> np.ndarray:
    """Pitch feature values moved by ``semitones`` (``log``: added; ``linear`` Hz: multiplied), float64."""
    v = np.asarray(values, dtype=np.float64)
    if encoding == "log":
        return v + semitones
    if encoding == "linear":
        return v * 2.0 ** (np.asarray(semitones) / 12.0)
    raise BridgeError(f"pitch encoding {encoding!r} is unknown; use one of {PITCH_ENCODINGS}")


def time_to_value(beats: np.ndarray, encoding: str = "linear") -> np.ndarray:
    """Durations or gaps in beats -> time feature values: the beats (``linear``) or log2(beats + 1/16) (``log``)."""
    t = np.asarray(beats, dtype=np.float64)
    if encoding == "linear":
        return t
    if encoding == "log":
        return np.log2(np.maximum(t, 0.0) + LOG_TIME_OFFSET)
    raise BridgeError(f"time encoding {encoding!r} is unknown; use one of {TIME_ENCODINGS}")


def value_to_time(value: np.ndarray, encoding: str = "linear") -> np.ndarray:
    """Inverse of :func:`time_to_value`; never below 0 beats."""
    v = np.asarray(value, dtype=np.float64)
    if encoding == "log":
        return np.maximum(np.exp2(v) - LOG_TIME_OFFSET, 0.0)
    if encoding != "linear":
        raise BridgeError(f"time encoding {encoding!r} is unknown; use one of {TIME_ENCODINGS}")
    return v


def notes_to_features(notes: Sequence[Note], encoding: str = "log") -> np.ndarray:
    """Notes -> float64 ``(n, 3)`` of (pitch, duration, delta); the first delta is 0."""
    ordered = sort_notes(notes)
    if not ordered:
        return np.zeros((0, 3), dtype=np.float64)
    onsets = np.array([n.onset for n in ordered], dtype=np.float64)
    out = np.empty((len(ordered), 3), dtype=np.float64)
    out[:, 0] = pitch_to_value(np.array([n.pitch for n in ordered]), encoding)
    out[:, 1] = [n.duration for n in ordered]
    out[:, 2] = np.diff(onsets, prepend=onsets[0])
    return out


def features_to_notes(
    features: np.ndarray,
    encoding: str = "log",
    *,
    start: float = 0.0,
    velocity: int | Sequence[int] = 80,
    channel: int = 0,
    program: int = 0,
) -> list[Note]:
    """Unscaled ``(n, 3)`` features -> notes, the first at ``start``; negative times clip to 0."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise BridgeError(f"features must have shape (n, 3), got {f.shape}")
    pitches = value_to_pitch(f[:, 0], encoding)
    onsets = start + np.cumsum(np.maximum(f[:, 2], 0.0))
    onsets -= max(f[0, 2], 0.0) if len(f) else 0.0
    velocities = np.broadcast_to(np.asarray(velocity, dtype=np.int64), (len(f),))
    return [
        Note(float(o), int(p), float(max(d, 0.0)), int(v), channel, program)
        for o, p, d, v in zip(onsets, pitches, f[:, 1], velocities, strict=True)
    ]


def segment(features: np.ndarray, length: int, hop: int | None = None) -> np.ndarray:
    """Cut ``(n, 3)`` into ``(k, length, 3)`` windows every ``hop`` notes; a short tail is dropped.

    Each window restarts its time origin: its first delta is 0, as for a piece that begins there.
    """
    hop = hop or length
    if length < 1 or hop < 1:
        raise BridgeError(f"segment length and hop must be positive, got {length} and {hop}")
    starts = range(0, len(features) - length + 1, hop)
    out = np.stack([features[s : s + length] for s in starts]) if len(starts) else None
    if out is None:
        return np.zeros((0, length, features.shape[1]), dtype=features.dtype)
    out = out.copy()
    out[:, 0, 2] = 0.0
    return out


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature range ``[low, high]`` of the feature values that maps to ``[-1, 1]``; travels in the card as JSON.

    ``time_encoding="log"`` scales log2(beats + 1/16) of durations and gaps instead of the beats:
    musical note values double from one to the next, so in log time a quarter and an eighth are
    as far apart as a half and a quarter, where linear scaling puts them 1/32 of the range apart
    and a model blurs them into dotted eighths. ``low``/``high`` are in the encoded values.

    ``pitch_gain`` stretches the scaled pitch to ``[-gain, gain]``. Against the same noise schedule
    that is a pitch signal-to-noise ratio ``gain**2`` times higher at every timestep: with gain 1 a
    semitone is drowned in noise from the first timesteps on, so the network decides pitch classes
    in only the last few of the 1000.

    ``home_key``: every training segment was moved to C major or A minor
    (:func:`bridge.home_key.home_shift`); the model composes there and the sampler moves its
    music to the key asked for.
    """

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    encoding: str = "log"
    time_encoding: str = "linear"
    pitch_gain: float = 1.0
    home_key: bool = False

    def __post_init__(self) -> None:
        if self.encoding not in PITCH_ENCODINGS:
            raise BridgeError(f"pitch encoding {self.encoding!r} is unknown; use one of {PITCH_ENCODINGS}")
        if self.time_encoding not in TIME_ENCODINGS:
            raise BridgeError(f"time encoding {self.time_encoding!r} is unknown; use one of {TIME_ENCODINGS}")
        if len(self.low) != 3 or len(self.high) != 3 or any(h <= lo for lo, h in zip(self.low, self.high, strict=True)):
            raise BridgeError(f"feature stats need 3 ranges with high > low, got {self.low} .. {self.high}")
        low, high = PITCH_GAIN_RANGE
        if not low <= self.pitch_gain <= high:
            raise BridgeError(f"pitch_gain must lie in {low:g} .. {high:g}, got {self.pitch_gain}")

    @property
    def bounds(self) -> np.ndarray:
        """``(3,)`` the largest scaled value of each feature: the pitch gain, then 1 and 1."""
        return np.array([self.pitch_gain, 1.0, 1.0])

    @property
    def semitone(self) -> float:
        """One semitone in scaled pitch units (log encoding; 0 for Hz, where it depends on the pitch)."""
        return 2.0 * self.pitch_gain / (self.high[0] - self.low[0]) if self.encoding == "log" else 0.0

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        encoding: str = "log",
        time_quantile: float = 1.0,
        time_encoding: str = "linear",
        pitch_gain: float = 1.0,
        home_key: bool = False,
    ) -> FeatureStats:
        """Ranges of ``(..., 3)`` training features; the time features start at 0 beats like the seed's.

        ``time_quantile`` < 1 sets the duration and delta highs at that quantile instead of the
        maximum, so a few long notes or gaps (fermatas, rests) do not squeeze every common note
        length into a sliver of [-1, 1]; longer ones clip to the high when decoded.
        """
        f = np.asarray(features, dtype=np.float64).reshape(-1, 3)
        if len(f) == 0:
            raise BridgeError("cannot fit feature statistics on an empty dataset")
        if not 0.5 <= time_quantile <= 1.0:
            raise BridgeError(f"time_quantile must lie in 0.5 .. 1, got {time_quantile}")
        times = time_to_value(f[:, 1:], time_encoding)
        low = np.concatenate([f[:, :1].min(axis=0), time_to_value(np.zeros(2), time_encoding)])
        high = np.concatenate([f[:, :1].max(axis=0), np.quantile(times, time_quantile, axis=0)])
        high = np.maximum(high, low + 1e-6)
        return cls(tuple(map(float, low)), tuple(map(float, high)), encoding, time_encoding, pitch_gain, home_key)

    def encode_times(self, features: np.ndarray) -> np.ndarray:
        """Unscaled ``(..., 3)`` -> the values that are scaled linearly (time features encoded), float64."""
        out = np.array(features, dtype=np.float64)
        out[..., 1:] = time_to_value(out[..., 1:], self.time_encoding)
        return out

    def scale(self, features: np.ndarray) -> np.ndarray:
        """Unscaled ``(..., 3)`` -> ``[-bounds, bounds]`` float32 (``[-1, 1]`` but for the pitch gain)."""
        lo, hi = np.asarray(self.low), np.asarray(self.high)
        return ((2.0 * (self.encode_times(features) - lo) / (hi - lo) - 1.0) * self.bounds).astype(np.float32)

    def scale_pitch(self, values: np.ndarray) -> np.ndarray:
        """Encoded pitch values ``(m,)`` -> scaled ``(m,)`` float64, clipped to the training range."""
        unit = 2.0 * (np.asarray(values, dtype=np.float64) - self.low[0]) / (self.high[0] - self.low[0]) - 1.0
        return np.clip(unit, -1.0, 1.0) * self.pitch_gain

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled ``(..., 3)`` -> unscaled float64, clipped to the training range first."""
        lo, hi = np.asarray(self.low), np.asarray(self.high)
        unit = np.clip(np.asarray(scaled, dtype=np.float64) / self.bounds, -1.0, 1.0)
        out = lo + (unit + 1.0) / 2.0 * (hi - lo)
        out[..., 1:] = value_to_time(out[..., 1:], self.time_encoding)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form, keyed by feature name so a reader never guesses the order; a pitch gain of 1
        and ``home_key`` false are left out, so files from before them read and rebuild unchanged."""
        out: dict[str, Any] = {
            "encoding": self.encoding,
            "time_encoding": self.time_encoding,
            "low": dict(zip(FEATURES, self.low, strict=True)),
            "high": dict(zip(FEATURES, self.high, strict=True)),
        }
        if self.pitch_gain != 1.0:
            out["pitch_gain"] = self.pitch_gain
        if self.home_key:
            out["home_key"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureStats:
        """Inverse of :meth:`to_dict`; a missing or unknown key is an error that names it.

        ``time_encoding``, ``pitch_gain`` and ``home_key`` may be missing: files written before them
        scaled times linearly and pitch to [-1, 1], in every key.
        """
        unknown = set(data) - {"encoding", "time_encoding", "low", "high", "pitch_gain", "home_key"}
        if unknown:
            raise BridgeError(f"unknown feature-stats key(s) {sorted(unknown)}")
        try:
            low = tuple(float(data["low"][k]) for k in FEATURES)
            high = tuple(float(data["high"][k]) for k in FEATURES)
            gain = float(data.get("pitch_gain", 1.0))
            time_encoding, home = str(data.get("time_encoding", "linear")), bool(data.get("home_key", False))
            return cls(low, high, str(data["encoding"]), time_encoding, gain, home)
        except KeyError as exc:
            raise BridgeError(f"feature stats lack the key {exc.args[0]!r}") from exc
