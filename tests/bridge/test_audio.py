"""dmc generate --audio: a real FluidSynth render (CI installs fluidsynth and a small GM soundfont)."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from bridge.audio import render_wav
from bridge.cli import main
from bridge.codec import Note
from bridge.errors import BridgeError
from bridge.midifile import write_midi


def test_renders_a_wav_beside_the_midi(tmp_path: Path) -> None:
    midi = tmp_path / "chord.mid"
    write_midi(midi, [Note(0.0, p, 1.0, 100) for p in (60, 64, 67)])
    wav = render_wav(midi)
    assert wav == tmp_path / "chord.wav"
    with wave.open(str(wav)) as audio:
        frames = audio.readframes(audio.getnframes())
        assert audio.getframerate() == 44100 and audio.getnframes() > 44100 * 0.4  # half a second at 120 bpm
    assert any(frames)  # not silence


def test_generate_audio_writes_both_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["generate", str(out), "--model", str(tiny_model_dir), "--n", "1", "--seed", "0", "--audio"]) == 0
    assert (out / "sample-1.mid").is_file() and (out / "sample-1.wav").stat().st_size > 1000


def test_missing_soundfont_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    midi = tmp_path / "a.mid"
    write_midi(midi, [Note(0.0, 60, 1.0)])
    monkeypatch.setenv("DMC_SOUNDFONT", str(tmp_path / "missing.sf2"))
    with pytest.raises(BridgeError, match="fluid-soundfont-gm"):
        render_wav(midi)
    assert not list(tmp_path.glob("*.wav"))
