"""Autoguidance: a guide model attached to a model folder, and every step moved away from it.

The tiny models are exact denoisers of Gaussians, so the guided result is known in closed form:
epsilon is linear in the data's mean, hence ``main + w (main - guide)`` is the exact denoiser of
a Gaussian with mean ``m + w (m - m_guide)`` and the same spread. Sampling must land there.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from tiny_model import TINY_MEAN, TINY_STD, write_tiny_model

import weights
from bridge.card import CARD_FILE, GuideRef, ModelCard, read_card
from bridge.cli import main
from bridge.errors import BridgeError
from bridge.generate import generate, read_record
from bridge.guidance import GUIDE_FOLDER, attach_guide, detach_guide
from bridge.runtime import load_model
from bridge.samplers import make_sampler, sample

GUIDE_MEAN = (0.0, -0.1, 0.3)


@pytest.fixture
def model_and_guide(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh model folder and a guide of the same data layout whose Gaussian has another mean."""
    model = write_tiny_model(tmp_path / "model")
    guide = write_tiny_model(tmp_path / "guide-src", name="tiny-guide", mean=GUIDE_MEAN)
    return model, guide


def _inputs(batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 1, 16, 3), dtype=np.float32), np.array([0, 400, 999], np.float32)


def test_guided_prediction_moves_away_from_the_guide(model_and_guide: tuple[Path, Path]) -> None:
    model, guide = model_and_guide
    attach_guide(model, guide, 1.5)
    x, t = _inputs()
    alone = load_model(model, "cpu", guidance=0)(x, t)
    weak = load_model(guide, "cpu")(x, t)
    guided = load_model(model, "cpu")
    assert guided.guidance == 1.5
    np.testing.assert_allclose(guided(x, t), alone + 1.5 * (alone - weak), rtol=1e-5, atol=1e-6)


def test_guidance_zero_is_the_model_alone(model_and_guide: tuple[Path, Path], tiny_model_dir: Path) -> None:
    model, guide = model_and_guide
    attach_guide(model, guide, 1.0)
    x, t = _inputs()
    off = load_model(model, "cpu", guidance=0)
    assert off.guide is None and off.guidance == 0
    np.testing.assert_array_equal(off(x, t), load_model(tiny_model_dir, "cpu")(x, t))


def test_guided_sampling_lands_on_the_closed_form_mean(model_and_guide: tuple[Path, Path]) -> None:
    model, guide = model_and_guide
    weight = 0.5
    attach_guide(model, guide, weight)
    denoiser = load_model(model, "cpu")
    x = sample(denoiser, make_sampler("ddim", denoiser.card), 256, 50, seed=1)
    expected = np.asarray(TINY_MEAN) + weight * (np.asarray(TINY_MEAN) - np.asarray(GUIDE_MEAN))
    np.testing.assert_allclose(x.reshape(-1, 3).mean(axis=0), expected, atol=0.02)
    np.testing.assert_allclose(x.reshape(-1, 3).std(axis=0), TINY_STD, rtol=0.05)


def test_attach_copies_the_guide_and_names_it_in_the_card(model_and_guide: tuple[Path, Path]) -> None:
    model, guide = model_and_guide
    card = attach_guide(model, guide, 2.0)
    assert card.guide == GuideRef(GUIDE_FOLDER, 2.0)
    assert read_card(model).guide == card.guide
    assert read_card(model / GUIDE_FOLDER).name == "tiny-guide"
    assert not (model / f".{GUIDE_FOLDER}.partial").exists()
    detach_guide(model)
    assert read_card(model).guide is None and not (model / GUIDE_FOLDER).exists()


def test_a_guide_of_other_data_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "model")
    other = write_tiny_model(tmp_path / "other", length=8)
    before = (model / CARD_FILE).read_bytes()
    with pytest.raises(BridgeError, match="length differ"):
        attach_guide(model, other, 1.0)
    assert (model / CARD_FILE).read_bytes() == before
    assert not (model / GUIDE_FOLDER).exists()


def test_a_guide_with_its_own_guide_is_refused(model_and_guide: tuple[Path, Path], tmp_path: Path) -> None:
    model, guide = model_and_guide
    attach_guide(guide, write_tiny_model(tmp_path / "third"), 1.0)
    with pytest.raises(BridgeError, match="guide of its own"):
        attach_guide(model, guide, 1.0)


def test_a_missing_guide_folder_is_named_and_guidance_zero_still_loads(model_and_guide: tuple[Path, Path]) -> None:
    model, guide = model_and_guide
    attach_guide(model, guide, 1.0)
    for path in (model / GUIDE_FOLDER).iterdir():
        path.unlink()
    (model / GUIDE_FOLDER).rmdir()
    with pytest.raises(BridgeError, match=r"missing \(the card of .* names it as its guide\)"):
        load_model(model, "cpu")
    assert load_model(model, "cpu", guidance=0).guidance == 0


