"""The model card (``weights/<name>/model.json``): everything the bridge needs to run ``model.onnx``.

The card is the contract between the exporter and the runtime (docs/CONTRACTS.md). Reading is
strict: an unknown format version, an unknown or missing key, a missing model file or a
changed ``model.onnx`` is refused with a message that says what to do, because a card the
bridge half-understands would compose nonsense silently.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.atomic import write_bytes
from bridge.chords import ChordVocabulary
from bridge.codec import FEATURES, FeatureStats
from bridge.errors import BridgeError
from bridge.note_lengths import NoteLengths
from bridge.onset_gaps import OnsetGaps
from bridge.schedule import NoiseSchedule
from bridge.styles import Styles

CARD_FILE = "model.json"
FORMAT_VERSION = 1
PREDICTIONS = ("epsilon", "v")
MAX_GUIDANCE = 10.0  # a bound against typos: the weights that helped here lie near 1 (docs/evaluation.md)
CARD_KEYS = (
    "format_version", "name", "model_file", "sha256", "opset", "inputs", "outputs", "length",
    "features", "stats", "schedule", "prediction", "parameters", "training", "parity",
    "variants", "evaluation", "note_lengths", "guide", "styles", "chords", "onset_gaps",
)
OPTIONAL_KEYS = ("variants", "evaluation", "note_lengths", "guide", "styles", "chords", "onset_gaps")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: shape (``None`` for the free batch axis) and dtype name."""

    shape: tuple[int | None, ...]
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> TensorSpec:
        """Parse ``{"shape": [...], "dtype": "float32"}``; ``where`` names it in errors."""
        unknown = set(data) - {"shape", "dtype"}
        if unknown or "shape" not in data:
            raise BridgeError(f"model card {where} must have 'shape' and 'dtype' only, got {sorted(data)}")
        return cls(tuple(None if d is None else int(d) for d in data["shape"]), str(data.get("dtype", "float32")))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"shape": list(self.shape), "dtype": self.dtype}


def check_guidance(weight: float) -> None:
    """An autoguidance weight, from a card or a command line, must lie in 0 .. MAX_GUIDANCE."""
    if not 0.0 <= weight <= MAX_GUIDANCE:
        raise BridgeError(f"guidance weight must lie in 0 .. {MAX_GUIDANCE:g}, got {weight!r}")


@dataclass(frozen=True)
class GuideRef:
    """A weaker model of the same data in a subfolder, and how far each step moves away from it
    (autoguidance: :mod:`bridge.guidance`)."""

    folder: str
    weight: float

    def __post_init__(self) -> None:
        if Path(self.folder).name != self.folder or self.folder in ("", ".", ".."):
            raise BridgeError(f"guide folder must be a folder name inside the model folder, got {self.folder!r}")
        check_guidance(self.weight)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuideRef:
        """Parse ``{"folder": "guide", "weight": 1.0}``."""
        if not isinstance(data, dict) or set(data) != {"folder", "weight"}:
            raise BridgeError(f"guide must have 'folder' and 'weight' only, got {data!r}")
        return cls(str(data["folder"]), float(data["weight"]))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"folder": self.folder, "weight": self.weight}


def network_io(length: int, styled: bool = False) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    """The network's signature for segments of ``length`` notes, with the ``style`` input where the network
    is conditioned on styles (docs/CONTRACTS.md)."""
    features = TensorSpec((None, 1, length, len(FEATURES)))
    inputs = {"sample": features, "timestep": TensorSpec((None,))}
    if styled:
        inputs["style"] = TensorSpec((None,), "int32")
    return inputs, {"prediction": features}


