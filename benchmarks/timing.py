"""Real-time timing of the bridge: send-time error against the schedule, and trigger-to-first-note latency.

    python benchmarks/timing.py [--model weights/default | none] [--device cpu] [--bars 1 4 8] [--phrases 3]

The daemon runs for real (clock, worker, player, ledger) on in-memory MIDI ports that stamp
each message with ``time.monotonic()`` as it is sent, so the error is the bridge's own, not a
MIDI driver's (a JACK period, a USB frame come on top). Send-time error is measured in
continuous mode, where the model writes the next window while this one plays, the hard case.
Latency is trigger to first note-on, quantize "none" (at once), so it is generation time
plus the scheduling guard. Reference, same run, same events: a player that sleeps to each
absolute deadline without the final spin, and the naive one, a relative ``time.sleep(gap)``
per event.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bridge.daemon import Daemon, DaemonOptions
from bridge.phrases import PhraseSource
from bridge.ports import MidiInput, MidiOutput
from bridge.runtime import DEVICES
from bridge.settings import Settings

BPM = 240.0  # a bar is 1 s: 8-bar phrases stay short
NOTE_ON = 0x90


class _Handle:
    """Stands in for an rtmidi port: sends are stamped and kept; nothing ever arrives."""

    def __init__(self, sink: list[tuple[float, list[int]]]) -> None:
        self.sink = sink

    def send_message(self, message: list[int]) -> None:
        self.sink.append((time.monotonic(), message))

    def get_message(self) -> None:
        return None

    def open_virtual_port(self, name: str) -> None:
        pass

    def ignore_types(self, **kinds: bool) -> None:
        pass

    def close_port(self) -> None:
        pass

    def delete(self) -> None:
        pass


class MemoryOutput(MidiOutput):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[float, list[int]]] = []

    def _make_handle(self) -> _Handle:
        return _Handle(self.sent)


class MemoryInput(MidiInput):
    def _make_handle(self) -> _Handle:
        return _Handle([])


def percentiles_ms(values: list[float]) -> str:
    a = np.abs(np.asarray(values)) * 1000.0
    return f"{np.percentile(a, 50):8.3f} {np.percentile(a, 99):8.3f} {a.max():8.3f}"


def make_source(model: str | None, device: str) -> PhraseSource:
    from bridge.phrases import ArpeggioSource, ModelPhraseSource  # the model's imports only when asked

    if model == "none":
        return ArpeggioSource()
    from bridge.runtime import load_model

    source = ModelPhraseSource(load_model(model, device))
    source.warm_up()
    return source


def run_daemon(source: PhraseSource, settings: Settings, action: Callable[[Daemon], None]) -> Daemon:
    """Start a daemon on memory ports, run ``action(daemon)``, stop it; returns it for its records."""
    with tempfile.TemporaryDirectory() as tmp:
        options = DaemonOptions(api="alsa", control_path=Path(tmp) / "c.sock")  # alsa: named, never opened
        with Daemon(source, settings, options, output_class=MemoryOutput, input_class=MemoryInput) as daemon:
            action(daemon)
    return daemon


def send_errors(source: PhraseSource, bars: int, phrases: int) -> tuple[list[float], list[tuple[float, float]]]:
    """(sent - due for every event, the schedule as (due, sent)) over ``phrases`` continuous windows."""
    settings = Settings(bpm=BPM, bars=bars, mode="continuous", quantize="bar", takes="off", steps=20)

    def play(daemon: Daemon) -> None:
        daemon.trigger()
        time.sleep(60.0 / BPM * (settings.beats * (phrases + 1) + 0.5))

    daemon = run_daemon(source, settings, play)
    timing = daemon.player.recent_timing(1_000_000)
    return [sent - due for due, sent in timing], timing


def latencies(source: PhraseSource, bars: int, phrases: int) -> tuple[list[float], list[float]]:
    """Trigger to first note-on (s), and the generation time (ms), for ``phrases`` phrases."""
    settings = Settings(bpm=BPM, bars=bars, quantize="none", takes="off", steps=20)
    found: list[float] = []
    generation: list[float] = []

    def trigger_each(daemon: Daemon) -> None:
        sent = daemon.output.sent
        for _ in range(phrases):
            daemon.stop_music()
            sent.clear()
            start = time.monotonic()
            daemon.trigger()
            while not any(m[0] & 0xF0 == NOTE_ON for _, m in list(sent)):
                time.sleep(0.0005)
            first = next(t for t, m in list(sent) if m[0] & 0xF0 == NOTE_ON)
            found.append(first - start)
            generation.append(daemon.status()["last"]["generation_ms"])

    run_daemon(source, settings, trigger_each)
    return found, generation


def replay(schedule: list[tuple[float, float]], *, relative: bool = False) -> list[float]:
    """A reference player on the same schedule: absolute deadlines without the spin, or relative sleeps."""
    dues = [due - schedule[0][0] for due, _ in schedule]
    start = time.monotonic() + 0.01
    errors = []
    previous = 0.0
    for due in dues:
        if relative:  # sleep the gap since the previous event: errors add up
            time.sleep(due - previous)
            previous = due
        else:
            time.sleep(max(0.0, start + due - time.monotonic()))
        errors.append(time.monotonic() - (start + due))
    return errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="none", help="model folder or name; 'none': the arpeggio (no model)")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--bars", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--phrases", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    source = make_source(args.model, args.device)
    print(f"model: {source.name} on {source.device}; {BPM:g} bpm; errors are |sent - due| in ms\n")
    print(f"{'bars':>4} {'player':<28} {'events':>7} {'p50':>8} {'p99':>8} {'max':>8}")
    rows = []
    for bars in args.bars:
        errors, schedule = send_errors(source, bars, args.phrases)
        for name, values in (
            ("daemon (sleep, then spin)", errors),
            ("ref: absolute sleep only", replay(schedule)),
            ("ref: relative sleep per gap", replay(schedule, relative=True)),
        ):
            print(f"{bars:>4} {name:<28} {len(values):>7} {percentiles_ms(values)}")
        rows.append((bars, *latencies(source, bars, args.phrases)))
    print(f"\n{'bars':>4} {'trigger -> first note (ms)':>28} {'of which generation (ms)':>26}")
    for bars, found, generation in rows:
        lat = np.asarray(found) * 1000.0
        print(f"{bars:>4} {f'p50 {np.median(lat):.1f}  max {lat.max():.1f}':>28} {np.median(generation):>26.1f}")


if __name__ == "__main__":
    main()
