"""The command line around the daemon: dmc status/set/trigger/stop/learn against a running daemon,
dmc ports, the live panel, and what happens when no daemon runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from daemon_rig import InProcessDaemon
from rich.console import Console
from tiny_model import write_tiny_model

from bridge.cli import build_parser, main
from bridge.guidance import attach_guide
from bridge.phrases import ArpeggioSource
from bridge.serve_commands import phrase_source
from bridge.settings import Settings
from bridge.status import render_status


@pytest.fixture
def rig(tmp_path: Path):
    rig = InProcessDaemon(ArpeggioSource(), Settings(takes="off"), tmp_path / "c.sock", memory=True)
    yield rig
    rig.stop()
    assert rig.error is None


def test_status_set_trigger_stop_through_the_command_line(rig, tmp_path: Path, capsys) -> None:
    sock = ["--socket", str(tmp_path / "c.sock")]
    assert main(["set", "bars=4", "key=Eb", *sock]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["bars = 4", "key = Eb"]
    assert main(["trigger", *sock]) == 0
    assert main(["stop", *sock]) == 0
    assert capsys.readouterr().out.startswith("stopped (")
    assert main(["status", "--json", *sock]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["settings"]["bars"] == 4 and status["model"] == "arpeggio (no model)"
    assert main(["status", *sock]) == 0
    assert "Diffusion Composer" in capsys.readouterr().out


def test_a_bad_setting_is_reported_with_exit_2(rig, tmp_path: Path, caplog) -> None:
    assert main(["set", "velocity=300", "--socket", str(tmp_path / "c.sock")]) == 2
    assert "'velocity' must lie in 1..127" in caplog.text


def test_learn_gives_up_after_its_timeout(rig, tmp_path: Path, caplog) -> None:
    assert main(["learn", "stop", "--timeout", "0.3", "--socket", str(tmp_path / "c.sock")]) == 2
    assert "nothing pressed within 0.3 s" in caplog.text


def test_without_a_daemon_the_commands_say_how_to_start_one(tmp_path: Path, caplog) -> None:
    assert main(["trigger", "--socket", str(tmp_path / "none.sock")]) == 2
    assert "start one with 'dmc serve'" in caplog.text


def test_ports_lists_every_api(capsys) -> None:
    assert main(["ports"]) == 0
    out = capsys.readouterr().out
    assert "jack:" in out


def test_the_live_panel_shows_ports_tempo_and_takes(rig) -> None:
    status = rig.daemon.status()
    status["takes"] = ["/music/takes/20250101-C-major.mid"]
    console = Console(record=True, width=120)
    console.print(render_status(status))
    text = console.export_text()
    for expected in ("output port", "Diffusion Composer", "120.0 bpm from internal clock", "20250101-C-major.mid"):
        assert expected in text
    assert "guided" not in text  # the arpeggio demo has no guide
    status["guidance"] = 1.5
    status["last"] = {"steps": 20, "generation_ms": 98.0, "seed": 7, "source": "default", "style": "haydn"}
    console.print(render_status(status))
    text = console.export_text()
    assert "guided at 1.5" in text and "20 steps in 98 ms, seed 7, style haydn" in text


def test_serve_loads_the_precision_asked_for() -> None:
    """`dmc serve --precision fp16` runs the model's fp16 graph (auto would keep fp32 on this CPU)."""
    parser = build_parser()
    args = parser.parse_args(["serve", "--device", "cpu", "--precision", "fp16"])
    source = phrase_source(args.model, args.device, args.precision, args.guidance)
    assert source.denoiser.precision == "fp16" and source.device == "cpu"


def test_serve_guides_with_the_weight_asked_for(tmp_path: Path) -> None:
    """`dmc serve --guidance W` runs the model's guide at W instead of the card's weight."""
    model = write_tiny_model(tmp_path / "model")
    attach_guide(model, write_tiny_model(tmp_path / "guide", name="guide"), 1.0)
    args = build_parser().parse_args(["serve", "--model", str(model), "--device", "cpu", "--guidance", "0.25"])
    source = phrase_source(args.model, args.device, args.precision, args.guidance)
    assert source.denoiser.guidance == 0.25 and source.denoiser.guide is not None
