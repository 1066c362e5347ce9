"""The real-time daemon: triggers in, phrases generated while the last one plays, notes out on time.

Threads, one job each: the MIDI input callback (clock, triggers, what the musician plays), one
generation worker, one player, the control channel, and the main thread, which watches the
ports, saves takes, answers respond mode and receives every thread's fatal error. A
:class:`~bridge.errors.BridgeError` while generating is reported and the music goes on; any
other error stops the daemon. Whatever ends it (stop, Ctrl-C, SIGTERM, an error), the last
acts are the same: note-off for every sounding note, All Sound/Notes Off on the used channels,
then the ports close.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import queue
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bridge.atomic import atomic_write
from bridge.clock import TempoClock
from bridge.control import ControlServer
from bridge.errors import BridgeError
from bridge.ledger import NoteLedger
from bridge.midifile import write_midi
from bridge.phrases import Phrase, PhraseRequest, PhraseSource
from bridge.player import Player, Started, note_events
from bridge.ports import CLIENT_NAME, DEFAULT_IN_NAME, DEFAULT_OUT_NAME, MidiInput, MidiOutput, reopen_vanished
from bridge.recorder import PhraseRecorder
from bridge.settings import Settings, save_settings
from bridge.triggers import Learned, TriggerInput

log = logging.getLogger(__name__)

GUARD_S = 0.01  # a phrase must be in the player this long before its first send
TICK_S = 0.05  # the main loop's pace: respond-mode silence, posted events
WATCH_S = 0.5  # how often the ports' liveness is checked
SWITCH_INTERVAL_S = 0.0005  # GIL hand-over while the daemon runs (Python's default 5 ms would delay the player)
RECENT_TAKES = 8


@dataclass(frozen=True)
class DaemonOptions:
    """How the daemon runs, as opposed to what it plays (that is :class:`Settings`)."""

    api: str = "auto"
    out_name: str = DEFAULT_OUT_NAME
    in_name: str = DEFAULT_IN_NAME
    client_name: str = CLIENT_NAME
    control_path: Path | None = None  # None: the default place; see bridge.control
    settings_path: Path | None = None  # where `dmc set` and MIDI-learn persist; None: nowhere


@dataclass(frozen=True)
class _Job:
    """One phrase to generate. ``start_beat`` None: the next boundary that leaves time enough."""

    request: PhraseRequest
    start_beat: float | None
    epoch: int
    stream: bool  # continuous mode: queue the next window when this one is scheduled
    after_beat: float | None = None  # begin only once the clock reaches it (the previous window's start)


def default_takes_dir() -> Path:
    """Where takes go unless the settings say otherwise: the user's Music folder."""
    return Path.home() / "Music" / "Diffusion Composer" / "Takes"


def takes_dir_for(settings: Settings) -> Path | None:
    if settings.takes == "off":
        return None
    return Path(settings.takes).expanduser() if settings.takes else default_takes_dir()


