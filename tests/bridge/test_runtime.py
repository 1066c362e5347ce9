"""Loading a model folder: resolution by path or name, verification, device choice, input checks."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tiny_model import TINY_MEAN, TINY_STD, write_tiny_model

import weights
from bridge import runtime
from bridge.card import CARD_FILE, read_card, sha256_file
from bridge.errors import BridgeError
from bridge.runtime import CudaCheck, Denoiser, load_model, physical_cores, session_options


def exact_eps(denoiser: Denoiser, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """What the tiny model must compute (see tiny_model.py), in float64."""
    ab = denoiser.card.schedule.alpha_bars[t.astype(int)].reshape(-1, 1, 1, 1)
    mean, var = np.asarray(TINY_MEAN), np.square(TINY_STD)
    return np.sqrt(1 - ab) * (x - np.sqrt(ab) * mean) / (ab * var + 1 - ab)


def test_denoiser_computes_the_graph(tiny_denoiser: Denoiser) -> None:
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        x = rng.standard_normal((batch, 1, 16, 3)).astype(np.float32)
        t = rng.integers(0, 1000, batch).astype(np.float32)
        out = tiny_denoiser(x, t)
        assert out.shape == x.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, exact_eps(tiny_denoiser, x, t), rtol=1e-4, atol=1e-5)


def test_results_are_not_overwritten_by_the_next_call(tiny_denoiser: Denoiser) -> None:
    x = np.zeros((2, 1, 16, 3), np.float32)
    first = tiny_denoiser(x, np.full(2, 10, np.float32))
    kept = first.copy()
    tiny_denoiser(x + 1, np.full(2, 900, np.float32))
    np.testing.assert_array_equal(first, kept)


def test_denoiser_may_be_shared_between_threads(tiny_denoiser: Denoiser) -> None:
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((3, 1, 16, 3)).astype(np.float32) for _ in range(8)]
    t = np.full(3, 400, np.float32)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda x: tiny_denoiser(x, t), xs))
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(out, exact_eps(tiny_denoiser, x, t), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("sample_shape", "timestep_shape", "timestep", "message"),
    [
        ((2, 1, 32, 3), (2,), 0, r"takes samples of shape \(batch, 1, 16, 3\), got \(2, 1, 32, 3\)"),
        ((2, 16, 3), (2,), 0, "takes samples of shape"),
        ((0, 1, 16, 3), (0,), 0, "takes samples of shape"),
        ((2, 1, 16, 3), (3,), 0, r"timestep must have shape \(2,\)"),
        ((2, 1, 16, 3), (2,), 1000, r"timesteps must lie in 0 \.\. 999"),
        ((2, 1, 16, 3), (2,), -1, r"timesteps must lie in 0 \.\. 999"),
    ],
)
def test_denoiser_refuses_wrong_inputs(
    tiny_denoiser: Denoiser, sample_shape: tuple, timestep_shape: tuple, timestep: int, message: str
) -> None:
    with pytest.raises(BridgeError, match=message):
        tiny_denoiser(np.zeros(sample_shape, np.float32), np.full(timestep_shape, timestep, np.float32))


def test_load_by_name_and_default_from_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_model(tmp_path / "default", name="default")
    write_tiny_model(tmp_path / "other", name="other")
    monkeypatch.setattr(weights, "model_dir", lambda name: tmp_path / name)
    monkeypatch.setattr(weights, "default_model_dir", lambda: tmp_path / "default")
    monkeypatch.chdir(tmp_path.parent)
    assert load_model("other", device="cpu").card.name == "other"
    assert load_model(None, device="cpu").card.name == "default"


def test_load_by_path(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    denoiser = load_model(str(tiny_model_dir), device="cpu")
    assert denoiser.model_dir == tiny_model_dir and denoiser.device == "cpu" and denoiser.length == 16
    monkeypatch.chdir(tiny_model_dir.parent)
    assert load_model(tiny_model_dir.name, device="cpu").model_dir == Path(tiny_model_dir.name)


def test_weights_package_finds_its_folders() -> None:
    root = Path(weights.__file__).parent
    assert weights.model_dir("abc") == root / "abc"
    assert weights.default_model_dir() == root / weights.DEFAULT_MODEL
    assert all((root / name / CARD_FILE).is_file() for name in weights.model_names())


def test_refuses_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(BridgeError, match=r"no model folder at .*shipped"):
        load_model(str(tmp_path / "nothing"), device="cpu")
    with pytest.raises(BridgeError, match="no model folder at"):
        load_model("no-such-model-name", device="cpu")


def test_refuses_a_changed_model(tmp_path: Path) -> None:
    directory = write_tiny_model(tmp_path / "m")
    with (directory / "model.onnx").open("ab") as f:
        f.write(b"x")
    with pytest.raises(BridgeError, match="does not match the checksum"):
        load_model(directory, device="cpu")


def test_refuses_a_graph_that_differs_from_its_card(tmp_path: Path) -> None:
    directory = write_tiny_model(tmp_path / "m")
    data = json.loads((directory / CARD_FILE).read_text())
    data["length"] = 32
    for spec in (data["inputs"]["sample"], data["outputs"]["prediction"]):
        spec["shape"][2] = 32
    (directory / CARD_FILE).write_text(json.dumps(data))
    read_card(directory)  # the card alone is fine
    with pytest.raises(BridgeError, match="does not match its card: sample"):
        load_model(directory, device="cpu")


def test_refuses_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    directory = write_tiny_model(tmp_path / "m")
    (directory / "model.onnx").write_bytes(b"not a model")
    data = json.loads((directory / CARD_FILE).read_text())
    data["sha256"] = sha256_file(directory / "model.onnx")
    (directory / CARD_FILE).write_text(json.dumps(data))
    with pytest.raises(BridgeError, match="onnxruntime cannot load"):
        load_model(directory, device="cpu")


def test_refuses_an_unknown_device(tiny_model_dir: Path) -> None:
    with pytest.raises(BridgeError, match="device 'tpu' is unknown"):
        load_model(tiny_model_dir, device="tpu")


def test_cuda_when_unusable_is_a_clear_error(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "check_cuda", lambda: CudaCheck(False, "libcublas is missing"))
    with pytest.raises(BridgeError, match=r"--device cuda.*libcublas is missing.*--device cpu"):
        load_model(tiny_model_dir, device="cuda")


def test_auto_says_in_one_quiet_line_which_device_runs(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.runtime"):
        denoiser = load_model(tiny_model_dir, device="auto")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 1 and "'tiny'" in lines[0]
    assert ("runs on CUDA" if denoiser.device == "cuda" else "runs on CPU") in lines[0]
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # none of onnxruntime's CUDA load errors


def test_a_cuda_session_that_falls_back_is_noticed_quietly(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Libraries loadable but no GPU: onnxruntime quietly falls back to CPU; auto says so, cuda refuses."""
    if runtime.check_cuda().usable:
        pytest.skip("CUDA is usable here")
    monkeypatch.setattr(runtime, "check_cuda", lambda: CudaCheck(True))
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(runtime.ort, "get_available_providers", lambda: providers)
    with caplog.at_level(logging.INFO, logger="bridge.runtime"):
        assert load_model(tiny_model_dir, device="auto").device == "cpu"
    assert "CUDA not used: onnxruntime could not start a CUDA session" in caplog.records[-1].getMessage()
    assert capfd.readouterr() == ("", "")
    with pytest.raises(BridgeError, match="could not start a CUDA session"):
        load_model(tiny_model_dir, device="cuda")


