"""The model card: a faithful round trip, and each refusal with a message that says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny_model import TINY_STATS, write_tiny_model

from bridge.card import CARD_FILE, ModelCard, TensorSpec, read_card, sha256_file, write_card
from bridge.chords import ChordVocabulary
from bridge.codec import FeatureStats
from bridge.errors import BridgeError
from bridge.onset_gaps import MAX_GAP_CELL, OnsetGaps
from bridge.schedule import NoiseSchedule


def card_json(directory: Path) -> dict:
    return json.loads((directory / CARD_FILE).read_text())


def rewrite(directory: Path, data: dict) -> None:
    (directory / CARD_FILE).write_text(json.dumps(data))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A fresh tiny model folder each test may damage."""
    return write_tiny_model(tmp_path / "tiny")


def test_written_card_has_the_contract_keys_in_order(model_dir: Path) -> None:
    data = card_json(model_dir)
    assert list(data) == [
        "format_version", "name", "model_file", "sha256", "opset", "inputs", "outputs", "length",
        "features", "stats", "schedule", "prediction", "parameters", "training", "parity",
    ]
    assert data["inputs"]["sample"] == {"shape": [None, 1, 16, 3], "dtype": "float32"}
    assert data["sha256"] == sha256_file(model_dir / "model.onnx")


def test_read_card_round_trips(model_dir: Path) -> None:
    card = read_card(model_dir)
    assert card.name == "tiny" and card.length == 16 and card.stats == TINY_STATS
    assert ModelCard.from_dict(card.to_dict()) == card


@given(
    length=st.integers(1, 512),
    prediction=st.sampled_from(["epsilon", "v"]),
    steps=st.integers(2, 2000),
    optional=st.booleans(),
)
def test_dict_round_trip(length: int, prediction: str, steps: int, optional: bool) -> None:
    card = ModelCard(
        name="m", sha256="0" * 64, length=length, stats=FeatureStats((0.0, 0.0, 0.0), (1.0, 2.0, 3.0)),
        schedule=NoiseSchedule(steps=steps), prediction=prediction,
        variants={"fp16": {"model_file": "model.fp16.onnx"}} if optional else None,
        evaluation={"in_key": 0.9} if optional else None,
        chords=ChordVocabulary((0b10010001, 0b1001), (0.7, 0.3)) if optional else None,
        onset_gaps=OnsetGaps(tuple(tuple([1 / 12] + [0.0] * MAX_GAP_CELL) for _ in range(12))) if optional else None,
    )
    data = json.loads(json.dumps(card.to_dict()))
    assert ModelCard.from_dict(data) == card
    assert ("variants" in data) == optional


def test_write_card_is_atomic_and_leaves_no_temp_files(model_dir: Path) -> None:
    card = read_card(model_dir)
    write_card(model_dir, card)
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.json", "model.onnx"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format_version=2), "format_version 2 is not one this bridge reads"),
        (lambda d: d.pop("format_version"), "no format_version"),
        (lambda d: d.update(colour="blue"), "unknown key(s) ['colour']"),
        (lambda d: d.pop("stats"), "lacks the key(s) ['stats']"),
        (lambda d: d["schedule"].update(warmup=3), "unknown schedule key(s) ['warmup']"),
        (lambda d: d.update(prediction="sample"), "prediction 'sample' is unknown"),
        (lambda d: d.update(features=["pitch", "delta", "duration"]), "features"),
        (lambda d: d.update(model_file="../model.onnx"), "must be a file name"),
        (lambda d: d["inputs"]["sample"].update(shape=[None, 1, 32, 3]), "expected"),
        (lambda d: d["inputs"].pop("timestep"), "expected"),
        (lambda d: d.update(length="long"), "malformed"),
        (lambda d: d.update(chords={"sets": [[0, 4, 13]], "shares": [1.0]}), "chord pitch classes must lie in 0..11"),
    ],
)
def test_refuses_a_bad_card(model_dir: Path, change, message: str) -> None:
    data = card_json(model_dir)
    change(data)
    rewrite(model_dir, data)
    with pytest.raises(BridgeError, match=r"re-export|update diffusion-composer|fix the card") as info:
        read_card(model_dir)
    assert message in str(info.value)
    assert str(model_dir) in str(info.value)


def test_refuses_a_missing_card(tmp_path: Path) -> None:
    with pytest.raises(BridgeError, match=r"has no model\.json"):
        read_card(tmp_path)


def test_refuses_a_card_that_is_not_json(model_dir: Path) -> None:
    (model_dir / CARD_FILE).write_text("{not json")
    with pytest.raises(BridgeError, match="cannot read the model card"):
        read_card(model_dir)


def test_refuses_a_missing_model_file(model_dir: Path) -> None:
    (model_dir / "model.onnx").unlink()
    with pytest.raises(BridgeError, match=r"model\.onnx is missing"):
        read_card(model_dir)


def test_refuses_a_changed_model_file(model_dir: Path) -> None:
    with (model_dir / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(BridgeError, match="does not match the checksum"):
        read_card(model_dir)
    assert read_card(model_dir, verify=False).name == "tiny"


def test_tensor_spec_refuses_unknown_keys() -> None:
    with pytest.raises(BridgeError, match="'shape' and 'dtype' only"):
        TensorSpec.from_dict({"shape": [1], "dtype": "float32", "layout": "nhwc"}, "input 'sample'")


def test_fixed_batch_is_accepted() -> None:
    inputs = {"sample": TensorSpec((1, 1, 8, 3)), "timestep": TensorSpec((1,))}
    card = ModelCard(
        name="m", sha256="0" * 64, length=8, stats=TINY_STATS, schedule=NoiseSchedule(),
        inputs=inputs, outputs={"prediction": TensorSpec((1, 1, 8, 3))},
    )
    assert card.inputs["sample"].shape[0] == 1
