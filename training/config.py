"""Training settings: frozen dataclasses read from TOML presets (``training/presets/*.toml``).

A config file has three tables, ``[model]``, ``[diffusion]`` and ``[train]``; every key is
optional (the dataclass default applies) but an unknown key or a bad value is a
:class:`TrainingError` that names it (``model.widths``), so a typo never trains silently.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from bridge.schedule import SCHEDULE_KINDS, NoiseSchedule
from training.errors import TrainingError

PREDICTIONS = ("epsilon", "v")


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise TrainingError(f"config key {key}: {message}")


@dataclass(frozen=True)
class ModelConfig:
    """The causal U-Net: one level per entry of ``widths``, halving the note axis between levels."""

    SECTION: ClassVar[str] = "model"
    length: int = 128
    features: int = 3
    tracks: int = 1
    widths: tuple[int, ...] = (64, 128, 256, 256)
    kernel_sizes: tuple[int, ...] = (7, 5, 3, 3)
    middle_width: int = 512
    middle_kernel_size: int = 3
    blocks_per_level: int = 2
    attention_levels: tuple[int, ...] = (2, 3)
    heads: int = 2
    time_embedding: int = 256
    se_ratio: int = 4
    # One semitone in the dataset's scaled pitch (FeatureStats.semitone); > 0 gives the network the
    # pitch class as input (training.layers.PitchChroma). 0: the scalar pitch alone.
    chroma_semitone: float = 0.0
    chroma_harmonics: tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # of the octave; 12: the offset from a semitone
    # With chroma: the interval from each note to the notes these many places earlier, as the same
    # harmonics (training.layers.PitchIntervals): a chord's voicing and a melody's steps at a glance.
    interval_lags: tuple[int, ...] = ()
    # The largest gap in beats (the dataset's delta high, linear time, low 0); > 0 with beat_periods
    # gives each note its onset's phase in those periods, in beats (training.layers.OnsetPhase): where
    # the beat and the bar fall, which gaps alone only tell by summing along the phrase.
    delta_high: float = 0.0
    beat_periods: tuple[float, ...] = ()
    # Styles the network is conditioned on: the dataset's source folders (music21: one per composer).
    # > 0 adds the input ``style`` (B,) int32, 0 .. styles; the last index is "no style" (see
    # train.style_dropout). 0: unconditioned, no style input.
    styles: int = 0

    def __post_init__(self) -> None:
        s = self.SECTION
        for name in ("length", "features", "tracks", "middle_width", "middle_kernel_size",
                     "blocks_per_level", "heads", "time_embedding", "se_ratio"):  # fmt: skip
            _require(getattr(self, name) >= 1, f"{s}.{name}", f"must be at least 1, got {getattr(self, name)}")
        _require(self.features == 3, f"{s}.features", f"the codec has 3 features, got {self.features}")
        _require(len(self.widths) >= 1, f"{s}.widths", "needs at least one level")
        _require(all(w >= 1 for w in self.widths), f"{s}.widths", f"must be positive, got {self.widths}")
        _require(
            len(self.kernel_sizes) == len(self.widths) and all(k >= 1 for k in self.kernel_sizes),
            f"{s}.kernel_sizes", f"needs one positive size per level ({len(self.widths)}), got {self.kernel_sizes}",
        )  # fmt: skip
        factor = 2 ** (len(self.widths) - 1)
        levels = len(self.widths)
        _require(self.length % factor == 0, f"{s}.length", f"must be a multiple of {factor} for {levels} levels")
        _require(
            all(0 <= i < len(self.widths) for i in self.attention_levels), f"{s}.attention_levels",
            f"must be level indices 0..{len(self.widths) - 1}, got {self.attention_levels}",
        )  # fmt: skip
        for width in [self.widths[i] for i in self.attention_levels] + [self.middle_width]:
            _require(width % self.heads == 0, f"{s}.heads", f"must divide every attention width, not {width}")
        _require(min(self.widths) >= self.se_ratio, f"{s}.se_ratio", "must not exceed the smallest width")
        _require(self.styles >= 0, f"{s}.styles", f"must be 0 or more, got {self.styles}")
        _require(self.chroma_semitone >= 0, f"{s}.chroma_semitone", f"must be 0 or more, got {self.chroma_semitone}")
        _require(
            len(self.chroma_harmonics) >= 1 and all(1 <= k <= 12 for k in self.chroma_harmonics),
            f"{s}.chroma_harmonics", f"must be harmonics of the octave in 1..12, got {self.chroma_harmonics}",
        )  # fmt: skip
        _require(not self.interval_lags or self.chroma_semitone > 0, f"{s}.interval_lags", "needs chroma_semitone > 0")
        _require(
            all(1 <= lag < self.length for lag in self.interval_lags), f"{s}.interval_lags",
            f"must be note distances in 1..{self.length - 1}, got {self.interval_lags}",
        )  # fmt: skip
        _require(self.delta_high >= 0, f"{s}.delta_high", f"must be 0 or more, got {self.delta_high}")
        _require(not self.beat_periods or self.delta_high > 0, f"{s}.beat_periods", "needs delta_high > 0")
        periods = self.beat_periods
        _require(all(p > 0 for p in periods), f"{s}.beat_periods", f"must be beats > 0, got {periods}")


@dataclass(frozen=True)
class DiffusionConfig:
    """The DDPM: the schedule (built by :mod:`bridge.schedule`) and what the network predicts."""

    SECTION: ClassVar[str] = "diffusion"
    schedule: str = "linear"
    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: str = "epsilon"

    def __post_init__(self) -> None:
        s = self.SECTION
        _require(self.schedule in SCHEDULE_KINDS, f"{s}.schedule", f"must be one of {SCHEDULE_KINDS}")
        _require(self.steps >= 2, f"{s}.steps", f"must be at least 2, got {self.steps}")
        _require(
            0.0 < self.beta_start < self.beta_end < 1.0, f"{s}.beta_start",
            f"needs 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}",
        )  # fmt: skip
        _require(self.prediction in PREDICTIONS, f"{s}.prediction", f"must be one of {PREDICTIONS}")

    def noise_schedule(self) -> NoiseSchedule:
        """The one schedule definition shared with the samplers."""
        return NoiseSchedule(self.schedule, self.steps, self.beta_start, self.beta_end)


@dataclass(frozen=True)
class TrainSettings:
    """The optimisation and the run's rhythm (checkpoints, logs, held-out loss, samples), in steps."""

    SECTION: ClassVar[str] = "train"
    batch_size: int = 64
    steps: int = 200_000
    learning_rate: float = 1e-4
    final_learning_rate: float = 1e-6
    final_fraction: float = 0.25
    ema_decay: float = 0.999
    seed: int = 0
    transpose: int = 0
    jit_compile: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 100
    heldout_every: int = 5000
    heldout_batches: int = 4
    sample_every: int = 10_000
    samples: int = 4
    # Share of each batch whose timesteps come from the lowest ``low_noise_steps`` instead of all T:
    # uniform t gives the low-noise steps, where semitones and note lengths are resolved, 2% of the
    # training; the shipped model never learned them (benchmarks/denoise_resolution.py).
    low_noise_share: float = 0.0
    low_noise_steps: int = 50
    # Share of training segments shown with the "no style" index instead of their own (model.styles > 0),
    # so one network also samples without a style, as the unconditioned mixture of all of them.
    style_dropout: float = 0.1

    def __post_init__(self) -> None:
        s = self.SECTION
        for name in ("batch_size", "steps", "checkpoint_every", "keep_checkpoints", "log_every"):
            _require(getattr(self, name) >= 1, f"{s}.{name}", f"must be at least 1, got {getattr(self, name)}")
        for name in ("heldout_every", "heldout_batches", "sample_every", "samples", "transpose", "seed"):
            _require(getattr(self, name) >= 0, f"{s}.{name}", f"must not be negative, got {getattr(self, name)}")
        for name in ("learning_rate", "final_learning_rate"):
            _require(getattr(self, name) > 0, f"{s}.{name}", f"must be positive, got {getattr(self, name)}")
        _require(0.0 <= self.final_fraction < 1.0, f"{s}.final_fraction", "must be in [0, 1)")
        _require(0.0 <= self.ema_decay < 1.0, f"{s}.ema_decay", "must be in [0, 1)")
        _require(0.0 <= self.low_noise_share < 1.0, f"{s}.low_noise_share", "must be in [0, 1)")
        _require(0.0 <= self.style_dropout < 1.0, f"{s}.style_dropout", "must be in [0, 1)")
        _require(self.low_noise_steps >= 1, f"{s}.low_noise_steps", f"must be at least 1, got {self.low_noise_steps}")

    @property
    def final_phase_start(self) -> int:
        """First step trained at ``final_learning_rate`` (the seed: 150K of 200K)."""
        return round(self.steps * (1.0 - self.final_fraction))


