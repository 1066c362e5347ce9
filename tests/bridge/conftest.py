"""Fixtures shared by the bridge's tests: a tiny real model folder and its loaded Denoiser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tiny_model import TINY_STATS, write_tiny_model

from bridge.runtime import Denoiser, load_model
from bridge.styles import Styles

# Three styles far apart in pitch (scaled units), and "no style" between them.
STYLE_MEANS = ((-0.6, 0.0, 0.0), (0.0, 0.0, 0.0), (0.6, 0.0, 0.0), (0.1, 0.0, 0.0))
STYLES = Styles(("low", "middle", "high"), (0.2, 0.3, 0.5))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only model folder (ONNX + card) whose network denoises a known Gaussian exactly."""
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_denoiser(tiny_model_dir: Path) -> Denoiser:
    """The tiny model loaded on CPU, shared by the tests (calls are serialized by its lock)."""
    return load_model(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def home_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's twin whose card says it composes in C major / A minor (``home_key``)."""
    stats = dataclasses.replace(TINY_STATS, home_key=True)
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-home", stats=stats, name="tiny-home")


@pytest.fixture(scope="session")
def styled_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model conditioned on three styles, each with its own mean pitch (``STYLE_MEANS``)."""
    folder = tmp_path_factory.mktemp("models") / "tiny-styled"
    return write_tiny_model(folder, name="tiny-styled", styles=STYLES, style_means=STYLE_MEANS)
