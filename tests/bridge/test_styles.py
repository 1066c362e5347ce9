"""Styles of a conditioned model: the card, the runtime's style input, generate --style and the daemon's setting.

The styled tiny model (conftest) denoises a Gaussian whose mean pitch depends on the style, so
a piece's pitches say which style the network was really given.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import STYLE_MEANS, STYLES
from tiny_model import write_tiny_model

from bridge.card import read_card
from bridge.cli import main
from bridge.errors import BridgeError
from bridge.generate import GenerateOptions, generate
from bridge.guidance import attach_guide
from bridge.midifile import read_midi
from bridge.phrases import ArpeggioSource, ModelPhraseSource, PhraseRequest
from bridge.runtime import Denoiser, load_model
from bridge.samplers import make_sampler, sample
from bridge.styles import Styles, pick_style


@pytest.fixture(scope="module")
def styled(styled_model_dir: Path) -> Denoiser:
    return load_model(styled_model_dir, device="cpu")


def _mean_pitch(denoiser: Denoiser, style: int | np.ndarray, batch: int = 64) -> np.ndarray:
    """Mean scaled pitch of each sample, sampled under ``style``."""
    denoiser.set_style(style)
    x = sample(denoiser, make_sampler("dpm++", denoiser.card), batch, 20, seed=1)
    return x[:, :, 0].mean(axis=1)


def test_the_card_declares_the_style_input_and_keeps_the_styles(styled_model_dir: Path) -> None:
    card = read_card(styled_model_dir)
    assert card.styles == STYLES and card.inputs["style"].dtype == "int32"
    assert json.loads((styled_model_dir / "model.json").read_text())["styles"] == {
        "names": ["low", "middle", "high"], "shares": [0.2, 0.3, 0.5],
    }  # fmt: skip


def test_each_style_index_reaches_the_network(styled: Denoiser) -> None:
    for index, mean in enumerate(STYLE_MEANS):
        assert _mean_pitch(styled, index).mean() == pytest.approx(mean[0], abs=0.05), index
    per_sample = _mean_pitch(styled, np.array([0, 2] * 32))  # one style per sample in a batch
    assert per_sample[0::2].mean() == pytest.approx(-0.6, abs=0.05)
    assert per_sample[1::2].mean() == pytest.approx(0.6, abs=0.05)


def test_no_style_until_one_is_set(styled_model_dir: Path) -> None:
    fresh = load_model(styled_model_dir, device="cpu")
    x = sample(fresh, make_sampler("dpm++", fresh.card), 32, 20, seed=2)
    assert x[:, :, 0].mean() == pytest.approx(STYLE_MEANS[-1][0], abs=0.05)


def test_bad_style_indices_are_refused(styled: Denoiser, tiny_denoiser: Denoiser) -> None:
    with pytest.raises(BridgeError, match=r"must lie in 0 \.\. 3"):
        styled.set_style(4)
    styled.set_style(np.array([0, 1, 2]))
    with pytest.raises(BridgeError, match="3 styles are set, one per sample, but the batch has 2"):
        styled(np.zeros((2, 1, 16, 3), np.float32), np.zeros(2, np.float32))
    styled.set_style(3)
    with pytest.raises(BridgeError, match="not conditioned on styles"):
        tiny_denoiser.set_style(0)


def test_styles_validate_their_names_and_shares() -> None:
    for names, shares in ((("a", "a"), (0.5, 0.5)), (("a", "mix"), (0.5, 0.5)), (("a", "b"), (0.5, 0.4))):
        with pytest.raises(BridgeError):
            Styles(names, shares)
    with pytest.raises(BridgeError, match="unknown style 'jazz'; this model knows low, middle, high"):
        STYLES.check("jazz")


def test_mix_draws_each_style_as_often_as_its_share_and_from_the_seed() -> None:
    drawn = [pick_style(STYLES, "mix", seed) for seed in range(2000)]
    assert np.bincount(drawn, minlength=3) / 2000 == pytest.approx([0.2, 0.3, 0.5], abs=0.04)
    assert [pick_style(STYLES, "mix", seed) for seed in range(20)] == drawn[:20]
    assert pick_style(STYLES, "high", 7) == 2 and pick_style(STYLES, "none", 7) == 3
    assert pick_style(None, "mix", 7) is None and pick_style(None, "none", 7) is None
    with pytest.raises(BridgeError, match="not conditioned on styles"):
        pick_style(None, "high", 7)


def _pitches(path: Path) -> list[int]:
    return [n.pitch for n in read_midi(path, families=("all",), mode="merge").notes]


def test_generate_writes_each_piece_in_the_style_asked_and_records_it(styled_model_dir: Path, tmp_path: Path) -> None:
    options = GenerateOptions(n=3, model=str(styled_model_dir), steps=10, seed=5, device="cpu", key=None, grid=None)
    low = generate(GenerateOptions(**{**options.__dict__, "style": "low"}), tmp_path / "low")
    high = generate(GenerateOptions(**{**options.__dict__, "style": "high"}), tmp_path / "high")
    assert np.mean([p for path in low for p in _pitches(path)]) + 12 < np.mean([p for h in high for p in _pitches(h)])
    record = json.loads((tmp_path / "high" / "samples.json").read_text())
    assert record["options"]["style"] == "high" and {f["style"] for f in record["files"]} == {"high"}
    mixed = generate(GenerateOptions(**{**options.__dict__, "n": 12}), tmp_path / "mix")
    styles = [f["style"] for f in json.loads((tmp_path / "mix" / "samples.json").read_text())["files"]]
    assert styles == [STYLES.names[pick_style(STYLES, "mix", 5 + i)] for i in range(12)] and len(set(styles)) > 1
    assert len(mixed) == 12


def test_a_piece_made_again_from_its_record_has_the_same_style(styled_model_dir: Path, tmp_path: Path) -> None:
    generate(GenerateOptions(n=4, model=str(styled_model_dir), steps=6, seed=9, device="cpu"), tmp_path / "a")
    assert main(["generate", str(tmp_path / "b"), "--from", str(tmp_path / "a" / "samples.json")]) == 0
    for i in range(1, 5):
        assert (tmp_path / "a" / f"sample-{i}.mid").read_bytes() == (tmp_path / "b" / f"sample-{i}.mid").read_bytes()
    first = json.loads((tmp_path / "a" / "samples.json").read_text())["files"]
    assert first == json.loads((tmp_path / "b" / "samples.json").read_text())["files"]


def test_an_unknown_style_is_refused_before_anything_is_written(
    styled_model_dir: Path, tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    assert main(["generate", str(out), "--model", str(styled_model_dir), "--style", "jazz", "--device", "cpu"]) == 2
    assert "unknown style 'jazz'; this model knows low, middle, high (or mix, none)" in caplog.text
    assert not out.exists() or not any(out.iterdir())
    assert main(["generate", str(out), "--model", str(tiny_model_dir), "--style", "low", "--device", "cpu"]) == 2
    assert "not conditioned on styles" in caplog.text
    assert main(["generate", str(out), "--model", str(tiny_model_dir), "--style", "none", "--n", "1",
                 "--steps", "4", "--device", "cpu"]) == 0  # fmt: skip


def test_the_daemons_phrases_take_the_style_setting(styled: Denoiser) -> None:
    source = ModelPhraseSource(styled)
    request = PhraseRequest(length_beats=8.0, steps=10, seed=3, scale="0,1,2,3,4,5,6,7,8,9,10,11", grid=None)
    low = source.generate(PhraseRequest(**{**request.__dict__, "style": "low"}), None)
    high = source.generate(PhraseRequest(**{**request.__dict__, "style": "high"}), None)
    assert np.mean([n.pitch for n in low.notes]) + 12 < np.mean([n.pitch for n in high.notes])
    with pytest.raises(BridgeError, match="unknown style 'jazz'"):
        source.check_style("jazz")
    ArpeggioSource().check_style("mix")
    with pytest.raises(BridgeError, match="not conditioned on styles"):
        ArpeggioSource().check_style("low")


def test_a_card_whose_graph_lacks_the_style_input_is_refused(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "m")  # a graph without the style input ...
    card = json.loads((folder / "model.json").read_text())
    card["styles"] = STYLES.to_dict()  # ... under a card that promises one
    card["inputs"]["style"] = {"shape": [None], "dtype": "int32"}
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(BridgeError, match="style is None in the graph"):
        load_model(folder, device="cpu")


def test_a_styled_guide_hears_the_style_the_model_was_given(styled_model_dir: Path, tmp_path: Path) -> None:
    """Autoguidance compares two predictions of the same condition: the guide gets each sample's style too."""
    model = write_tiny_model(tmp_path / "model", name="m", styles=STYLES, style_means=STYLE_MEANS)
    guide_means = [(m[0] + 0.2, 0.1, 0.0) for m in STYLE_MEANS]  # a weaker model: each style's mean off by 0.2
    guide = write_tiny_model(tmp_path / "guide", name="g", styles=STYLES, style_means=guide_means)
    attach_guide(model, guide, 1.0)
    guided, alone, weak = load_model(model, "cpu"), load_model(model, "cpu", guidance=0), load_model(guide, "cpu")
    x, t = np.random.default_rng(0).standard_normal((3, 1, 16, 3), dtype=np.float32), np.full(3, 300.0)
    for denoiser in (guided, alone, weak):
        denoiser.set_style(np.array([0, 2, 3]))
    expected = 2.0 * alone(x, t) - weak(x, t)
    np.testing.assert_allclose(guided(x, t), expected, rtol=1e-5, atol=1e-6)
    weak.set_style(3)  # had the guide stayed at "no style", the result would differ
    assert np.abs(guided(x, t) - (2.0 * alone(x, t) - weak(x, t))).max() > 1e-3


def test_a_styled_guide_needs_the_models_styles(styled_model_dir: Path, tmp_path: Path) -> None:
    plain = write_tiny_model(tmp_path / "plain", name="plain")
    other = Styles(("a", "b", "c"), (0.2, 0.3, 0.5))
    for name, model in (("unstyled", plain), ("other", write_tiny_model(tmp_path / "o", styles=other,
                                                                        style_means=STYLE_MEANS))):  # fmt: skip
        with pytest.raises(BridgeError, match="conditioned on the styles low, middle, high"):
            attach_guide(model, styled_model_dir, 1.0)
        assert not (model / "guide").exists(), name
    attach_guide(write_tiny_model(tmp_path / "s", styles=STYLES, style_means=STYLE_MEANS), plain, 1.0)  # unstyled: fine