class Daemon:
    """Use as a context manager: ``with Daemon(source, settings, options) as d: d.run()``."""

    def __init__(
        self,
        source: PhraseSource,
        settings: Settings,
        options: DaemonOptions = DaemonOptions(),
        *,
        output_class: type[MidiOutput] = MidiOutput,
        input_class: type[MidiInput] = MidiInput,
    ) -> None:
        """``output_class``/``input_class``: other port classes (in-memory ones for benchmarks and tests)."""
        self.source = source
        self.options = options
        self._settings = settings
        self._settings_lock = threading.Lock()
        self.clock = TempoClock(settings.bpm, settings.clock)
        self.output = output_class(options.out_name, options.api, options.client_name)
        self.input = input_class(
            self._on_midi, options.in_name, options.api, f"{options.client_name}-in", on_error=self._fail
        )
        self.ledger = NoteLedger(self.output)
        self.player = Player(
            self.clock, self.ledger, offset_s=settings.offset_ms / 1000.0, on_start=self._on_started,
            on_error=self._fail,
        )
        self.triggers = TriggerInput(settings.bindings())
        self.recorder = PhraseRecorder()
        self.control = ControlServer(self.handle, options.control_path, on_error=self._fail)
        self._stopping = threading.Event()
        self._errors: queue.SimpleQueue[BaseException] = queue.SimpleQueue()
        self._posted: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._job_cond = threading.Condition()
        self._job: _Job | None = None
        self._epoch = 0
        self._streaming = False
        self._generating = False
        self._held: tuple[Phrase, bool] | None = None  # made while the transport was stopped
        self._last: Phrase | None = None
        self._scheduled: dict[int, tuple[Phrase, float]] = {}
        self._serial = 0
        self._state_lock = threading.Lock()
        self.takes: deque[Path] = deque(maxlen=RECENT_TAKES)
        self.last_error = ""
        self._worker = threading.Thread(target=self._work, name="dmc-worker", daemon=True)
        self._switch_interval = sys.getswitchinterval()
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Open the ports and start the threads; on any failure, undo what was done.

        What is loaded by then (the model and its runtime; anything else in the process) is frozen
        out of the garbage collector. A full collection holds the GIL while it scans: about 5 ms
        over what ``dmc serve`` loads (benchmarks/gc_pause.py), 0.25 s over a heap with TensorFlow
        in it (a note-on 0.1 s late is dropped). Frozen, it scans only what came after the start.
        """
        try:
            self.output.open()
            self.input.open()
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            gc.freeze()
            self.player.start()
            self._worker.start()
            self.control.start()
        except BaseException:
            self.shutdown()
            raise

    def run(self) -> None:
        """Serve until :meth:`request_stop` (signals call it); a thread's fatal error is raised here."""
        next_watch = time.monotonic() + WATCH_S
        while not self._stopping.is_set():
            self._drain_posted()
            self._respond_if_paused()
            if time.monotonic() >= next_watch:
                next_watch = time.monotonic() + WATCH_S
                self._watch_ports()
            self._stopping.wait(TICK_S)
        self._drain_posted()
        try:
            raise self._errors.get_nowait()
        except queue.Empty:
            return

    def request_stop(self, reason: str = "") -> None:
        if reason:
            log.info("stopping: %s", reason)
        self._stopping.set()
        with self._job_cond:
            self._job_cond.notify_all()

    def shutdown(self) -> None:
        """Stop every thread and leave no note sounding; safe to call twice and after a failed start."""
        if self._closed:
            return
        self._closed = True
        self.request_stop()
        self.control.stop()
        self.input.close()  # no more triggers or clock
        self.player.stop()  # its last act: a note-off for every sounding note
        if self._worker.is_alive():
            self._worker.join(timeout=2.0)
        self.ledger.release_all()  # again, in case the player thread could not
        self.output.panic()
        self.output.close()
        sys.setswitchinterval(self._switch_interval)
        log.info("stopped; every note ended, All Sound Off and All Notes Off sent")

    # --- actions (any thread) -----------------------------------------------------------

    @property
    def settings(self) -> Settings:
        with self._settings_lock:
            return self._settings

    def trigger(self) -> None:
        """Generate: a phrase (phrase mode), the stream (continuous), an answer now (respond)."""
        settings = self.settings
        prime: tuple = ()
        prime_beats = 0.0
        if settings.mode == "respond":
            taken = self.recorder.take(time.monotonic(), self.clock.bpm, None)
            if taken is not None:
                prime, prime_beats = taken
        request = self._request(settings, prime=prime, prime_beats=prime_beats)
        self._submit(request, stream=settings.mode == "continuous")

    def variation(self) -> None:
        """The last phrase again with the next seed, at the next boundary."""
        with self._state_lock:
            last = self._last
        if last is None:
            self.trigger()
            return
        request = dataclasses.replace(self._request(self.settings), seed=(last.info.seed + 1) % 2**32,
                                      prime=last.request.prime, prime_beats=last.request.prime_beats)
        self._submit(request, stream=self.settings.mode == "continuous")

    def stop_music(self) -> int:
        """Silence now and drop what was coming; returns the notes ended."""
        with self._job_cond:
            self._epoch += 1
            self._job = None
        with self._state_lock:
            self._streaming = False
            self._held = None
        self.recorder.clear()
        return self.player.clear()

    def set_values(self, values: dict[str, object]) -> Settings:
        """Change settings (validated, applied at once, persisted); BridgeError names a bad key."""
        with self._settings_lock:
            old = self._settings
            new = old.with_values(values)
            if new.guidance != old.guidance:  # may refuse (a model without a guide): then nothing changes
                self.source.set_guidance(new.guidance)
            if new.style != old.style:  # refused, naming the styles there are, when the model lacks it
                self.source.check_style(new.style)
            self._settings = new
        self._apply(old, new)
        if self.options.settings_path is not None:
            save_settings(self.options.settings_path, new)
        return new

    def learn(self, action: str, timeout_s: float = 30.0) -> None:
        self.triggers.arm(action, timeout_s)
        log.info("MIDI-learn: press the note or control for %r", action)

    # --- the control channel -------------------------------------------------------------

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request (see bridge.control for the protocol)."""
        command = message.get("command")
        if command == "trigger":
            self.trigger()
        elif command == "stop":
            return {"ended": self.stop_music()}
        elif command == "variation":
            self.variation()
        elif command == "status":
            return self.status()
        elif command == "set":
            values = message.get("values")
            if not isinstance(values, dict):
                raise BridgeError("'set' needs values: {KEY: VALUE, ...}")
            return {"settings": self.set_values(values).to_dict()}
        elif command == "learn":
            self.learn(str(message.get("action", "")), float(message.get("timeout", 30.0)))
        else:
            raise BridgeError(f"unknown command {command!r}; use trigger, stop, variation, status, set or learn")
        return {}

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot for ``dmc status`` and the live view."""
        settings = self.settings
        clock = self.clock.state()
        scheduled, _ = self.player.pending()
        with self._state_lock:
            last = self._last
            streaming, generating = self._streaming, self._generating
        timing = [sent - due for due, sent in self.player.recent_timing(512)]
        return {
            "ports": {p.kind: {"name": p.name, "open": p.is_open, "connected_to": p.connected_to}
                      for p in (self.output, self.input)},
            "tempo": {"bpm": round(clock.bpm, 2), "source": clock.source, "running": clock.running},
            "model": self.source.name,
            "device": self.source.device,
            "guidance": self.source.guidance,
            "mode": settings.mode,
            "settings": settings.to_dict(),
            "last": dataclasses.asdict(last.info) if last else None,
            "queue": {"generating": generating, "scheduled": scheduled, "streaming": streaming},
            "sounding": len(self.ledger.sounding),
            "timing_ms": _percentiles(timing),
            "dropped_late": self.player.dropped_late,
            "takes": [str(p) for p in self.takes],
            "learning": self.triggers.learning,
            "error": self.last_error,
        }

    # --- generation ---------------------------------------------------------------------

    def _request(self, settings: Settings, **changes: Any) -> PhraseRequest:
        return PhraseRequest(
            length_beats=settings.beats,
            scale=settings.scale_text,
            low=settings.low,
            high=settings.high,
            steps=settings.steps,
            min_steps=settings.min_steps,
            sampler=settings.sampler,
            seed=settings.seed,
            velocity=settings.velocity,
            channel=settings.channel - 1,
            program=settings.program or 0,
            transpose=settings.transpose,
            corpus_lengths=settings.note_lengths == "corpus",
            corpus_chords=settings.chords == "corpus",
            onsets=settings.onsets,
            style=settings.style,
            **changes,
        )

    def _submit(
        self, request: PhraseRequest, *, stream: bool, start_beat: float | None = None, after_beat: float | None = None
    ) -> None:
        """Make ``request`` the next job (replacing one not yet begun); a fresh one (no start) cancels older."""
        with self._job_cond:
            self._epoch += 1 if start_beat is None else 0
            self._job = _Job(request, start_beat, self._epoch, stream, after_beat)
            self._job_cond.notify_all()
        if stream:
            with self._state_lock:
                self._streaming = True

    def _work(self) -> None:
        try:
            while not self._stopping.is_set():
                job = self._next_job()
                if job is not None:
                    self._generate(job)
        except BaseException as exc:
            self._fail(exc)

    def _next_job(self) -> _Job | None:
        with self._job_cond:
            if self._job is None:
                self._job_cond.wait(0.5)
            job, self._job = self._job, None
            return job

    def _generate(self, job: _Job) -> None:
        if job.after_beat is not None and not self._wait_for_beat(job.after_beat, job.epoch):
            return
        start, deadline = self._plan(job)
        with self._state_lock:
            self._generating = True
        try:
            phrase = self.source.generate(job.request, deadline)
        except BridgeError as exc:
            self.last_error = str(exc)
            log.error("generation failed: %s", exc)
            return
        finally:
            with self._state_lock:
                self._generating = False
        self.last_error = ""
        with self._job_cond:  # held while scheduling, so a stop cannot slip in between
            if job.epoch == self._epoch and not self._stopping.is_set():
                self._schedule(phrase, start, job.stream)

    def _wait_for_beat(self, beat: float, epoch: int) -> bool:
        """Wait until the clock reaches ``beat`` (a stream stays one window ahead); False if stopped meanwhile."""
        while True:
            with self._job_cond:
                if epoch != self._epoch or self._stopping.is_set():
                    return False
                now = self.clock.beat_at(time.monotonic())
                if now is not None and now >= beat:
                    return True
                self._job_cond.wait(TICK_S)

    def _plan(self, job: _Job) -> tuple[float | None, float | None]:
        """(start beat, deadline): the first boundary the source can make with its fewest steps."""
        settings = self.settings
        offset = settings.offset_ms / 1000.0
        if job.start_beat is not None:
            at = self.clock.time_of(job.start_beat)
            return job.start_beat, None if at is None else at + offset - GUARD_S
        now = time.monotonic()
        beat = self.clock.beat_at(now)
        if beat is None or settings.quantize == "none":
            return None, None  # stopped transport, or "at once": placed when ready
        need = self.source.seconds_for(job.request.min_steps)
        start = self.clock.next_boundary(settings.quantize, beat, settings.beats_per_bar)
        grid = settings.beats_per_bar if settings.quantize == "bar" else 1
        while True:
            at = self.clock.time_of(start)
            if at is None:
                return None, None
            if at + offset - GUARD_S - now >= need:
                return start, at + offset - GUARD_S
            start += grid

    def _schedule(self, phrase: Phrase, start: float | None, stream: bool) -> None:
        """Hand the phrase to the player at ``start`` (or the next boundary it can still make)."""
        settings = self.settings
        now = time.monotonic()
        beat = self.clock.beat_at(now)
        if beat is None:
            with self._state_lock:
                self._held = (phrase, stream)
            log.info("phrase ready; it plays when the DAW's transport starts")
            return
        earliest = self.clock.beat_at(now + GUARD_S - settings.offset_ms / 1000.0)
        if start is None or start < earliest:
            if start is not None:
                log.warning("generation finished late; the phrase moves to the next %s", settings.quantize)
            start = self.clock.next_boundary(settings.quantize, earliest, settings.beats_per_bar)
        self._place(phrase, start, stream)

    def _place(self, phrase: Phrase, start: float, stream: bool) -> None:
        """Give the phrase to the player; in a stream, ask for the next window."""
        settings = self.settings
        with self._state_lock:
            self._serial += 1
            serial = self._serial
            self._scheduled[serial] = (phrase, start)
            for old in [s for s in self._scheduled if s < serial - 16]:
                del self._scheduled[old]
            self._last = phrase
            streaming = self._streaming
        program = settings.program
        self.player.play(note_events(phrase.notes, serial, program), start, tag=serial)
        if stream and streaming:
            following = dataclasses.replace(
                self._request(self.settings), prime=phrase.notes, prime_beats=phrase.length_beats
            )
            self._submit(following, stream=True, start_beat=start + phrase.length_beats, after_beat=start)

    # --- input ----------------------------------------------------------------------------

    def _on_midi(self, message: list[int], t: float) -> None:
        """The MIDI input thread: quick, so the next message (a clock tick) is not delayed."""
        try:
            event = self.clock.midi_message(message, t)
            if event == "stop":
                self._transport_stopped()
            elif event in ("start", "continue"):
                self._transport_started()
            if event is not None:
                return
            result = self.triggers.feed(message)
            if isinstance(result, Learned):
                self._posted.put(("learned", result))
            elif result == "generate":
                self.trigger()
            elif result == "stop":
                self.stop_music()
            elif result == "variation":
                self.variation()
            elif self.settings.mode == "respond":
                self.recorder.feed(message, t)
        except BaseException as exc:
            self._fail(exc)

    def _transport_stopped(self) -> None:
        """The DAW stopped: silence at once; a stream resumes when it starts again."""
        with self._state_lock:
            streaming = self._streaming
        self.stop_music()
        with self._state_lock:
            self._streaming = streaming

    # --- main-loop work -------------------------------------------------------------------

    def _drain_posted(self) -> None:
        while True:
            try:
                kind, value = self._posted.get_nowait()
            except queue.Empty:
                return
            if kind == "started":
                self._save_take(value)
            elif kind == "learned":
                self.set_values({f"trigger_{value.action}": str(value.binding)})
                log.info("MIDI-learn: %s is now %s", value.action, value.binding)

    def _transport_started(self) -> None:
        """Start or Continue: a phrase made meanwhile plays from where the transport starts."""
        settings = self.settings
        with self._job_cond:  # against a concurrent stop, as in _generate
            with self._state_lock:
                held, self._held = self._held, None
                streaming = self._streaming
            if held is not None:
                start = self.clock.next_boundary(settings.quantize, self.clock.position(), settings.beats_per_bar)
                self._place(held[0], start, held[1])
            elif streaming:
                self._submit(self._request(settings), stream=True)

    def _respond_if_paused(self) -> None:
        settings = self.settings
        if settings.mode != "respond":
            return
        taken = self.recorder.take(time.monotonic(), self.clock.bpm, settings.respond_gap_s)
        if taken is not None:
            self._submit(self._request(settings, prime=taken[0], prime_beats=taken[1]), stream=False)

    def _watch_ports(self) -> None:
        for port, what in reopen_vanished([self.output, self.input]):
            if port is self.output and what == "reopened":
                self.ledger.forget()  # its notes died with the old port

    def _on_started(self, started: Started) -> None:
        """Player thread: a phrase began; the main loop saves the take."""
        self._posted.put(("started", started))

    def _save_take(self, started: Started) -> None:
        folder = takes_dir_for(self.settings)
        with self._state_lock:
            entry = self._scheduled.pop(started.tag, None)
        if folder is None or entry is None:
            return
        phrase, start = entry
        bpm = self.clock.bpm
        stem = _take_stem(phrase, bpm)
        try:
            write_midi(folder / f"{stem}.mid", list(phrase.notes), bpm=bpm)
            with atomic_write(folder / f"{stem}.json") as handle:
                handle.write(json.dumps(_take_parameters(phrase, bpm, start), indent=1).encode("utf-8"))
        except (OSError, BridgeError) as exc:
            self.last_error = f"cannot save takes in {folder}: {exc}"
            log.error("%s", self.last_error)
            return
        self.takes.append(folder / f"{stem}.mid")
        log.info("take %s.mid (%d notes, %d steps, %.0f ms)", stem, len(phrase.notes), phrase.info.steps,
                 phrase.info.generation_ms)

    # --- the rest ---------------------------------------------------------------------------

    def _apply(self, old: Settings, new: Settings) -> None:
        """Make changed settings take effect now."""
        if new.clock != old.clock:
            self.clock.set_source(new.clock)
        if new.bpm != old.bpm:
            self.clock.set_bpm(new.bpm)
        self.player.offset_s = new.offset_ms / 1000.0
        if new.bindings() != old.bindings():
            self.triggers.set_bindings(new.bindings())
        if new.mode != old.mode or new.channel != old.channel:
            self.stop_music()

    def _fail(self, exc: BaseException) -> None:
        """Any thread's fatal error: the main loop re-raises it after a clean stop."""
        self._errors.put(exc)
        self.request_stop(f"error: {exc!r}")


