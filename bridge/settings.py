"""The daemon's parameters, like a plugin's: a frozen dataclass, checked on creation, kept in TOML.

The file is flat (``key = "C"``, ``bars = 2``, ``trigger_generate = "note 36 ch 16"``), so
``dmc set KEY=VALUE`` and the file name the same things. Unknown keys are an error that names
the key; a missing key takes its default; ``seed``, ``program`` and ``guidance`` are left out to mean "none".
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from bridge.atomic import atomic_write
from bridge.card import MAX_GUIDANCE
from bridge.chords import CHORD_CHOICES
from bridge.clock import CLOCK_SOURCES, MAX_BPM, MIN_BPM, QUANTIZE
from bridge.constraints import AUTO_KEY, PitchConstraint
from bridge.errors import BridgeError
from bridge.note_lengths import NOTE_LENGTH_CHOICES
from bridge.onset_gaps import ONSET_CHOICES
from bridge.samplers import SAMPLERS
from bridge.styles import MIX
from bridge.triggers import ACTIONS, Binding, parse_binding

MODES = ("phrase", "continuous", "respond")
NONE_WORDS = ("", "none", "random", "off")


@dataclass(frozen=True)
class Settings:
    """What the musician sets. Channels are 1..16 here, as on every synth; notes use 0..15."""

    key: str = "C"
    scale: str = "major"
    steps: int = 20  # the most denoising steps; fewer when the downbeat is near
    min_steps: int = 4  # fewer than this would not fit: the phrase moves to the next boundary
    sampler: str = "dpm++"
    seed: int | None = None  # None: a new phrase every time
    bars: int = 2
    beats_per_bar: int = 4
    channel: int = 1
    program: int | None = None  # None: leave the DAW's instrument alone
    velocity: int = 90
    transpose: int = 0
    low: int = 36  # pitch range of generated notes (before transpose)
    high: int = 96
    quantize: str = "bar"
    offset_ms: float = 0.0
    mode: str = "phrase"
    bpm: float = 120.0
    clock: str = "internal"
    respond_gap_s: float = 1.5  # respond mode: answer after this much silence
    trigger_generate: str = "note 36 ch 16"
    trigger_stop: str = "note 37 ch 16"
    trigger_variation: str = "note 38 ch 16"
    takes: str = ""  # folder for takes; "": the default one, "off": keep none
    note_lengths: str = "corpus"  # corpus: durations weighed by the model's training music; grid: the nearest
    chords: str = "corpus"  # corpus: chords snapped to the nearest the training music struck; model: the network's
    onsets: str = "echo"  # onset gaps on the grid: echo, corpus or grid (bridge.onset_gaps.ONSET_CHOICES)
    guidance: float | None = None  # autoguidance weight; None: the model card's, 0: off
    style: str = MIX  # a style of a conditioned model, "mix" (each phrase draws one) or "none" (bridge.styles)

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("quantize", self.quantize, QUANTIZE)
        _check_choice("clock", self.clock, CLOCK_SOURCES)
        _check_choice("sampler", self.sampler, tuple(SAMPLERS))
        _check_choice("note_lengths", self.note_lengths, NOTE_LENGTH_CHOICES)
        _check_choice("chords", self.chords, CHORD_CHOICES)
        _check_choice("onsets", self.onsets, ONSET_CHOICES)
        for name, low, high in _RANGES:
            _check_range(name, getattr(self, name), low, high)
        if self.program is not None:
            _check_range("program", self.program, 0, 127)
        if self.seed is not None:
            _check_range("seed", self.seed, 0, 2**32 - 1)
        if self.guidance is not None:
            _check_range("guidance", self.guidance, 0.0, MAX_GUIDANCE)
        if self.min_steps > self.steps:
            raise BridgeError(f"setting 'min_steps' ({self.min_steps}) must not exceed 'steps' ({self.steps})")
        if self.low > self.high:
            raise BridgeError(f"setting 'low' ({self.low}) must not exceed 'high' ({self.high})")
        try:
            PitchConstraint.parse(self.scale_text)
        except BridgeError as exc:
            raise BridgeError(f"settings 'key' and 'scale': {exc}") from None
        for action in ACTIONS:
            try:
                parse_binding(getattr(self, f"trigger_{action}"))
            except BridgeError as exc:
                raise BridgeError(f"setting 'trigger_{action}': {exc}") from None

    @property
    def scale_text(self) -> str:
        """``"C major"``, as :func:`bridge.constraints.parse_scale` reads it; ``"auto"`` for key=auto."""
        return AUTO_KEY if self.key.strip().lower() == AUTO_KEY else f"{self.key} {self.scale}"

    @property
    def beats(self) -> float:
        """A phrase's length in beats."""
        return float(self.bars * self.beats_per_bar)

    def bindings(self) -> dict[str, Binding | None]:
        return {action: parse_binding(getattr(self, f"trigger_{action}")) for action in ACTIONS}

    def with_values(self, values: Mapping[str, object]) -> Settings:
        """A copy with some keys changed; values may be text (from ``dmc set``) or TOML values."""
        return dataclasses.replace(self, **{key: coerce(key, value) for key, value in values.items()})

    def to_dict(self) -> dict[str, Any]:
        """TOML-ready: every key, except those that are None."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


_RANGES = (
    ("steps", 1, 1000),
    ("min_steps", 1, 1000),
    ("bars", 1, 64),
    ("beats_per_bar", 1, 16),
    ("channel", 1, 16),
    ("velocity", 1, 127),
    ("transpose", -48, 48),
    ("low", 0, 127),
    ("high", 0, 127),
    ("offset_ms", -1000.0, 1000.0),
    ("bpm", MIN_BPM, MAX_BPM),
    ("respond_gap_s", 0.1, 60.0),
)
_TYPES = typing.get_type_hints(Settings)
KEYS = tuple(f.name for f in fields(Settings))


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BridgeError(f"setting {name!r} must be one of {', '.join(choices)}, got {value!r}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise BridgeError(f"setting {name!r} must lie in {low:g}..{high:g}, got {value!r}")


def coerce(key: str, value: object) -> object:
    """A value for ``key`` of the right type, from text or TOML; BridgeError naming the key."""
    if key not in _TYPES:
        raise BridgeError(f"unknown setting {key!r}; settings are: {', '.join(KEYS)}")
    kind = _TYPES[key]
    optional = isinstance(kind, types.UnionType)
    base = next(a for a in typing.get_args(kind) if a is not type(None)) if optional else kind
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)):
        return None
    if isinstance(value, bool) or (base is not str and isinstance(value, str) and not value.strip()):
        raise BridgeError(f"setting {key!r} needs a {base.__name__}, got {value!r}")
    try:
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return base(value)
    except (TypeError, ValueError):
        raise BridgeError(f"setting {key!r} needs a {base.__name__}, got {value!r}") from None


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``["bars=4", "key=F#"]`` -> ``{"bars": "4", "key": "F#"}``; BridgeError for a pair without '='."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BridgeError(f"write settings as KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def default_settings_path() -> Path:
    """The per-user settings file: %APPDATA%, ~/Library/Application Support, or $XDG_CONFIG_HOME."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "diffusion-composer" / "settings.toml"


def load_settings(path: Path) -> Settings:
    """The settings in ``path``; the defaults when the file does not exist yet."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BridgeError(f"cannot read the settings file {path}: {exc}; fix it or delete it") from exc
    try:
        return Settings().with_values(data)
    except BridgeError as exc:
        raise BridgeError(f"{path}: {exc}") from exc


def save_settings(path: Path, settings: Settings) -> None:
    """Write ``path`` atomically (a crash never leaves half a file)."""
    with atomic_write(path) as handle:
        handle.write(tomli_w.dumps(settings.to_dict()).encode("utf-8"))
