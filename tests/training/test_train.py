"""Training end to end on the tiny preset: the loss falls, and runs resume exactly."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from bridge.codec import FeatureStats
from bridge.midifile import read_midi
from tests.training.conftest import write_dataset
from training.config import load_config
from training.datafile import load_dataset, save_dataset
from training.diffusion import DiffusionModel
from training.errors import TrainingError
from training.pipeline import heldout_batches, train_batches
from training.run import build_model, load_ema_network, make_checkpoint, read_run, train, write_samples

ROOT = Path(__file__).resolve().parents[2]
TINY = load_config("tiny")
STYLED = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, styles=2))


def _state(run_dir: Path) -> tuple[int, list[np.ndarray]]:
    """Step and every checkpointed value (network, EMA, Adam) of a run's latest checkpoint."""
    model, optimizer = build_model(TINY)
    make_checkpoint(model, optimizer).restore(tf.train.latest_checkpoint(run_dir / "checkpoints")).assert_consumed()
    values = [v.numpy() for v in [*model.network.weights, *model.ema_weights, *optimizer.variables]]
    return int(optimizer.iterations.numpy()), values


def _heldout(model: DiffusionModel, data_path: Path) -> float:
    batches = heldout_batches(load_dataset(data_path), 16, 1)
    return float(np.mean([float(model.test_step(b)["loss"]) for b in batches]))


