"""Presets load; unknown keys and bad values are refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import TrainConfig, load_config, preset_names
from training.errors import TrainingError


def test_presets_ship_and_load() -> None:
    assert {"seed", "small", "tiny"} <= set(preset_names())
    seed = load_config("seed")
    assert (seed.model.length, seed.model.widths, seed.model.middle_width) == (128, (64, 128, 256, 256), 512)
    assert (seed.model.heads, seed.model.time_embedding, seed.train.batch_size) == (2, 256, 64)
    assert seed.diffusion.noise_schedule().to_dict() == {"kind": "linear", "steps": 1000, "beta_start": 1e-4,
                                                         "beta_end": 0.02}  # fmt: skip
    assert list(seed.model.kernel_sizes) == sorted(seed.model.kernel_sizes, reverse=True)
    assert seed.train.final_phase_start == 150_000 and seed.train.final_learning_rate == 1e-6
    assert load_config("small").model.length == 128


def test_round_trip_through_dict() -> None:
    config = load_config("small")
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_file_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("[train]\nbatch_size = 8\nlearning_rate = 1\n")
    config = load_config(str(path))
    assert (config.name, config.train.batch_size, config.train.learning_rate) == ("mine", 8, 1.0)


def test_beat_periods_read_as_beats_and_survive_the_run_record(tmp_path: Path) -> None:
    """Whole and fractional beats both read as floats (a TOML list may mix them), and come back from a run."""
    path = tmp_path / "beats.toml"
    path.write_text("[model]\ndelta_high = 2\nbeat_periods = [0.5, 1, 4]\n")
    config = load_config(str(path))
    assert config.model.beat_periods == (0.5, 1.0, 4.0) and config.model.delta_high == 2.0
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[model]\nwidthz = [1]\n", "model.widthz"),
        ("[optimizer]\nlr = 1\n", "optimizer"),
        ("[train]\nbatch_size = 0\n", "train.batch_size"),
        ("[train]\nbatch_size = 2.5\n", "train.batch_size"),
        ("[train]\njit_compile = 1\n", "train.jit_compile"),
        ("[model]\nwidths = [8, 'x']\n", "model.widths"),
        ("[model]\nlength = 100\n", "model.length"),
        ("[model]\nkernel_sizes = [3]\n", "model.kernel_sizes"),
        ("[model]\nheads = 3\n", "model.heads"),
        ("[model]\nchroma_semitone = -0.1\n", "model.chroma_semitone"),
        ("[model]\nchroma_harmonics = [1, 13]\n", "model.chroma_harmonics"),
        ("[model]\ninterval_lags = [1]\n", "model.interval_lags"),
        ("[model]\nchroma_semitone = 0.1\ninterval_lags = [0]\n", "model.interval_lags"),
        ("[model]\nbeat_periods = [1, 4]\n", "model.beat_periods"),
        ("[model]\ndelta_high = 2\nbeat_periods = [1, 0]\n", "model.beat_periods"),
        ("[model]\ndelta_high = 2\nbeat_periods = [1, 'bar']\n", "model.beat_periods"),
        ("[model]\ndelta_high = -2\n", "model.delta_high"),
        ("[diffusion]\nprediction = 'x0'\n", "diffusion.prediction"),
        ("[diffusion]\nbeta_start = 0.5\nbeta_end = 0.1\n", "diffusion.beta_start"),
        ("[train]\nfinal_fraction = 1.0\n", "train.final_fraction"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TrainingError, match=rf"config key {key}\b"):
        load_config(str(path))


def test_unknown_preset() -> None:
    with pytest.raises(TrainingError, match="no preset 'huge'"):
        load_config("huge")
