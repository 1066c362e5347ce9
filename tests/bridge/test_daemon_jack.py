"""The daemon on a real JACK server (dummy driver) with a real receiving client.

Every test starts its own server under a unique name and kills it at the end; a watchdog
ends the whole run if anything hangs.
"""

from __future__ import annotations

import faulthandler
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_rig import IN_PORT, OUT_PORT, InProcessDaemon, arrival_errors, note_messages
from jack_server import JackServer, Receiver, Sender, jackd_available
from midi_recording import is_note_on, stuck_notes, unpaired_note_ons
from rtmidi.midiconstants import NOTE_ON

from bridge.control import request
from bridge.midifile import read_midi
from bridge.phrases import ArpeggioSource
from bridge.settings import Settings

pytestmark = [
    pytest.mark.jack,
    pytest.mark.skipif(not jackd_available(), reason="needs jackd (Debian: jackd2) and python-rtmidi with JACK"),
]

WATCHDOG_S = 120
MARGIN_S = 0.010  # scheduling noise of a shared, loaded machine, on top of one JACK period


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """A hung test dumps every thread's stack and ends the run (jackd dies with us)."""
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def jack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JackServer]:
    server = JackServer(tmp_path)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(bpm=200.0, bars=1, seed=7, quantize="beat", takes=str(tmp_path / "takes"))


@pytest.fixture
def running(jack: JackServer, settings: Settings, tmp_path: Path) -> Iterator[InProcessDaemon]:
    rig = InProcessDaemon(ArpeggioSource(), settings, tmp_path / "control.sock")
    try:
        yield rig
    finally:
        rig.stop()
    assert rig.error is None


@pytest.fixture
def receiver(running: InProcessDaemon) -> Iterator[Receiver]:
    rx = Receiver(OUT_PORT)
    try:
        yield rx
    finally:
        rx.close()


def played_phrase(rx: Receiver, rig: InProcessDaemon, count: int) -> list[tuple[float, list[int]]]:
    """Wait for ``count`` notes (on and off) and the take on disk; returns what arrived."""
    return rx.wait_for(lambda m: len(note_messages(m)) >= 2 * count and not rig.daemon.ledger.sounding, 10.0)


def check_phrase(rx: Receiver, rig: InProcessDaemon, jack: JackServer, takes: Path) -> None:
    expected = ArpeggioSource().generate(rig.daemon._request(rig.daemon.settings), None).notes
    received = played_phrase(rx, rig, len(expected))
    messages = [m for _, m in received]
    assert [m[1] for m in messages if is_note_on(m)] == [n.pitch for n in expected]
    assert unpaired_note_ons(messages) == set()
    timing = rig.daemon.player.recent_timing(10_000)
    errors = arrival_errors(received, timing)
    late = sorted(errors)[-3:]
    sends = sorted(sent - due for due, sent in timing)[-3:]
    assert min(errors) >= 0.0 and max(errors) <= jack.period_s + MARGIN_S, f"arrival - due {late}, sent - due {sends}"
    take = next(takes.glob("*.mid"))
    assert [n.pitch for n in read_midi(take).notes] == [n.pitch for n in expected]
    assert take.with_suffix(".json").is_file()


def test_trigger_over_the_control_socket_plays_the_phrase_on_time(
    running: InProcessDaemon, receiver: Receiver, jack: JackServer, settings: Settings, tmp_path: Path
) -> None:
    assert request({"command": "trigger"}, tmp_path / "control.sock")["ok"]
    check_phrase(receiver, running, jack, Path(settings.takes))


def test_trigger_by_a_midi_note_on_the_input_port(
    running: InProcessDaemon, receiver: Receiver, jack: JackServer, settings: Settings
) -> None:
    sender = Sender(IN_PORT)
    try:
        sender.send([NOTE_ON | 15, 36, 100])  # the default trigger: note 36 on channel 16
        check_phrase(receiver, running, jack, Path(settings.takes))
    finally:
        sender.close()
    assert stuck_notes(m for _, m in receiver.snapshot()) == set()