@dataclass(frozen=True, kw_only=True)
class ModelCard:
    """The parsed ``model.json``; fields in the file's order. ``inputs``/``outputs`` default from ``length``."""

    format_version: int = FORMAT_VERSION
    name: str
    model_file: str = "model.onnx"
    sha256: str
    opset: int = 17
    inputs: dict[str, TensorSpec] = field(default_factory=dict)
    outputs: dict[str, TensorSpec] = field(default_factory=dict)
    length: int
    features: tuple[str, ...] = FEATURES
    stats: FeatureStats
    schedule: NoiseSchedule
    prediction: str = "epsilon"
    parameters: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    note_lengths: NoteLengths | None = None  # the training corpus's, for the rhythm grid
    guide: GuideRef | None = None  # a weaker model for autoguidance, off unless present
    styles: Styles | None = None  # the styles a conditioned network takes (its ``style`` input)
    chords: ChordVocabulary | None = None  # the training corpus's, for the chord snap
    onset_gaps: OnsetGaps | None = None  # the training corpus's, for the rhythm grid's onsets

    def __post_init__(self) -> None:
        _check_version(self.format_version)
        if self.length < 1:
            raise BridgeError(f"model card length must be positive, got {self.length}; re-export the model")
        if tuple(self.features) != FEATURES:
            raise BridgeError(
                f"model card features {list(self.features)} differ from this bridge's {list(FEATURES)}; "
                "re-export the model"
            )
        if self.prediction not in PREDICTIONS:
            raise BridgeError(
                f"model card prediction {self.prediction!r} is unknown (this bridge knows {PREDICTIONS}); "
                "update diffusion-composer or re-export the model"
            )
        if Path(self.model_file).name != self.model_file or self.model_file in ("", ".", ".."):
            raise BridgeError(
                f"model card model_file must be a file name in the model folder, got {self.model_file!r}; "
                "fix the card or re-export the model"
            )
        if not self.inputs and not self.outputs:
            inputs, outputs = network_io(self.length, self.styles is not None)
            object.__setattr__(self, "inputs", inputs)
            object.__setattr__(self, "outputs", outputs)
        self._check_io()

    def _check_io(self) -> None:
        """The declared signature must be the contract's, up to a fixed batch size."""
        expected_in, expected_out = network_io(self.length, self.styles is not None)
        for declared, expected in ((self.inputs, expected_in), (self.outputs, expected_out)):
            if set(declared) != set(expected) or any(
                declared[k].dtype != spec.dtype or declared[k].shape[1:] != spec.shape[1:]
                or len(declared[k].shape) != len(spec.shape)
                for k, spec in expected.items()
            ):
                raise BridgeError(
                    f"model card declares {_specs_text(declared)}, expected {_specs_text(expected)} "
                    f"for length {self.length}; re-export the model"
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Parse ``model.json``'s content; refuses unknown versions and unknown or missing keys by name."""
        if not isinstance(data, dict) or "format_version" not in data:
            raise BridgeError("this is not a model card: it has no format_version; re-export the model")
        _check_version(data["format_version"])
        unknown = sorted(set(data) - set(CARD_KEYS))
        if unknown:
            raise BridgeError(f"model card has unknown key(s) {unknown}; update diffusion-composer or fix the card")
        missing = [k for k in CARD_KEYS if k not in data and k not in OPTIONAL_KEYS]
        if missing:
            raise BridgeError(f"model card lacks the key(s) {missing}; re-export the model")
        fields = {k: data[k] for k in CARD_KEYS if k in data}
        try:
            fields.update(
                inputs={k: TensorSpec.from_dict(v, f"input {k!r}") for k, v in data["inputs"].items()},
                outputs={k: TensorSpec.from_dict(v, f"output {k!r}") for k, v in data["outputs"].items()},
                features=tuple(data["features"]),
                stats=FeatureStats.from_dict(data["stats"]),
                schedule=NoiseSchedule.from_dict(data["schedule"]),
            )
            if "note_lengths" in data:
                fields["note_lengths"] = NoteLengths.from_dict(data["note_lengths"])
            if "guide" in data:
                fields["guide"] = GuideRef.from_dict(data["guide"])
            if "styles" in data:
                fields["styles"] = Styles.from_dict(data["styles"])
            if "chords" in data:
                fields["chords"] = ChordVocabulary.from_dict(data["chords"])
            if "onset_gaps" in data:
                fields["onset_gaps"] = OnsetGaps.from_dict(data["onset_gaps"])
        except BridgeError as exc:
            raise BridgeError(f"model card: {exc}; update diffusion-composer or re-export the model") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise BridgeError(f"model card is malformed ({exc}); re-export the model") from exc
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise BridgeError(f"model card is malformed ({exc}); re-export the model") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON form, keys in the contract's order; absent optional sections are left out."""
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "name": self.name,
            "model_file": self.model_file,
            "sha256": self.sha256,
            "opset": self.opset,
            "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "length": self.length,
            "features": list(self.features),
            "stats": self.stats.to_dict(),
            "schedule": self.schedule.to_dict(),
            "prediction": self.prediction,
            "parameters": self.parameters,
            "training": self.training,
            "parity": self.parity,
        }
        for key in OPTIONAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value.to_dict() if hasattr(value, "to_dict") else value  # the sections; dicts as they are
        return out


def _check_version(version: object) -> None:
    if version != FORMAT_VERSION:
        raise BridgeError(
            f"model card format_version {version!r} is not one this bridge reads ({FORMAT_VERSION}); "
            "update diffusion-composer or re-export the model"
        )


def _specs_text(specs: dict[str, TensorSpec]) -> str:
    return ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in sorted(specs.items()))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks so a large model costs no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(model_dir: str | os.PathLike[str], *, verify: bool = True) -> ModelCard:
    """Read and check ``model_dir/model.json``; with ``verify``, also the model file's checksum."""
    directory = Path(model_dir)
    path = directory / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BridgeError(
            f"{directory} has no {CARD_FILE}: is it a model folder? Export one with 'dmc export'"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BridgeError(f"cannot read the model card {path}: {exc}; re-export the model") from exc
    try:
        card = ModelCard.from_dict(data)
    except BridgeError as exc:
        raise BridgeError(f"{path}: {exc}") from exc
    model = directory / card.model_file
    if not model.is_file():
        raise BridgeError(f"{model} is missing (the card {path} names it); re-export or reinstall the model")
    if verify:
        verify_checksum(model, card.sha256, path)
    return card


def verify_checksum(model: Path, sha256: str, card_path: Path) -> None:
    """A graph file must be the one its card names: a change means damage or a stale export."""
    if sha256_file(model) != sha256:
        raise BridgeError(
            f"{model} does not match the checksum in {card_path}: the file was changed or damaged; "
            "re-export or reinstall the model"
        )


def write_card(model_dir: str | os.PathLike[str], card: ModelCard) -> Path:
    """Write ``model_dir/model.json`` atomically, so a reader never sees half a card."""
    path = Path(model_dir) / CARD_FILE
    write_bytes(path, (json.dumps(card.to_dict(), indent=2) + "\n").encode("utf-8"))
    return path