def test_guidance_without_a_guide_or_out_of_bounds_is_an_error(tiny_model_dir: Path) -> None:
    with pytest.raises(BridgeError, match="has no guide"):
        load_model(tiny_model_dir, "cpu", guidance=1.0)
    assert load_model(tiny_model_dir, "cpu").guidance == 0
    with pytest.raises(BridgeError, match="guidance weight"):
        load_model(tiny_model_dir, "cpu", guidance=-1.0)


@pytest.mark.parametrize(
    ("guide", "message"),
    [({"folder": "../x", "weight": 1.0}, "folder name"), ({"folder": "guide", "weight": -1}, "guidance weight"),
     ({"folder": "guide"}, "'folder' and 'weight' only")],
)  # fmt: skip
def test_card_refuses_a_bad_guide_entry(tiny_model_dir: Path, guide: dict, message: str) -> None:
    data = json.loads((tiny_model_dir / CARD_FILE).read_text()) | {"guide": guide}
    with pytest.raises(BridgeError, match=message):
        ModelCard.from_dict(data)


def test_cli_attaches_generates_with_the_recorded_weight_and_removes(
    model_and_guide: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, guide = model_and_guide
    assert main(["guide", str(model), str(guide), "--weight", "0.75"]) == 0
    assert "weight 0.75" in capsys.readouterr().out
    assert main(["generate", str(tmp_path / "out"), "--model", str(model), "--n", "1", "--seed", "0"]) == 0
    record = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert record["options"]["guidance"] == 0.75
    assert main(["generate", str(tmp_path / "off"), "--model", str(model), "--n", "1", "--guidance", "0"]) == 0
    assert json.loads((tmp_path / "off" / "samples.json").read_text())["options"]["guidance"] == 0
    assert main(["guide", str(model), "--remove"]) == 0
    assert read_card(model).guide is None
    assert main(["guide", str(model)]) == 2  # neither a guide nor --remove


def test_the_shipped_default_is_guided_and_ships_its_guide() -> None:
    """The default's guide loads at the card's weight, and pyproject's package data carries its files."""
    default = weights.model_dir("default")
    model = load_model("default", "cpu")
    assert model.guide is not None and model.guidance == read_card(default).guide.weight > 0
    patterns = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["weights"]  # fmt: skip
    packaged = {path for pattern in patterns for path in default.parent.glob(pattern)}  # setuptools' globbing
    shipped = {path for path in default.rglob("*") if path.suffix in (".onnx", ".json")}
    assert default / GUIDE_FOLDER / CARD_FILE in shipped and shipped <= packaged


def test_a_record_from_before_guidance_makes_its_pieces_again_unguided(
    model_and_guide: tuple[Path, Path], tmp_path: Path
) -> None:
    model, guide = model_and_guide
    attach_guide(model, guide, 1.0)
    unguided = ["--model", str(model), "--n", "1", "--seed", "3", "--guidance", "0"]
    assert main(["generate", str(tmp_path / "old"), *unguided]) == 0
    record_path = tmp_path / "old" / "samples.json"
    record = json.loads(record_path.read_text())
    assert record["guide"] is None
    del record["options"]["guidance"], record["guide"]  # as written before autoguidance existed
    record_path.write_text(json.dumps(record))
    assert read_record(record_path)[0].guidance == 0
    assert main(["generate", str(tmp_path / "again"), "--from", str(record_path)]) == 0
    assert (tmp_path / "again" / "sample-1.mid").read_bytes() == (tmp_path / "old" / "sample-1.mid").read_bytes()


def test_a_record_refuses_another_guide(model_and_guide: tuple[Path, Path], tmp_path: Path) -> None:
    model, guide = model_and_guide
    attach_guide(model, guide, 1.0)
    assert main(["generate", str(tmp_path / "first"), "--model", str(model), "--n", "1", "--seed", "0"]) == 0
    attach_guide(model, write_tiny_model(tmp_path / "other-guide", name="other", mean=(0.1, 0.1, 0.1)), 1.0)
    options, identity = read_record(tmp_path / "first" / "samples.json")
    with pytest.raises(BridgeError, match=r"the model's guide in .* is not the one"):
        generate(options, tmp_path / "again", expect=identity)
    assert not (tmp_path / "again" / "sample-1.mid").exists()
    with pytest.raises(BridgeError, match=r"the model in .* is not the one"):
        generate(options, tmp_path / "again", expect=dataclasses.replace(identity, sha256="0" * 64))


def test_attaching_the_attached_guide_again_changes_only_its_weight(model_and_guide: tuple[Path, Path]) -> None:
    model, guide = model_and_guide
    attach_guide(model, guide, 1.0)
    before = (model / GUIDE_FOLDER / "model.onnx").read_bytes()
    assert attach_guide(model, model / GUIDE_FOLDER, 0.25).guide == GuideRef(GUIDE_FOLDER, 0.25)
    assert (model / GUIDE_FOLDER / "model.onnx").read_bytes() == before
    assert load_model(model, "cpu").guidance == 0.25
