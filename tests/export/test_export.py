"""Export: a tiny trained run -> model folder; parity, card, causality of the ONNX graph, refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from bridge.card import read_card
from bridge.chords import ChordVocabulary
from bridge.codec import FeatureStats
from bridge.constraints import PitchConstraint
from bridge.errors import BridgeError
from bridge.note_lengths import NoteLengths
from bridge.onset_gaps import OnsetGaps
from bridge.runtime import load_model
from bridge.samplers import make_sampler, sample
from bridge.styles import Styles
from export import parity
from export.errors import ExportError
from export.graph_fusion import op_counts, ort_optimized
from export.model_dir import FP16_FILE, ExportSource, export_model, export_run
from export.onnx_graph import keras_to_onnx
from tests.training.conftest import write_dataset
from training.config import load_config
from training.datafile import load_dataset
from training.run import load_ema_network, train
from training.unet import build_unet

TINY = load_config("tiny")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained 12 steps and exported with its fp16 variant."""
    root = tmp_path_factory.mktemp("export")
    data = write_dataset(root / "data.npz")
    train(TINY.replace_train(steps=12), data, root / "run")
    export_run(root / "run", root / "model", fp16=True)
    return root


def test_card_describes_the_run(exported: Path) -> None:
    card = read_card(exported / "model")  # verifies the checksum too
    assert card.name == "model" and card.length == TINY.model.length
    assert card.training["steps"] == 12 and card.training["config"]["name"] == "tiny"
    assert card.schedule == TINY.diffusion.noise_schedule() and card.prediction == "epsilon"
    assert 0 <= card.parity["max_abs"] <= parity.MAX_ABS
    assert card.parameters == build_unet(TINY.model).count_params()
    run_stats = json.loads((exported / "run" / "run.json").read_text())["dataset"]["stats"]
    assert card.stats.to_dict() == run_stats
    assert card.variants and card.variants["fp16"]["model_file"] == FP16_FILE
    assert card.variants["fp16"]["parity_max_abs"] < 5e-2
    data = load_dataset(exported / "data.npz")
    assert card.note_lengths == NoteLengths.fit(data.train)  # the corpus prior
    assert card.chords == ChordVocabulary.fit(data.train, data.stats.encoding)  # the corpus chords
    assert card.onset_gaps == OnsetGaps.fit(data.train)  # the corpus's gaps by beat phase
    onnx.checker.check_model(str(exported / "model" / "model.onnx"), full_check=True)


def test_the_fp16_graph_keeps_its_sines_in_float32(exported: Path) -> None:
    """Sines of large angles (the time embedding's, the pitch chroma's) would be noise in fp16."""
    half = onnx.shape_inference.infer_shapes(onnx.load(exported / "model" / FP16_FILE))
    types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
    sines = [n for n in half.graph.node if n.op_type in ("Sin", "Cos")]
    assert sines and all(types[n.input[0]] == types[n.output[0]] == onnx.TensorProto.FLOAT for n in sines)
    assert onnx.TensorProto.FLOAT16 in types.values()  # the rest is half precision


def test_fine_tuned_log_time_run_exports_and_generates(exported: Path) -> None:
    """A run fine-tuned (--init-from) on a log-time dataset: the card keeps both, and the bridge decodes
    its samples with the card's time encoding onto the grid."""
    data = write_dataset(exported / "log.npz", time_encoding="log")
    train(TINY.replace_train(steps=3), data, exported / "tuned", init_from=exported / "run")
    card = export_run(exported / "tuned", exported / "tuned-model")
    assert card.stats.time_encoding == "log"
    assert card.training["init_from"] == {"run": str(exported / "run"), "steps": 12}
    denoiser = load_model(exported / "tuned-model", device="cpu")
    x = sample(denoiser, make_sampler("dpm++", card), 2, 6, seed=0, constraint=PitchConstraint(grid=0.25))
    beats = card.stats.unscale(x)[..., 1:]
    np.testing.assert_allclose(beats * 4, np.rint(beats * 4), atol=1e-6)
    assert beats[..., 0].min() >= 0.25 - 1e-6


