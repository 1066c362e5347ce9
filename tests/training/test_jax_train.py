"""Training under KERAS_BACKEND=jax (GPU machines without TensorFlow): the weights come back into TF exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.run import load_ema_network

ROOT = Path(__file__).resolve().parents[2]
PREDICT = """
import sys, numpy as np
from training.jax_train import load_jax_run
network, config, _ = load_jax_run(sys.argv[1])
x = np.random.default_rng(0).standard_normal((2, 1, config.model.length, 3)).astype("float32")
np.save(sys.argv[2], np.asarray(network([x, np.array([3.0, 70.0], "float32")])))
"""


def _jax(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _predict(network: object, length: int) -> np.ndarray:
    """``network``'s prediction on PREDICT's input (two pieces at steps 3 and 70), made in this process."""
    x = np.random.default_rng(0).standard_normal((2, 1, length, 3)).astype("float32")
    return np.asarray(network([x, np.array([3.0, 70.0], "float32")]))


@pytest.mark.parametrize("pitch_gain", [1.0, 3.0])
def test_jax_transposition_unit_is_one_scaled_semitone(tmp_path: Path, pitch_gain: float) -> None:
    """The JAX step shifts scaled pitch by multiples of this unit; it must be one semitone under any gain."""
    from tests.training.conftest import write_dataset
    from training.datafile import load_dataset
    from training.jax_train import _scaled

    data = load_dataset(write_dataset(tmp_path / "d.npz", pitch_gain=pitch_gain))
    pitch = np.array([[[60.0, 1.0, 0.0], [61.0, 1.0, 0.0]]])
    assert data.stats.semitone == pytest.approx(float(np.diff(_scaled(data, pitch)[0, 0, :, 0])[0]), rel=1e-5)


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("jax", reason="the JAX trainer needs the extra: pip install '.[jax]'")
    from tests.training.conftest import write_dataset

    root = tmp_path_factory.mktemp("jax")
    data = write_dataset(root / "data.npz")
    done = _jax("-m", "training.jax_train", "--config", "tiny", "--data", str(data), "--run", str(root / "run"),
                "--steps", "40", "--save-every", "1000")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "run"


def test_run_record_and_heldout_loss(jax_run: Path) -> None:
    record = json.loads((jax_run / "run.json").read_text())
    assert record["backend"] == "jax" and record["steps"] == 40 and record["config"]["name"] == "tiny"
    (step, loss), *_ = record["losses"]["heldout"][-1:]
    assert step == 40 and 0 < loss < 1.0  # better than predicting no noise at all
    assert (jax_run / record["weights"]).is_file()


def test_weights_load_into_tensorflow_unchanged(jax_run: Path, tmp_path: Path) -> None:
    done = _jax("-c", PREDICT, str(jax_run), str(tmp_path / "jax.npy"))
    assert done.returncode == 0, done.stderr[-2000:]
    network, config, meta = load_ema_network(jax_run)
    np.testing.assert_allclose(_predict(network, config.model.length), np.load(tmp_path / "jax.npy"), atol=1e-4)
    assert meta["checkpoint_step"] == 40


def test_init_from_continues_where_the_run_ended(jax_run: Path, tmp_path: Path) -> None:
    """A lease too short to finish a run: the next one starts from its EMA weights, not from scratch."""
    data = jax_run.parent / "data.npz"
    done = _jax("-m", "training.jax_train", "--config", "tiny", "--data", str(data), "--run", str(tmp_path / "more"),
                "--steps", "1", "--init-from", str(jax_run))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    source = json.loads((jax_run / "run.json").read_text())
    record = json.loads((tmp_path / "more" / "run.json").read_text())
    assert record["init_from"] == {"run": str(jax_run), "steps": 40}
    (_, before), (_, after) = source["losses"]["heldout"][-1], record["losses"]["heldout"][-1]
    assert after == pytest.approx(before, rel=0.05)  # one step at most nudges the same weights


def test_init_from_another_network_is_refused_before_anything_is_written(jax_run: Path, tmp_path: Path) -> None:
    config = tmp_path / "wider.toml"
    config.write_text((ROOT / "training" / "presets" / "tiny.toml").read_text().replace("heads = 2", "heads = 1"))
    done = _jax("-m", "training.jax_train", "--config", str(config), "--data", str(jax_run.parent / "data.npz"),
                "--run", str(tmp_path / "other"), "--steps", "1", "--init-from", str(jax_run))  # fmt: skip
    assert done.returncode != 0 and "another network" in done.stderr
    assert not (tmp_path / "other").exists()


STYLED_PREDICT = """
import sys, numpy as np
from training.jax_train import load_jax_run
network, config, _ = load_jax_run(sys.argv[1])
x = np.random.default_rng(0).standard_normal((3, 1, config.model.length, 3)).astype("float32")
np.save(sys.argv[2], np.asarray(network([x, np.full(3, 70.0, "float32"), np.array([0, 1, 2], "int32")])))
"""


def _train_and_predict(folder: Path, config: Path, data: Path, steps: int, script: str) -> tuple[np.ndarray, Path]:
    """A JAX run of ``config`` on ``data`` in ``folder/run``, and its network's prediction by ``script``
    (PREDICT or STYLED_PREDICT), made under JAX."""
    run = folder / "run"
    done = _jax("-m", "training.jax_train", "--config", str(config), "--data", str(data), "--run", str(run),
                "--steps", str(steps), "--save-every", "1000")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    done = _jax("-c", script, str(run), str(folder / "jax.npy"))
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(folder / "jax.npy"), run


def _tiny_with(folder: Path, model_lines: str) -> Path:
    """The tiny preset with ``model_lines`` added to its ``[model]`` table."""
    config = folder / "tiny-with.toml"
    tiny = (ROOT / "training" / "presets" / "tiny.toml").read_text()
    config.write_text(tiny.replace("[model]", f"[model]\n{model_lines}"))
    return config


def test_a_styled_network_trains_and_its_weights_load_into_tensorflow(tmp_path: Path) -> None:
    """model.styles: the JAX trainer feeds each segment's style (or "no style"), the embedding learns, and
    the weights give TensorFlow the same prediction for each style."""
    pytest.importorskip("jax", reason="the JAX trainer needs the extra: pip install '.[jax]'")
    from tests.training.conftest import write_dataset

    data = write_dataset(tmp_path / "data.npz", styles=2)
    config = _tiny_with(tmp_path, "styles = 2")
    theirs, run = _train_and_predict(tmp_path, config, data, 30, STYLED_PREDICT)
    network, loaded, _ = load_ema_network(run)
    assert loaded.model.styles == 2
    x = np.random.default_rng(0).standard_normal((3, 1, loaded.model.length, 3)).astype("float32")
    ours = np.asarray(network([x, np.full(3, 70.0, "float32"), np.array([0, 1, 2], "int32")]))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert np.abs(ours[0] - ours[1]).max() > 1e-4 and np.abs(ours[0] - ours[2]).max() > 1e-4  # styles differ


def test_a_styled_network_on_a_dataset_without_styles_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("jax", reason="the JAX trainer needs the extra: pip install '.[jax]'")
    from tests.training.conftest import write_dataset

    config = _tiny_with(tmp_path, "styles = 2")
    done = _jax("-m", "training.jax_train", "--config", str(config), "--data", str(write_dataset(tmp_path / "d.npz")),
                "--run", str(tmp_path / "run"), "--steps", "1")  # fmt: skip
    assert done.returncode == 2 and "model.styles = 2 but" in done.stderr and "no styles" in done.stderr
    assert not (tmp_path / "run").exists()


def test_interval_and_onset_inputs_train_under_jax_and_load_into_tensorflow(tmp_path: Path) -> None:
    """model.interval_lags (with the chroma input) and model.beat_periods build from keras.ops alone: a JAX
    run's weights give TensorFlow the same prediction, so a GPU lease can train them."""
    pytest.importorskip("jax", reason="the JAX trainer needs the extra: pip install '.[jax]'")
    from tests.training.conftest import write_dataset
    from training.datafile import load_dataset

    data = write_dataset(tmp_path / "data.npz", pitch_gain=3.0)
    stats = load_dataset(data).stats
    config = _tiny_with(tmp_path, f"chroma_semitone = {stats.semitone!r}\ninterval_lags = [1, 2]\n"
                                  f"delta_high = {stats.high[2]!r}\nbeat_periods = [0.5, 1, 4]")  # fmt: skip
    theirs, run = _train_and_predict(tmp_path, config, data, 20, PREDICT)
    network, loaded, _ = load_ema_network(run)
    assert loaded.model.interval_lags == (1, 2) and loaded.model.beat_periods == (0.5, 1.0, 4.0)
    np.testing.assert_allclose(_predict(network, loaded.model.length), theirs, atol=1e-4)