@pytest.fixture(scope="module")
def tiny_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset trained for all its steps without interruption: the reference run."""
    run_dir = tmp_path_factory.mktemp("runs") / "whole"
    meta = train(TINY, tiny_data, run_dir)
    assert meta["steps"] == TINY.train.steps and meta["git"]
    return run_dir


def test_loss_falls(tiny_run: Path, tiny_data: Path) -> None:
    initial, _ = build_model(TINY)  # the same seed gives the run's initial weights
    trained, optimizer = build_model(TINY)
    make_checkpoint(trained, optimizer).restore(tf.train.latest_checkpoint(tiny_run / "checkpoints"))
    before, after = _heldout(initial, tiny_data), _heldout(trained, tiny_data)
    assert int(optimizer.iterations.numpy()) == TINY.train.steps == 50
    assert after < 0.5 * before, (before, after)
    assert after < 0.95  # better than predicting zero noise (MSE 1)
    assert any((tiny_run / "logs").iterdir())
    heldout = read_run(tiny_run)["heldout_loss"]
    assert heldout["step"] == 50 and heldout["ema"] < 0.5 * before


def test_resume_is_exact(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Stopped at step 17 and resumed: the same weights, EMA and Adam state as the uninterrupted run."""
    train(TINY, tiny_data, tmp_path / "parts", until=17)
    assert read_run(tmp_path / "parts")["steps"] == 17
    assert _state(tmp_path / "parts")[0] == 17
    train(TINY, tiny_data, tmp_path / "parts")
    step_whole, whole = _state(tiny_run)
    step_parts, parts = _state(tmp_path / "parts")
    assert step_whole == step_parts == TINY.train.steps
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_kill_minus_9_then_resume(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    """``dmc train`` killed with SIGKILL; the same command resumes from its last checkpoint, exactly."""
    command = [sys.executable, "-m", "bridge.cli", "train", "--config", "tiny", "--data", str(tiny_data),
               "--run", str(tmp_path / "killed")]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    # The manager's "checkpoint" file is written after ckpt-10's files: until then nothing is resumable.
    while not (tmp_path / "killed" / "checkpoints" / "checkpoint").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "training never wrote its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _state(tmp_path / "killed")[0]
    assert 10 <= killed_at < TINY.train.steps
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"at step {killed_at}" in done.stderr  # "resumed ... at step N"
    for a, b in zip(_state(tiny_run)[1], _state(tmp_path / "killed")[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_from_starts_at_the_source_ema(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    """``--init-from``: a new run's step 1 is one tiny Adam step away from the source's EMA weights."""
    config = TINY.replace_train(steps=1, learning_rate=1e-6, final_learning_rate=1e-6)
    meta = train(config, tiny_data, tmp_path / "tuned", init_from=tiny_run)
    assert meta["init_from"] == {"run": str(tiny_run), "steps": TINY.train.steps}
    source, _, _ = load_ema_network(tiny_run)
    step, values = _state(tmp_path / "tuned")
    tuned = values[: len(source.weights)]
    assert step == 1
    for before, after in zip(source.weights, tuned, strict=True):
        np.testing.assert_allclose(after, before.numpy(), atol=2e-6)
    fresh = build_model(TINY)[0].network.weights  # what the run would start from without --init-from
    assert max(float(np.abs(f.numpy() - a).max()) for f, a in zip(fresh, tuned, strict=True)) > 0.01


def test_init_from_refuses_another_network(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    wider = dataclasses.replace(TINY.model, time_embedding=TINY.model.time_embedding * 2)
    other = dataclasses.replace(TINY, model=wider)
    with pytest.raises(TrainingError, match="same model table"):
        train(other, tiny_data, tmp_path / "other", init_from=tiny_run)


def test_resume_refuses_other_settings(tiny_run: Path, tiny_data: Path) -> None:
    with pytest.raises(TrainingError, match=r"train\.batch_size"):
        train(TINY.replace_train(batch_size=8), tiny_data, tiny_run)


def test_length_mismatch_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"model\.length = 128"):
        train(load_config("small"), tiny_data, tmp_path / "run")


def test_pitch_class_input_must_match_the_datasets_semitone(tmp_path: Path) -> None:
    """A chroma network reads pitch class off the scaled pitch, so its semitone must be the data's."""
    data_path = write_dataset(tmp_path / "d.npz", pitch_gain=3.0)
    semitone = load_dataset(data_path).stats.semitone
    wrong = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, chroma_semitone=semitone / 3))
    with pytest.raises(TrainingError, match=rf"chroma_semitone = {semitone / 3:g} .* is {semitone:.9g} scaled units"):
        train(wrong, data_path, tmp_path / "wrong")
    assert not (tmp_path / "wrong").exists()
    hertz = load_dataset(data_path)
    stats = {**hertz.meta["stats"], "encoding": "linear"}
    save_dataset(tmp_path / "hz.npz", dataclasses.replace(hertz, meta={**hertz.meta, "stats": stats}))
    with pytest.raises(TrainingError, match=r"needs log pitch, but .*hz\.npz stores Hz"):
        train(wrong, tmp_path / "hz.npz", tmp_path / "hz")
    right = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, chroma_semitone=semitone))
    train(right.replace_train(steps=2), data_path, tmp_path / "right")
    network = load_ema_network(tmp_path / "right")[0]
    assert network.get_layer("pitch_chroma").semitone == pytest.approx(semitone)


def test_onset_phase_input_must_match_the_datasets_longest_gap(tmp_path: Path) -> None:
    """An onset-phase network reads beats off the scaled gaps: its delta_high must be the data's, in linear time."""
    data_path = write_dataset(tmp_path / "d.npz")
    high = load_dataset(data_path).stats.high[2]
    wrong = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, delta_high=2 * high, beat_periods=(1.0,)))
    with pytest.raises(TrainingError, match=rf"delta_high = {2 * high:g} but the longest gap .* is {high:.9g} beats"):
        train(wrong, data_path, tmp_path / "wrong")
    log_time = write_dataset(tmp_path / "log.npz", time_encoding="log")
    with pytest.raises(TrainingError, match=r"gaps scaled linearly from 0 beats, but .*log\.npz has time encoding log"):
        train(wrong, log_time, tmp_path / "log")
    assert not (tmp_path / "wrong").exists() and not (tmp_path / "log").exists()
    right = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, delta_high=high, beat_periods=(1.0,)))
    train(right.replace_train(steps=2), data_path, tmp_path / "right")
    assert load_ema_network(tmp_path / "right")[0].get_layer("onset_phase").delta_high == pytest.approx(high)