def test_check_cuda_agrees_with_auto(tiny_model_dir: Path) -> None:
    """Where CUDA is not usable (these test machines), auto runs on CPU and says why if CUDA was listed."""
    check = runtime.check_cuda()
    if check.usable:
        pytest.skip("CUDA is usable here")
    assert load_model(tiny_model_dir, device="auto").device == "cpu"
    assert check.reason


def test_session_options_are_tuned_for_latency() -> None:
    options = session_options()
    assert options.intra_op_num_threads == physical_cores() >= 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert session_options(3).intra_op_num_threads == 3


def test_the_runtime_never_imports_tensorflow() -> None:
    code = (
        "import sys; import bridge.runtime, bridge.samplers, bridge.constraints, bridge.continuation, "
        "bridge.decoding, bridge.card; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_precision_picks_the_graph_per_device(tiny_model_dir: Path) -> None:
    """auto: the card's fp16 variant on CUDA only; a model without one runs fp32 everywhere, and fp16 is refused."""
    default = weights.model_dir("default")
    card = read_card(default)
    files = runtime.model_files(card, default, "auto")
    assert files == {"cpu": default / "model.onnx", "cuda": default / card.variants["fp16"]["model_file"]}
    assert set(runtime.model_files(card, default, "fp16").values()) == {files["cuda"]}
    assert set(runtime.model_files(card, default, "fp32").values()) == {files["cpu"]}
    tiny = read_card(tiny_model_dir)
    assert set(runtime.model_files(tiny, tiny_model_dir, "auto").values()) == {tiny_model_dir / "model.onnx"}
    with pytest.raises(BridgeError, match=r"no fp16 variant.*--fp16"):
        load_model(tiny_model_dir, device="cpu", precision="fp16")
    with pytest.raises(BridgeError, match="precision 'fp8' is unknown"):
        load_model(tiny_model_dir, device="cpu", precision="fp8")


def test_fp16_runs_close_to_fp32_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    x = np.random.default_rng(0).standard_normal((2, 1, 128, 3)).astype(np.float32)
    t = np.array([10.0, 500.0], np.float32)
    full = load_model("default", device="cpu", guidance=0)
    with caplog.at_level(logging.INFO, logger="bridge.runtime"):
        half = load_model("default", device="cpu", precision="fp16", guidance=0)
    assert (full.precision, half.precision) == ("fp32", "fp16")
    assert any("in fp16" in record.getMessage() for record in caplog.records)
    difference = np.abs(half(x, t) - full(x, t)).max()
    exported = full.card.variants["fp16"]["parity_max_abs"]  # type: ignore[index]
    assert 0 < difference < 2 * exported  # a different graph, within fp16 rounding of the parity measured at export


def test_refuses_a_changed_fp16_variant(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(weights.model_dir("default"), folder)
    variant = folder / read_card(folder).variants["fp16"]["model_file"]
    variant.write_bytes(variant.read_bytes()[:-1] + b"\0")
    assert load_model(folder, device="cpu").precision == "fp32"  # the fp32 graph is intact
    with pytest.raises(BridgeError, match=r"model\.fp16\.onnx does not match the checksum"):
        load_model(folder, device="cpu", precision="fp16")
