"""Test helpers: a daemon running in this process (its main loop on a thread) or as a ``dmc serve``
subprocess, on a private JACK server, and checks of what a receiving client recorded."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from midi_recording import MemoryInput, MemoryOutput, is_note_off, is_note_on

from bridge.control import request
from bridge.daemon import Daemon, DaemonOptions
from bridge.errors import BridgeError
from bridge.phrases import PhraseSource
from bridge.settings import Settings

OUT_PORT = "dmc:Diffusion Composer"
IN_PORT = "dmc-in:Diffusion Composer In"


class InProcessDaemon:
    """A started :class:`Daemon` whose ``run()`` loop runs on a thread; ``error`` is what it raised.

    On JACK by default; ``memory=True``: on in-memory ports (no MIDI system needed).
    """

    def __init__(
        self, source: PhraseSource, settings: Settings, control_path: Path, memory: bool = False, **options: Any
    ) -> None:
        ports = {"output_class": MemoryOutput, "input_class": MemoryInput} if memory else {}
        options = DaemonOptions(api="jack", control_path=control_path, **options)
        self.daemon = Daemon(source, settings, options, **ports)
        self.error: BaseException | None = None
        self.daemon.start()
        self._thread = threading.Thread(target=self._run, name="test-daemon-main", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.daemon.run()
        except BaseException as exc:
            self.error = exc
        finally:
            self.daemon.shutdown()

    def wait_stopped(self, timeout_s: float = 10.0) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the daemon did not stop"

    def stop(self) -> None:
        self.daemon.request_stop("test over")
        self.wait_stopped()


class DaemonProcess:
    """``dmc serve --model none --api jack --quiet`` in a subprocess, reached by its control socket."""

    def __init__(self, tmp: Path, *values: str) -> None:
        self.socket = tmp / "daemon.sock"
        self.log_path = tmp / "daemon.log"
        cmd = [sys.executable, "-m", "bridge.cli", "serve", "--model", "none", "--api", "jack", "--quiet",
               "--socket", str(self.socket), "--settings", str(tmp / "settings.toml"), "--takes", "off"]
        for value in values:
            cmd += ["--set", value]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.wait_until(lambda s: True, 20.0)

    def status(self) -> dict[str, Any]:
        return request({"command": "status"}, self.socket, timeout=2.0)

    def command(self, name: str, **fields: Any) -> dict[str, Any]:
        return request({"command": name, **fields}, self.socket, timeout=2.0)

    def wait_until(self, predicate, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, f"the daemon exited ({self.proc.returncode}): {self.log()}"
            try:
                status = self.status()
                if status.get("ok") and predicate(status):
                    return status
            except BridgeError:
                pass
            assert time.monotonic() < deadline, f"timed out; log: {self.log()}"
            time.sleep(0.05)

    def terminate(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def note_messages(received: list[tuple[float, list[int]]]) -> list[tuple[float, list[int]]]:
    return [(t, m) for t, m in received if is_note_on(m) or is_note_off(m)]


def arrival_errors(received: list[tuple[float, list[int]]], timing: list[tuple[float, float]]) -> list[float]:
    """Arrival time minus scheduled time for each note message, matched in order with the player's record."""
    notes = note_messages(received)
    assert len(notes) == len(timing), f"received {len(notes)} note messages, the player sent {len(timing)}"
    return [arrived - due for (arrived, _), (due, _) in zip(notes, timing, strict=True)]