def test_home_key_data_refuses_transposition(tiny_data: Path, tmp_path: Path) -> None:
    """Random shifts would undo --home-key: every segment must stay in C major / A minor."""
    data = load_dataset(tiny_data)
    stats = {**data.meta["stats"], "home_key": True}
    save_dataset(tmp_path / "home.npz", dataclasses.replace(data, meta={**data.meta, "stats": stats}))
    with pytest.raises(TrainingError, match=rf"train\.transpose = {TINY.train.transpose} would move them"):
        train(TINY, tmp_path / "home.npz", tmp_path / "run")
    assert not (tmp_path / "run").exists()
    train(TINY.replace_train(transpose=0, steps=2), tmp_path / "home.npz", tmp_path / "run")


def test_batches_follow_the_step(tiny_data: Path) -> None:
    """The batch of step k is the same whether the pipeline starts at 0 or resumes at k."""
    data = load_dataset(tiny_data)
    from_zero = list(train_batches(data, TINY.train, 0).take(12).as_numpy_iterator())
    resumed = next(iter(train_batches(data, TINY.train, 11).as_numpy_iterator()))
    for part, expected in zip(resumed, from_zero[11], strict=True):  # x0 and style
        np.testing.assert_array_equal(part, expected)
    assert not resumed[1].any()  # a dataset without styles: zeros, which an unconditioned network ignores


@pytest.mark.parametrize(("time_encoding", "pitch_gain"), [("log", 1.0), ("linear", 3.0)])
def test_batches_are_the_stats_scaling(tmp_path: Path, time_encoding: str, pitch_gain: float) -> None:
    """Training sees exactly what the card's stats make of a segment, log-encoded times and pitch gain included."""
    data = load_dataset(write_dataset(tmp_path / "d.npz", time_encoding=time_encoding, pitch_gain=pitch_gain))
    assert (data.stats.time_encoding, data.stats.pitch_gain) == (time_encoding, pitch_gain)
    x0, _, _ = next(iter(heldout_batches(data, 16, 1)))
    np.testing.assert_allclose(x0.numpy()[:, 0], data.stats.scale(data.heldout_segments[:16]), atol=1e-6)
    scaled_train = data.stats.scale(data.train)
    batch = next(iter(train_batches(data, TINY.replace_train(transpose=0).train, 0)))[0].numpy()[:, 0]
    for row in batch:
        assert np.abs(scaled_train - row).max(axis=(1, 2)).min() < 1e-6


@pytest.mark.parametrize("pitch_gain", [1.0, 3.0])
def test_transposition_shifts_whole_segments(tmp_path: Path, pitch_gain: float) -> None:
    data = load_dataset(write_dataset(tmp_path / "d.npz", pitch_gain=pitch_gain))
    batch, _ = next(iter(train_batches(data, TINY.train, 0).as_numpy_iterator()))  # (16, 1, L, 3) scaled
    features = _unscale(batch[:, 0], data.stats)
    shifts = []
    for f in features:
        match = [s for s in data.train if np.allclose(s[:, 1:], f[:, 1:], atol=1e-5)]
        assert len(match) == 1
        shift = f[:, 0] - match[0][:, 0]
        np.testing.assert_allclose(shift, np.round(shift[0]), atol=1e-3)  # one integer for the whole segment
        shifts.append(round(shift[0]))
    assert set(shifts) <= set(range(-TINY.train.transpose, TINY.train.transpose + 1)) and len(set(shifts)) > 1


def _unscale(scaled: np.ndarray, stats: FeatureStats) -> np.ndarray:
    """Inverse scaling without the clip of FeatureStats.unscale (transposed pitches may leave the range)."""
    low, high = np.asarray(stats.low), np.asarray(stats.high)
    return low + (scaled.astype(np.float64) / stats.bounds + 1.0) / 2.0 * (high - low)


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_loss_targets(prediction: str) -> None:
    """With a network that predicts zeros, the loss is the mean square of eps (or of v)."""
    diffusion = dataclasses.replace(TINY.diffusion, prediction=prediction)
    sample, timestep = keras.Input((1, 4, 3)), keras.Input(())
    zeros = keras.Model([sample, timestep], keras.layers.Rescaling(0.0)(sample))
    model = DiffusionModel(zeros, diffusion, ema_decay=0.9, seed=0)
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 2, 1, 4, 3)).astype(np.float32)
    t = np.array([3, 90], np.int32)
    ab = diffusion.noise_schedule().alpha_bars[t].reshape(-1, 1, 1, 1)
    target = eps if prediction == "epsilon" else np.sqrt(ab) * eps - np.sqrt(1 - ab) * x0
    loss = float(model.diffusion_loss(x0, eps, t, np.zeros(2, np.int32), training=False))
    np.testing.assert_allclose(loss, np.mean(target**2), rtol=1e-5)