def test_the_corpus_priors_come_from_the_dataset_given_or_are_left_out(
    exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run trained elsewhere: run.json's dataset path is not here; --data gives it, else no prior (and a warning)."""
    moved = tmp_path / "moved"
    shutil.copytree(exported / "run", moved)
    meta = json.loads((moved / "run.json").read_text())
    meta["dataset"]["path"] = "/nowhere/data.npz"
    (moved / "run.json").write_text(json.dumps(meta))
    card = export_run(moved, tmp_path / "without")
    assert card.note_lengths is None and card.chords is None and card.onset_gaps is None and "--data" in caplog.text
    other = write_dataset(tmp_path / "other.npz", seed=3)
    card = export_run(moved, tmp_path / "with", data=other)
    assert card.note_lengths == NoteLengths.fit(load_dataset(other).train)
    assert card.chords == ChordVocabulary.fit(load_dataset(other).train, "log")
    assert card.onset_gaps == OnsetGaps.fit(load_dataset(other).train)


def test_onnx_graph_is_causal(exported: Path) -> None:
    """Changing note p leaves every output before p bit-identical, for p at the start, middle and end."""
    denoiser = load_model(exported / "model", device="cpu")
    length = denoiser.length
    rng = np.random.default_rng(3)
    base = rng.standard_normal((1, 1, length, 3)).astype(np.float32)
    t = np.array([TINY.diffusion.steps // 2], np.float32)
    reference = denoiser(base, t)
    for p in (0, length // 2, length - 1):
        changed = base.copy()
        changed[:, :, p] += 5.0
        out = denoiser(changed, t)
        np.testing.assert_array_equal(out[:, :, :p], reference[:, :, :p])
        assert not np.array_equal(out[:, :, p:], reference[:, :, p:])


def test_exported_graph_is_lean(exported: Path) -> None:
    """The export's graph pass ran: one LayerNormalization per layer norm, no shape arithmetic, GELUs that
    onnxruntime fuses, far fewer nodes than tf2onnx wrote (as onnxruntime runs them), and the same outputs."""
    network, _, _ = load_ema_network(exported / "run")
    plain = keras_to_onnx(network, TINY.model.length, lean=False)
    graph = onnx.load(str(exported / "model" / "model.onnx"))
    ops, plain_ops = op_counts(graph), op_counts(plain)
    norms = plain_ops["Sqrt"]  # tf2onnx writes one Sqrt per layer norm, and none elsewhere in this network
    assert norms > 0 and ops["LayerNormalization"] == norms
    assert ops["ReduceMean"] == plain_ops["ReduceMean"] - 2 * norms  # the pooling means stay
    assert not ops.keys() & {"Sqrt", "Reciprocal", "Neg", "Sub", "Shape", "Gather", "ReduceProd"}
    run, plain_run = op_counts(ort_optimized(graph)), op_counts(ort_optimized(plain))
    assert "Erf" not in run and run["Gelu"] + run["BiasGelu"] == plain_ops["Erf"] > 0
    assert run.total() < 0.5 * plain_run.total()
    check = parity.measure(parity.onnx_runner(plain.SerializeToString()), parity.onnx_runner(graph.SerializeToString()),
                           TINY.model.length, TINY.diffusion.steps)  # fmt: skip
    assert check.max_abs <= 1e-5
    half = op_counts(onnx.load(str(exported / "model" / FP16_FILE)))
    assert half["LayerNormalization"] == norms


def test_parity_failure_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    network = build_unet(TINY.model)
    source = ExportSource(network, TINY.model.length, TINY.diffusion.noise_schedule(), "epsilon",
                          _stats())  # fmt: skip
    monkeypatch.setattr(parity, "MAX_ABS", -1.0)  # no graph can pass: the refusal path must hold
    with pytest.raises(ExportError, match="differs from the Keras network"):
        export_model(source, tmp_path / "out", name="x")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bridge_refuses_a_changed_model(exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in (exported / "model").iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BridgeError, match="checksum"):
        load_model(copy, device="cpu")


def test_step_must_exist(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no checkpoint at step 7"):
        export_run(exported / "run", tmp_path / "m", step=7)


def test_pitch_class_and_onset_inputs_export_with_parity(tmp_path: Path) -> None:
    """The chroma, interval and onset-phase inputs (sin/cos of the pitch, of the steps back and of the
    summed gaps) convert to ONNX and match Keras."""
    stats = dataclasses.replace(_stats(), pitch_gain=3.0)
    model = dataclasses.replace(TINY.model, chroma_semitone=stats.semitone, interval_lags=(1, 3),
                                delta_high=float(stats.high[2]), beat_periods=(0.5, 1.0, 4.0))  # fmt: skip
    source = ExportSource(build_unet(model), model.length, TINY.diffusion.noise_schedule(), "epsilon", stats)
    card = export_model(source, tmp_path / "chroma", name="chroma")
    assert card.parity["max_abs"] <= parity.MAX_ABS and card.stats.pitch_gain == 3.0
    ops = {node.op_type for node in onnx.load(tmp_path / "chroma" / "model.onnx").graph.node}
    assert {"Sin", "Cos", "CumSum"} <= ops


def test_a_styled_network_exports_with_its_styles_and_parity_for_each(tmp_path: Path) -> None:
    """The style input (an int32 Gather of an embedding) converts; every style, "no style" too, matches Keras,
    and the runtime feeds it."""
    model = dataclasses.replace(TINY.model, styles=2)
    styles = Styles(("bach", "haydn"), (0.75, 0.25))
    network = build_unet(model)
    table = network.get_layer("style_embedding")
    table.set_weights([np.random.default_rng(0).standard_normal(table.get_weights()[0].shape).astype("float32")])
    source = ExportSource(network, model.length, TINY.diffusion.noise_schedule(), "epsilon", _stats(), styles=styles)
    card = export_model(source, tmp_path / "styled", name="styled", fp16=True)
    assert card.styles == styles and card.inputs["style"].dtype == "int32"
    assert card.parity["max_abs"] <= parity.MAX_ABS and card.variants["fp16"]["parity_max_abs"] < 5e-2
    denoiser = load_model(tmp_path / "styled", device="cpu")
    x, t = np.random.default_rng(1).standard_normal((3, 1, model.length, 3)).astype("float32"), np.full(3, 50.0)
    denoiser.set_style(np.array([0, 1, 2]))
    keras_out = np.asarray(network([x, t.astype("float32"), np.array([0, 1, 2], "int32")]))
    np.testing.assert_allclose(denoiser(x, t), keras_out, atol=parity.MAX_ABS)
    assert np.abs(keras_out[0] - keras_out[1]).max() > 1e-3  # the styles differ


def test_styles_the_network_does_not_take_are_refused(tmp_path: Path) -> None:
    source = ExportSource(build_unet(TINY.model), TINY.model.length, TINY.diffusion.noise_schedule(), "epsilon",
                          _stats(), styles=Styles(("a", "b"), (0.5, 0.5)))  # fmt: skip
    with pytest.raises(ExportError, match="the network takes 2 inputs but the run records 2 styles"):
        export_model(source, tmp_path / "m", name="m")
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_seed_preset_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's 12M-parameter network (random weights) converts with parity; size and parity printed."""
    seed = load_config("seed")
    source = ExportSource(build_unet(seed.model), seed.model.length, seed.diffusion.noise_schedule(), "epsilon",
                          _stats())  # fmt: skip
    card = export_model(source, tmp_path / "seed", name="seed")
    size = (tmp_path / "seed" / "model.onnx").stat().st_size
    with capsys.disabled():
        print(f"\nseed preset: {card.parameters} parameters, model.onnx {size / 1e6:.1f} MB, "
              f"parity max abs {card.parity['max_abs']:.2e}")  # fmt: skip
    assert card.parity["max_abs"] <= parity.MAX_ABS and size > 4 * 10e6


def _stats() -> FeatureStats:
    return FeatureStats((21.0, 0.0, 0.0), (108.0, 8.0, 8.0))
