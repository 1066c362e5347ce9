"""Test helpers for real JACK MIDI: a private ``jackd`` (dummy driver), and clients that record or send.

Each server gets a unique name and dies with the test process (PR_SET_PDEATHSIG), so a
crashed or killed test run never leaves one behind. Clients in this process find the server
through ``JACK_DEFAULT_SERVER``, which the fixture sets before any client is made.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import rtmidi
from rtmidi.midiconstants import SONG_START, SONG_STOP, TIMING_CLOCK

from bridge.errors import BridgeError
from bridge.ports import MidiInput, MidiOutput, MidiPort, jack_server_identity

READY_TIMEOUT_S = 15.0
CONNECT_SETTLE_S = 0.1  # a new JACK connection carries MIDI only from a later process cycle


def jackd_available() -> bool:
    return shutil.which("jackd") is not None and rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class JackServer:
    """``jackd --no-realtime -n NAME -d dummy``; the caller sets JACK_DEFAULT_SERVER to ``name``.

    The period is 256 frames (5.3 ms): at 64 frames a loaded shared machine makes hundreds of
    xruns a test, and JACK drops MIDI in an xrun, which would look like our stuck notes.
    """

    def __init__(self, log_dir: Path, rate: int = 48000, period: int = 256) -> None:
        self.name = f"dmctest-{uuid.uuid4().hex[:10]}"
        self.rate = rate
        self.period = period
        self.log_path = log_dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def period_s(self) -> float:
        return self.period / self.rate

    def start(self) -> None:
        """Start and wait until a client can connect (the server's socket exists and answers)."""
        cmd = ["jackd", "--no-realtime", "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        env = {**os.environ, "JACK_DEFAULT_SERVER": self.name}
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"jackd exited ({self._proc.returncode}); see {self.log_path}")
            ready = subprocess.run(
                ["jack_wait", "-s", self.name, "-c"], env=env, capture_output=True, timeout=5, check=False
            )
            if b"running" in ready.stdout and b"not running" not in ready.stdout:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"jackd {self.name} did not become ready in {READY_TIMEOUT_S} s; see {self.log_path}")

    def xruns(self) -> int:
        """XRun lines in the server's log (one xrun may log two): in one, JACK may drop MIDI, so failures say it."""
        return self.log_path.read_text(errors="replace").count("XRun")

    def stop(self) -> None:
        """Terminate (then kill) the server and wait for it; its socket is gone afterwards."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while jack_server_identity() is not None and time.monotonic() < deadline:
            time.sleep(0.05)


class Receiver:
    """A JACK MIDI input connected to a source port; records (monotonic arrival time, message)."""

    def __init__(self, source_port: str, client_name: str = "receiver", timeout_s: float = 5.0) -> None:
        self.messages: list[tuple[float, list[int]]] = []
        self._lock = threading.Lock()
        self._port = MidiInput(self._record, source_port, "jack", client_name, existing=True)
        _open_when_listed(self._port, timeout_s)

    def _record(self, message: list[int], t: float) -> None:
        with self._lock:
            self.messages.append((t, list(message)))

    def snapshot(self) -> list[tuple[float, list[int]]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate, timeout_s: float) -> list[tuple[float, list[int]]]:
        """Poll until ``predicate(messages)`` holds; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            messages = self.snapshot()
            if predicate(messages):
                return messages
            assert time.monotonic() < deadline, f"timed out after {timeout_s} s with {len(messages)} messages"
            time.sleep(0.01)

    def close(self) -> None:
        self._port.close()


class Sender:
    """A JACK MIDI output connected to a destination port (the daemon's input)."""

    def __init__(self, dest_port: str, client_name: str = "sender", timeout_s: float = 5.0) -> None:
        self._port = MidiOutput(dest_port, "jack", client_name, existing=True)
        _open_when_listed(self._port, timeout_s)

    def send(self, message: list[int]) -> None:
        self._port.send(message)

    def close(self) -> None:
        self._port.close()


def _open_when_listed(port: MidiPort, timeout_s: float) -> None:
    """Open (and so connect to) the port named ``port.name`` once it exists, then let the connection settle."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            port.open()
        except BridgeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        time.sleep(CONNECT_SETTLE_S)
        return


class ClockSender:
    """A DAW's MIDI clock: Start, then 24 ticks a beat at absolute times, at a tempo one can change."""

    def __init__(self, sender: Sender, bpm: float) -> None:
        self._sender = sender
        self.bpm = bpm
        self.tick_times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-clock", daemon=True)

    def start(self) -> None:
        self._sender.send([SONG_START])
        self._thread.start()

    def _run(self) -> None:
        due = time.monotonic() + 0.005
        while not self._stop.is_set():
            while time.monotonic() < due:
                time.sleep(max(0.0, min(due - time.monotonic() - 0.0005, 0.002)))
            self._sender.send([TIMING_CLOCK])
            self.tick_times.append(due)  # when the tick was due: a DAW's clock is steady, this thread may not be
            due += 60.0 / self.bpm / 24

    def beat_times(self) -> list[float]:
        return self.tick_times[::24]

    def stop(self) -> float:
        """Stop ticking and send Stop; returns when Stop was sent."""
        self._stop.set()
        self._thread.join(5)
        self._sender.send([SONG_STOP])
        return time.monotonic()