def test_load_ema_network_and_samples(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    network, config, meta = load_ema_network(tiny_run)
    assert config == TINY and meta["checkpoint_step"] == TINY.train.steps
    model, optimizer = build_model(TINY)
    make_checkpoint(model, optimizer).restore(tf.train.latest_checkpoint(tiny_run / "checkpoints"))
    for w, e in zip(network.weights, model.ema_weights, strict=True):
        np.testing.assert_array_equal(w.numpy(), e.numpy())
    assert not np.array_equal(network.weights[0].numpy(), model.network.weights[0].numpy())
    assert load_ema_network(tiny_run, step=40)[2]["checkpoint_step"] == 40
    with pytest.raises(TrainingError, match="no checkpoint at step 3"):
        load_ema_network(tiny_run, step=3)

    write_samples(network, TINY, load_dataset(tiny_data).stats, tmp_path / "samples", 50)
    files = sorted((tmp_path / "samples").glob("*.mid"))
    assert [f.name for f in files] == ["step00000050-1.mid", "step00000050-2.mid"]
    assert 0 < len(read_midi(files[0]).notes) <= TINY.model.length


def test_low_noise_share_oversamples_the_lowest_timesteps() -> None:
    """TF and JAX trainers draw the same mix: ``share`` of the batch from the lowest steps, the rest uniform."""
    import jax

    from training.jax_train import draw_timesteps

    sample, timestep = keras.Input((1, 4, 3)), keras.Input(())
    zeros = keras.Model([sample, timestep], keras.layers.Rescaling(0.0)(sample))
    x0 = tf.zeros((4000, 1, 4, 3))
    seed = tf.constant([3, 4], tf.int64)
    steps, low = TINY.diffusion.steps, TINY.diffusion.steps // 20
    uniform = DiffusionModel(zeros, TINY.diffusion, ema_decay=0.9, seed=0)._draw(x0, seed)[1].numpy()
    mixed_model = DiffusionModel(zeros, TINY.diffusion, ema_decay=0.9, seed=0, low_noise=(0.3, low))
    mixed = mixed_model._draw(x0, seed, mixed_model.low_noise_share)[1].numpy()
    np.testing.assert_array_equal(mixed_model._draw(x0, seed)[1].numpy(), uniform)  # what test_step uses
    settings = TINY.replace_train(batch_size=4000, low_noise_share=0.3, low_noise_steps=low).train
    jax_t = np.asarray(draw_timesteps(jax.random.PRNGKey(0), settings, steps))
    assert abs(np.mean(uniform < low) - 0.05) < 0.015 and uniform.max() >= steps - 3  # low steps: 5% of all
    for t in (mixed, jax_t):
        assert abs(np.mean(t < low) - (0.3 + 0.7 * 0.05)) < 0.03 and t.max() >= steps - 3
    with pytest.raises(TrainingError, match="low_noise_share"):
        TINY.replace_train(low_noise_share=1.0)


def test_a_styled_network_trains_and_samples_without_style(tmp_path: Path) -> None:
    """model.styles: the TensorFlow trainer feeds styles to the network, in training, held-out loss and samples."""
    config = STYLED.replace_train(steps=2, heldout_every=2, sample_every=2, samples=1)
    meta = train(config, write_dataset(tmp_path / "d.npz", styles=2), tmp_path / "run")
    assert meta["steps"] == 2 and meta["dataset"]["styles"] == ["style0", "style1"]
    assert np.isfinite([meta["loss"], meta["heldout_loss"]["loss"], meta["heldout_loss"]["ema"]]).all()
    assert [f.name for f in (tmp_path / "run" / "samples").glob("*.mid")] == ["step00000002-1.mid"]


def test_batches_carry_each_segments_style(tmp_path: Path) -> None:
    data = load_dataset(write_dataset(tmp_path / "d.npz", styles=2))
    scaled_train = data.stats.scale(data.train)
    seen = []
    for x0, style in train_batches(data, STYLED.replace_train(transpose=0).train, 0).take(3).as_numpy_iterator():
        for row, s in zip(x0[:, 0], style, strict=True):
            distance = np.abs(scaled_train - row).max(axis=(1, 2))
            assert distance.min() < 1e-6
            seen.append((s, data.train_styles[distance.argmin()]))
    got, expected = np.array(seen).T
    np.testing.assert_array_equal(got, expected)
    assert set(got) == {0, 1}
    _, style, _ = next(iter(heldout_batches(data, 16, 1)))
    np.testing.assert_array_equal(style, data.heldout_styles[:16])
    assert set(style.numpy()) == {0, 1}


def _toy_network(styles: int) -> keras.Model:
    """``[sample (B, 1, 4, 3), timestep (B,)]`` (``+ [style (B,)]``) -> zeros, plus a learned offset per style."""
    sample, timestep = keras.Input((1, 4, 3)), keras.Input(())
    out = keras.layers.Dense(3, kernel_initializer="zeros")(sample)
    if not styles:
        return keras.Model([sample, timestep], out)
    style = keras.Input((), dtype="int32")
    offset = keras.layers.Embedding(styles + 1, 3, embeddings_initializer="random_normal")(style)
    return keras.Model([sample, timestep, style], out + keras.ops.reshape(offset, (-1, 1, 1, 3)))


def test_style_dropout_shows_a_share_of_segments_as_no_style() -> None:
    style = tf.constant(np.arange(4000) % 2, tf.int32)
    seed = tf.constant([3, 4], tf.int64)
    model = DiffusionModel(_toy_network(2), TINY.diffusion, ema_decay=0.9, seed=0, styles=2, style_dropout=0.5)
    dropped = model._drop_styles(style, seed).numpy()
    kept = dropped != 2
    assert abs(np.mean(~kept) - 0.5) < 0.03
    np.testing.assert_array_equal(dropped[kept], style.numpy()[kept])
    assert not np.array_equal(model._drop_styles(style, seed + 1).numpy(), dropped)
    model.style_dropout = 0.0
    np.testing.assert_array_equal(model._drop_styles(style, seed), style)


@pytest.mark.parametrize("styles", [0, 2])
def test_train_step_draws_eps_and_t_as_without_styles(styles: int) -> None:
    """A training step's loss is that of ``_draw``'s eps and t at its step seed, styled or not (the style
    dropout has a stream of its own, so unconditioned runs keep their draws), with the dropped styles."""
    diffusion = dataclasses.replace(TINY.diffusion, prediction="v")  # the loss depends on eps and t
    model = DiffusionModel(_toy_network(styles), diffusion, ema_decay=0.9, seed=5, low_noise=(0.3, 5),
                           styles=styles, style_dropout=0.5)  # fmt: skip
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    x0 = tf.constant(np.random.default_rng(0).uniform(-1, 1, (64, 1, 4, 3)), tf.float32)
    style = tf.constant(np.arange(64) % 2, tf.int32)
    seed = tf.constant([5, 0], tf.int64)  # (train.seed, step 0 of one replica)
    eps, t = model._draw(x0, seed, 0.3)
    fed = model._drop_styles(style, seed) if styles else style
    expected = float(model.diffusion_loss(x0, eps, t, fed, training=True))
    undropped = float(model.diffusion_loss(x0, eps, t, style, training=True))
    assert float(model.train_step((x0, style))["loss"]) == pytest.approx(expected, rel=1e-6)
    assert (undropped == pytest.approx(expected, rel=1e-6)) == (not styles)  # a styled network hears the drop
