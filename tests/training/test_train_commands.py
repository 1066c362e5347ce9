"""``dmc train`` parses and fails fast without TensorFlow; the training package imports light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_preset_exits_2(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code = main(["train", "--config", "huge", "--data", str(tmp_path / "d.npz"), "--run", str(tmp_path / "r")])
    assert code == 2
    assert "no preset 'huge'" in caplog.text


def test_command_line_does_not_import_tensorflow() -> None:
    """``dmc dataset`` and ``dmc --help`` import the training package; TensorFlow must wait for ``dmc train``."""
    code = ("import sys, training, training.config, training.train_commands\n"
            "from bridge.cli import build_parser\n"
            "build_parser()\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
