"""Optional audio previews: render a .mid to .wav with FluidSynth and a General MIDI soundfont.

Debian/Ubuntu: ``apt-get install fluidsynth fluid-soundfont-gm``. Nothing here is needed to make MIDI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bridge.errors import BridgeError

SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",  # Debian's small GM soundfont (timgm6mb-soundfont)
)
SAMPLE_RATE = 44100


def find_soundfont() -> Path | None:
    """``$DMC_SOUNDFONT`` or the first installed GM soundfont."""
    candidates = [os.environ["DMC_SOUNDFONT"]] if os.environ.get("DMC_SOUNDFONT") else list(SOUNDFONTS)
    return next((Path(p) for p in candidates if Path(p).is_file()), None)


def render_wav(midi: Path, soundfont: Path | None = None) -> Path:
    """Render ``midi`` to a .wav beside it; a clear error when FluidSynth or a soundfont is missing."""
    fluidsynth = shutil.which("fluidsynth")
    soundfont = soundfont or find_soundfont()
    if fluidsynth is None or soundfont is None:
        raise BridgeError(
            "--audio needs FluidSynth and a General MIDI soundfont: apt-get install fluidsynth fluid-soundfont-gm "
            "(or set DMC_SOUNDFONT to an .sf2 file)"
        )
    wav = midi.with_suffix(".wav")
    tmp = wav.with_name(f".{wav.name}.tmp.wav")
    command = [fluidsynth, "-ni", "-q", "-F", str(tmp), "-r", str(SAMPLE_RATE), str(soundfont), str(midi)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise BridgeError(f"fluidsynth could not render {midi}: {result.stderr.strip() or result.stdout.strip()}")
    tmp.replace(wav)
    return wav