@dataclass(frozen=True)
class TrainConfig:
    """A whole training setup; ``name`` is the preset or file it came from."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainSettings = field(default_factory=TrainSettings)

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready form (tuples become lists), stored in run.json and checkpoints' runs."""
        return {
            "name": self.name,
            **{t: _table(getattr(self, t)) for t in ("model", "diffusion", "train")},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> TrainConfig:
        """Build from parsed TOML/JSON tables; unknown tables or keys are refused by name."""
        tables = {"model": ModelConfig, "diffusion": DiffusionConfig, "train": TrainSettings}
        unknown = sorted(set(data) - set(tables) - {"name"})
        if unknown:
            raise TrainingError(f"config key {unknown[0]}: unknown table; use {sorted(tables)}")
        for key, value in data.items():
            if key in tables and not isinstance(value, dict):
                raise TrainingError(f"config key {key}: must be a table")
        parts = {key: _from_table(kind, data.get(key, {})) for key, kind in tables.items()}
        return cls(name=name or str(data.get("name", "custom")), **parts)

    def replace_train(self, **changes: Any) -> TrainConfig:
        """A copy with some ``[train]`` values changed (e.g. ``steps`` from the command line)."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))


def _table(part: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(part).items()}


def _from_table(kind: type, table: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(kind)
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise TrainingError(f"config key {kind.SECTION}.{unknown[0]}: unknown; known keys are {sorted(names)}")
    return kind(**{k: _coerce(v, hints[k], f"{kind.SECTION}.{k}") for k, v in table.items()})


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a TOML value against the field's type; ints are accepted where floats are expected."""
    if hint is bool:
        _require(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        _require(isinstance(value, int) and not isinstance(value, bool), key, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        _require(ok, key, f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        _require(isinstance(value, str), key, f"must be a string, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        kinds, what = (int | float, "numbers") if item is float else (int, "integers")
        ok = isinstance(value, list | tuple) and all(isinstance(v, kinds) and not isinstance(v, bool) for v in value)
        _require(ok, key, f"must be a list of {what}, got {value!r}")
        return tuple(item(v) for v in value)
    raise TypeError(f"no TOML rule for {hint}")  # a programming error, not a user's


def preset_names() -> list[str]:
    """The presets shipped in ``training/presets``."""
    folder = resources.files("training") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_config(name_or_path: str) -> TrainConfig:
    """A preset by name (``seed``, ``small``, ``tiny``) or a ``.toml`` file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise TrainingError(f"config file {path} does not exist")
        text, name = path.read_text(encoding="utf-8"), path.stem
    else:
        preset = resources.files("training") / "presets" / f"{name_or_path}.toml"
        if not preset.is_file():
            raise TrainingError(f"no preset {name_or_path!r}; use one of {preset_names()} or a .toml path")
        text, name = preset.read_text(encoding="utf-8"), name_or_path
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TrainingError(f"config {name_or_path} is not valid TOML: {exc}") from exc
    return TrainConfig.from_dict(data, name=name)