def _percentiles(errors: list[float]) -> dict[str, float] | None:
    """p50/p99/max of absolute send-time errors, in ms."""
    if not errors:
        return None
    a = np.abs(np.asarray(errors)) * 1000.0
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3)}


def _take_stem(phrase: Phrase, bpm: float) -> str:
    """``20250101-120000-123-C-major-120bpm-seed42``: sorts by time, says what it is."""
    now = datetime.now()
    scale = re.sub(r"[^A-Za-z0-9#]+", "-", phrase.request.scale).strip("-")
    return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}-{scale}-{bpm:.0f}bpm-seed{phrase.info.seed}"


def _take_parameters(phrase: Phrase, bpm: float, start: float) -> dict[str, Any]:
    request = dataclasses.asdict(phrase.request)
    request["prime"] = len(phrase.request.prime)  # the notes themselves are in the previous take
    return {"bpm": bpm, "start_beat": start, "notes": len(phrase.notes), "request": request,
            "info": dataclasses.asdict(phrase.info)}


@contextmanager
def stop_on_signals(daemon: Daemon) -> Iterator[None]:
    """SIGINT and SIGTERM ask the daemon to stop cleanly (main thread only); restored afterwards."""
    names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
    previous = {sig: signal.signal(sig, lambda s, _f: daemon.request_stop(names[s])) for sig in names}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
