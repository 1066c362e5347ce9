"""The daemon on a real JACK server (dummy driver) with a real receiving client.

Every test starts its own server under a unique name and kills it at the end; a watchdog
ends the whole run if anything hangs.
"""

from __future__ import annotations

import faulthandler
import gc
import itertools
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_rig import IN_PORT, OUT_PORT, DaemonProcess, InProcessDaemon, arrival_errors, note_messages
from jack_server import ClockSender, JackServer, Receiver, Sender, jackd_available
from midi_recording import is_note_on, stuck_notes, unpaired_note_ons
from rtmidi.midiconstants import ALL_NOTES_OFF, CONTROL_CHANGE, NOTE_ON

from bridge.control import request
from bridge.midifile import read_midi
from bridge.phrases import ArpeggioSource
from bridge.settings import Settings

pytestmark = [
    pytest.mark.jack,
    pytest.mark.skipif(not jackd_available(), reason="needs jackd (Debian: jackd2) and python-rtmidi with JACK"),
]

WATCHDOG_S = 90
MARGIN_S = 0.010  # scheduling noise of a shared, loaded machine, on top of one JACK period


@pytest.fixture(autouse=True)
def watchdog(tmp_path: Path) -> Iterator[None]:
    """A hung test writes every thread's stack to its tmp_path/watchdog.txt and ends the run (jackd dies with us).

    The file, not stderr: pytest captures stderr, and the run ends before showing it.
    """
    with open(tmp_path / "watchdog.txt", "w") as log:
        faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=log)
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


def played_phrase(rx: Receiver, rig: InProcessDaemon, jack: JackServer, count: int) -> list[tuple[float, list[int]]]:
    """Wait for ``count`` notes (on and off) and the take on disk; returns what arrived."""
    try:
        return rx.wait_for(lambda m: len(note_messages(m)) >= 2 * count and not rig.daemon.ledger.sounding, 10.0)
    except AssertionError as exc:
        why = f"note-ons dropped as late: {rig.daemon.player.dropped_late}, JACK xruns: {jack.xruns()}"
        raise AssertionError(f"{exc}; {why}") from None


def check_phrase(rx: Receiver, rig: InProcessDaemon, jack: JackServer, takes: Path) -> None:
    expected = ArpeggioSource().generate(rig.daemon._request(rig.daemon.settings), None).notes
    received = played_phrase(rx, rig, jack, len(expected))
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


def median_gap(times: list[float]) -> float:
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    return gaps[len(gaps) // 2]


def test_phrases_follow_the_daws_midi_clock_and_stop_silences_at_once(jack: JackServer, tmp_path: Path) -> None:
    settings = Settings(clock="midi", bars=4, seed=3, quantize="beat", takes="off")
    rig = InProcessDaemon(ArpeggioSource(), settings, tmp_path / "control.sock")
    rx = Receiver(OUT_PORT)
    sender = Sender(IN_PORT)
    clock = ClockSender(sender, bpm=120.0)
    try:
        clock.start()
        time.sleep(0.6)  # a beat of clock: the tempo is known
        assert rig.daemon.clock.running, f"no Start or clock arrived: {rig.daemon.status()}"
        assert request({"command": "trigger"}, tmp_path / "control.sock")["ok"]
        ons = lambda: [t for t, m in rx.snapshot() if is_note_on(m)]  # noqa: E731
        rx.wait_for(lambda m: len(ons()) >= 9, 5.0)
        first = ons()[0]
        beat_error = min(abs(first - b) for b in clock.beat_times())
        assert beat_error <= 2 * jack.period_s + MARGIN_S, f"first note {beat_error * 1000:.1f} ms off the beat"
        assert median_gap(ons()[:9]) == pytest.approx(60 / 120 / 4, rel=0.1)  # sixteenths at 120 bpm

        clock.bpm = 180.0
        time.sleep(0.6)  # more than a beat at the new tempo: the smoothing window has moved on
        count = len(ons())
        rx.wait_for(lambda m: len(ons()) >= count + 8, 5.0)
        assert median_gap(ons()[count:]) == pytest.approx(60 / 180 / 4, rel=0.1)  # sixteenths at 180 bpm

        stopped_at = clock.stop()
        time.sleep(0.3)
        received = rx.snapshot()
        assert stuck_notes(m for _, m in received) == set()
        assert all(t <= stopped_at + jack.period_s * 2 + MARGIN_S for t, m in received if is_note_on(m))
        silenced_at = max(t for t, m in received if not is_note_on(m))
        assert silenced_at - stopped_at <= 2 * jack.period_s + MARGIN_S
    finally:
        clock.stop()
        sender.close()
        rx.close()
        rig.stop()
    assert rig.error is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_daemon_process_leaves_no_note_sounding(jack: JackServer, tmp_path: Path, sig: int) -> None:
    proc = DaemonProcess(tmp_path, "bpm=200", "bars=4", "quantize=beat")
    try:
        rx = Receiver(OUT_PORT)
        try:
            proc.command("trigger")
            rx.wait_for(lambda m: sum(is_note_on(x) for _, x in m) >= 3, 10.0)
            assert proc.terminate(sig) == 0, proc.log()
            time.sleep(0.2)
            messages = [m for _, m in rx.snapshot()]
        finally:
            rx.close()
    finally:
        proc.kill()
    assert unpaired_note_ons(messages) == set()
    assert [CONTROL_CHANGE, ALL_NOTES_OFF, 0] in messages


class FailingSource(ArpeggioSource):
    """The first phrase is fine; the second raises after a while (by then the first is playing)."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, request, deadline):
        self.calls += 1
        if self.calls == 2:
            time.sleep(0.5)
            raise RuntimeError("injected failure in the worker")
        return super().generate(request, deadline)


def test_an_exception_in_the_worker_during_a_phrase_stops_cleanly(jack: JackServer, tmp_path: Path) -> None:
    settings = Settings(bpm=200.0, bars=4, seed=1, quantize="beat", mode="continuous", takes="off")
    rig = InProcessDaemon(FailingSource(), settings, tmp_path / "control.sock")
    rx = Receiver(OUT_PORT)
    try:
        rig.daemon.trigger()
        rig.wait_stopped(10.0)
        time.sleep(0.1)
        messages = [m for _, m in rx.snapshot()]
    finally:
        rx.close()
        rig.stop()
    assert isinstance(rig.error, RuntimeError)
    assert sum(map(is_note_on, messages)) >= 2, "the failure came while the first phrase played"
    assert unpaired_note_ons(messages) == set()
    assert [CONTROL_CHANGE, ALL_NOTES_OFF, 0] in messages, messages[-6:]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def stress_round(rig: InProcessDaemon, control: Path, rng: random.Random, seconds: float) -> int:
    """Triggers, stops, variations and settings changes as fast as they come; returns how many."""
    settings_changes = [
        {"velocity": str(rng.randint(1, 127))},
        {"transpose": str(rng.randint(-12, 12))},
        {"bpm": str(rng.choice([180, 240, 300]))},
        {"mode": rng.choice(["phrase", "continuous"])},
        {"quantize": rng.choice(["none", "beat"])},
        {"bars": str(rng.choice([1, 2]))},
    ]
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        action = rng.random()
        if action < 0.4:
            request({"command": "trigger"}, control)
        elif action < 0.48:
            request({"command": "stop"}, control)
        elif action < 0.6:
            rig.daemon.variation()
        elif action < 0.72:
            rig.daemon.trigger()
        else:
            assert request({"command": "set", "values": rng.choice(settings_changes)}, control)["ok"]
        count += 1
        time.sleep(rng.uniform(0, 0.01))
    return count


def test_stress_no_crash_no_stuck_note_memory_flat(jack: JackServer, tmp_path: Path) -> None:
    control = tmp_path / "control.sock"
    settings = Settings(bpm=300.0, bars=1, quantize="none", takes=str(tmp_path / "takes"))
    rig = InProcessDaemon(ArpeggioSource(), settings, control)
    rx = Receiver(OUT_PORT)
    rng = random.Random(0)
    sizes = []
    try:
        for _ in range(3):  # the first round warms up; the next two must not grow
            actions = stress_round(rig, control, rng, 2.5)
            assert actions >= 100
            rig.daemon.stop_music()
            time.sleep(0.2)
            received = rx.snapshot()
            stuck = stuck_notes(m for _, m in received)
            detail = [(round(t, 4), m) for t, m in received][-12:]
            why = f"ledger {rig.daemon.ledger.sounding}, JACK xruns {jack.xruns()}, last {detail}"
            assert stuck == set(), f"{stuck}, {why}"
            assert unpaired_note_ons(m for _, m in received) == set(), why
            # How many notes get through between the stops depends on the machine's load (7 seen on a
            # loaded 2-core box); what must hold is that phrases did play, and none was left sounding.
            assert sum(is_note_on(m) for _, m in received) >= 1, "phrases played in between"
            rx.messages.clear()
            gc.collect()
            sizes.append(rss_bytes())
        assert rig.error is None and rig.daemon.status()["error"] == ""
    finally:
        rx.close()
        rig.stop()
    growth = sizes[-1] - sizes[0]
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over two rounds ({sizes})"


def test_a_vanished_jack_server_is_reported_and_the_ports_reopen_when_it_returns(
    jack: JackServer, tmp_path: Path
) -> None:
    proc = DaemonProcess(tmp_path, "bpm=300", "bars=1", "quantize=none")
    try:
        pid = proc.proc.pid
        rx = Receiver(OUT_PORT)
        proc.command("trigger")
        rx.wait_for(lambda m: sum(is_note_on(x) for _, x in m) >= 2, 10.0)
        rx.close()  # our own client goes before its server (see bridge.ports)

        jack.stop()
        gone = proc.wait_until(lambda s: not s["ports"]["output"]["open"] and not s["ports"]["input"]["open"], 10.0)
        assert gone["error"] == ""
        assert "vanished" in proc.log()

        jack.start()
        proc.wait_until(lambda s: s["ports"]["output"]["open"] and s["ports"]["input"]["open"], 10.0)
        rx = Receiver(OUT_PORT)
        try:
            proc.command("trigger")
            messages = rx.wait_for(lambda m: sum(is_note_on(x) for _, x in m) >= 2, 10.0)
        finally:
            rx.close()
        assert proc.proc.pid == pid and proc.proc.poll() is None  # the same daemon, never restarted
        assert "reopened" in proc.log()
        assert proc.terminate() == 0
    finally:
        proc.kill()
    assert sum(is_note_on(m) for _, m in messages) >= 2
