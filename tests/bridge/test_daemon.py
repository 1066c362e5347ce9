"""The daemon's logic on in-memory ports (no MIDI system needed): modes, quantizing, deadlines,
the control channel, MIDI-learn, a stopped MIDI clock. The same daemon on real JACK ports is
tested in test_daemon_jack.py."""

from __future__ import annotations

import gc
import itertools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import STYLES
from daemon_rig import InProcessDaemon
from midi_recording import is_note_on, stuck_notes
from rtmidi.midiconstants import CONTROL_CHANGE, NOTE_OFF, NOTE_ON, SONG_START, TIMING_CLOCK
from tiny_model import write_tiny_model

from bridge.constraints import parse_scale
from bridge.control import request
from bridge.deadline import StepBudget
from bridge.errors import BridgeError
from bridge.guidance import attach_guide
from bridge.phrases import ArpeggioSource, ModelPhraseSource, Phrase, PhraseInfo, PhraseRequest
from bridge.runtime import load_model
from bridge.settings import Settings, load_settings


class SpySource(ArpeggioSource):
    """The arpeggio, remembering each request and when it came."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, PhraseRequest]] = []

    def generate(self, request: PhraseRequest, deadline: float | None) -> Phrase:
        self.calls.append((time.monotonic(), request))
        return super().generate(request, deadline)


class SlowSource(ArpeggioSource):
    """A model stand-in: each step takes ``step_s``; steps chosen for the deadline like the real one."""

    name = "slow"

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s
        self.budget = StepBudget(step_s=step_s, fixed_s=0.0)
        self.budget.observe(10, 10 * step_s)

    def seconds_for(self, steps: int) -> float:
        return self.budget.seconds_for(steps)

    def generate(self, request: PhraseRequest, deadline: float | None) -> Phrase:
        steps = request.steps
        if deadline is not None:
            steps = self.budget.steps_for(deadline - time.monotonic(), request.min_steps, request.steps)
            steps = steps or request.min_steps
        time.sleep(steps * self.step_s)
        phrase = super().generate(request, deadline)
        return Phrase(phrase.notes, phrase.length_beats, PhraseInfo(steps, 0.0, phrase.info.seed, self.name), request)


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    rigs: list[InProcessDaemon] = []

    def make(settings: Settings, source: ArpeggioSource | None = None) -> InProcessDaemon:
        rig = InProcessDaemon(
            source or ArpeggioSource(), settings, tmp_path / "c.sock", memory=True,
            settings_path=tmp_path / "settings.toml",
        )
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.stop()
        assert rig.error is None
        assert stuck_notes(m for _, m in rig.daemon.output.received) == set()


def note_ons(rig: InProcessDaemon) -> list[tuple[float, list[int]]]:
    return [(t, m) for t, m in list(rig.daemon.output.received) if is_note_on(m)]


def wait_for(predicate, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_a_midi_trigger_plays_a_phrase_from_the_next_bar(start) -> None:
    rig = start(Settings(bpm=240, bars=1, seed=1, takes="off"))
    rig.daemon.input.inject([NOTE_ON | 15, 36, 100])  # the default trigger
    rig.daemon.input.inject([NOTE_OFF | 15, 36, 0])
    wait_for(lambda: len(note_ons(rig)) >= 16)
    first = note_ons(rig)[0][0]
    beat = rig.daemon.clock.beat_at(first)
    assert beat / 4 == pytest.approx(round(beat / 4), abs=0.01)  # on a bar line (1 % of a bar = 2.5 ms)


def test_collecting_what_was_loaded_before_the_start_does_not_stall_the_player(start) -> None:
    """The heap loaded before the start (a model; TensorFlow, where tests share a process) is frozen out
    of the collector. Unfrozen, a full collection of this one holds the GIL for about 0.2 s, and the
    player drops note-ons that late."""
    loaded = [{"weights": (i, [i])} for i in range(500_000)]
    rig = start(Settings(bpm=240, bars=1, seed=1, quantize="none", takes="off"))
    done = threading.Event()

    def collect() -> None:
        while not done.wait(0.01):
            gc.collect()

    collector = threading.Thread(target=collect, name="test-collector")
    collector.start()
    try:
        rig.daemon.trigger()
        wait_for(lambda: len(rig.daemon.player.recent_timing(100)) >= 32 or rig.daemon.player.dropped_late > 0)
    finally:
        done.set()
        collector.join()
    assert rig.daemon.player.dropped_late == 0
    lateness = [sent - due for due, sent in rig.daemon.player.recent_timing(100)]
    assert len(lateness) == 32 and max(lateness) < 0.05, f"latest send {max(lateness) * 1000:.1f} ms after its time"
    assert len(loaded) == 500_000  # freed only now: freeing it takes 0.1 s too


def test_continuous_mode_streams_windows_back_to_back_one_ahead(start) -> None:
    source = SpySource()
    rig = start(Settings(bpm=300, bars=1, seed=2, mode="continuous", quantize="beat", takes="off"), source)
    rig.daemon.trigger()
    wait_for(lambda: len(note_ons(rig)) >= 16 * 3 + 1)  # into the fourth window
    requests = [r for _, r in source.calls]
    assert requests[0].prime == () and all(r.prime for r in requests[1:])  # each continues the last
    assert all(r.prime_beats == 4.0 for r in requests[1:])
    ons = [t for t, _ in note_ons(rig)]
    gaps = [b - a for a, b in itertools.pairwise(ons)]
    assert max(gaps) < 0.06 * 1.5  # sixteenths at 300 bpm (50 ms), no hole between windows
    # one window ahead: by the time window n+1 is asked for, window n has begun
    calls = [t for t, _ in source.calls]
    assert len(calls) <= len(ons) // 16 + 2


def test_respond_mode_answers_what_was_played_after_a_pause(start) -> None:
    source = SpySource()
    rig = start(Settings(bpm=240, bars=1, mode="respond", respond_gap_s=0.3, quantize="beat", takes="off"), source)
    for pitch in (60, 64, 67):
        rig.daemon.input.inject([NOTE_ON, pitch, 90])
        time.sleep(0.05)
        rig.daemon.input.inject([NOTE_OFF, pitch, 0])
    time.sleep(0.1)
    assert source.calls == []  # still within the pause
    wait_for(lambda: len(note_ons(rig)) >= 4)
    prime = source.calls[0][1].prime
    assert [n.pitch for n in prime] == [60, 64, 67]
    assert prime[1].onset == pytest.approx(0.05 * 4, abs=0.1)  # 50 ms at 240 bpm is 0.2 beat


def test_variation_uses_the_next_seed(start) -> None:
    source = SpySource()
    rig = start(Settings(bpm=240, bars=1, seed=10, takes="off"), source)
    rig.daemon.trigger()
    wait_for(lambda: len(source.calls) == 1 and rig.daemon.status()["last"] is not None)
    rig.daemon.variation()
    wait_for(lambda: len(source.calls) == 2)
    assert [r.seed for _, r in source.calls] == [10, 11]


def test_control_set_status_stop_and_bad_keys(start, tmp_path: Path) -> None:
    rig = start(Settings(bpm=120, bars=2, takes="off"))
    sock = tmp_path / "c.sock"
    answer = request({"command": "set", "values": {"bpm": "150", "key": "F#", "velocity": 64}}, sock)
    assert answer["ok"] and answer["settings"]["key"] == "F#"
    assert rig.daemon.clock.bpm == 150.0
    assert load_settings(tmp_path / "settings.toml").velocity == 64  # persisted
    bad = request({"command": "set", "values": {"colour": "red"}}, sock)
    assert not bad["ok"] and "unknown setting 'colour'" in bad["error"]
    assert request({"command": "trigger"}, sock)["ok"]
    wait_for(lambda: len(note_ons(rig)) >= 2)
    assert request({"command": "stop"}, sock)["ok"]
    status = request({"command": "status"}, sock)
    assert status["sounding"] == 0 and status["queue"]["scheduled"] == 0
    assert status["tempo"] == {"bpm": 150.0, "source": "internal", "running": True}
    assert not request({"command": "dance"}, sock)["ok"]


def test_midi_learn_binds_the_next_control_and_keeps_it(start, tmp_path: Path) -> None:
    source = SpySource()
    rig = start(Settings(bpm=240, bars=1, takes="off"), source)
    assert request({"command": "learn", "action": "generate", "timeout": 5}, tmp_path / "c.sock")["ok"]
    rig.daemon.input.inject([CONTROL_CHANGE | 2, 80, 127])
    wait_for(lambda: rig.daemon.settings.trigger_generate == "cc 80 ch 3")
    # the file is written just after the binding takes effect (atomically): wait for it too
    wait_for(lambda: load_settings(tmp_path / "settings.toml").trigger_generate == "cc 80 ch 3")
    assert source.calls == []  # learning did not trigger
    rig.daemon.input.inject([CONTROL_CHANGE | 2, 80, 0])
    rig.daemon.input.inject([CONTROL_CHANGE | 2, 80, 127])
    wait_for(lambda: len(source.calls) == 1)


def test_a_phrase_made_while_the_daws_transport_is_stopped_plays_when_it_starts(start) -> None:
    rig = start(Settings(clock="midi", bars=1, quantize="bar", takes="off"))
    rig.daemon.trigger()
    time.sleep(0.2)
    assert note_ons(rig) == []  # held: no clock running
    rig.daemon.input.inject([SONG_START])
    t0 = time.monotonic()
    for i in range(24 * 3):  # three beats of clock at 120 bpm, fed as it would arrive
        while time.monotonic() < t0 + i * 60 / 120 / 24:
            time.sleep(0.0005)
        rig.daemon.input.inject([TIMING_CLOCK])
    wait_for(lambda: len(note_ons(rig)) >= 1)
    first = note_ons(rig)[0][0]
    assert first - t0 == pytest.approx(0.0, abs=0.02)  # the downbeat of Start


@pytest.mark.parametrize(("step_ms", "expect"), [(10, "fewer steps"), (120, "a later beat")])
def test_steps_adapt_to_the_time_left_and_the_downbeat_is_never_missed(start, step_ms: int, expect: str) -> None:
    source = SlowSource(step_ms / 1000)
    rig = start(Settings(bpm=240, bars=1, steps=100, min_steps=4, quantize="beat", takes="off"), source)
    triggered = rig.daemon.clock.beat_at(time.monotonic())
    rig.daemon.trigger()
    wait_for(lambda: len(note_ons(rig)) >= 1)
    info = rig.daemon.status()["last"]
    first = note_ons(rig)[0][0]
    beat = rig.daemon.clock.beat_at(first)
    assert beat == pytest.approx(round(beat), abs=0.04)  # on a beat, not late (10 ms: a loaded run saw 3.5)
    assert 4 <= info["steps"] < 100
    if expect == "a later beat":  # 4 steps take 480 ms, two beats at 240 bpm: not the next beat, a later one
        assert round(beat) >= math.ceil(triggered) + 1


def test_the_daemon_plays_the_models_phrases_in_key(start, tiny_denoiser) -> None:
    source = ModelPhraseSource(tiny_denoiser)
    source.warm_up()
    rig = start(Settings(bpm=240, bars=2, key="D", scale="minor", steps=8, quantize="beat", takes="off"), source)
    rig.daemon.trigger()
    wait_for(lambda: rig.daemon.status()["last"] is not None and len(note_ons(rig)) >= 1)
    played = {m[1] % 12 for _, m in note_ons(rig)}
    assert played <= parse_scale("D minor")
    assert rig.daemon.status()["last"]["steps"] <= 8


def test_the_note_lengths_chords_and_onsets_settings_reach_the_phrase_request(start) -> None:
    source = SpySource()
    settings = Settings(bpm=300, bars=1, seed=1, takes="off", note_lengths="grid", chords="model", onsets="grid")
    rig = start(settings, source)
    rig.daemon.trigger()
    wait_for(lambda: source.calls)
    request = source.calls[0][1]
    assert request.corpus_lengths is False and request.corpus_chords is False and request.onsets == "grid"
    defaults = PhraseRequest()
    assert defaults.corpus_lengths and defaults.corpus_chords and defaults.onsets == "echo"  # the corpus's, by default


def test_dmc_set_guidance_guides_the_next_phrase_and_times_its_steps_again(start, tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "model")
    attach_guide(model, write_tiny_model(tmp_path / "guide", name="guide"), 1.0)
    source = ModelPhraseSource(load_model(model, device="cpu", guidance=0))
    source.warm_up()
    assert source.denoiser.guide is None  # not loaded while off
    rig = start(Settings(bpm=240, bars=1, steps=8, quantize="beat", takes="off"), source)
    sock, budget = tmp_path / "c.sock", source.budget
    assert request({"command": "set", "values": {"guidance": "0.5"}}, sock)["ok"]
    assert source.denoiser.guidance == 0.5 and source.denoiser.guide is not None
    assert source.budget is not budget and source.budget.measured  # the guided step, measured afresh
    assert load_settings(tmp_path / "settings.toml").guidance == 0.5
    assert rig.daemon.status()["guidance"] == 0.5
    rig.daemon.trigger()
    wait_for(lambda: len(note_ons(rig)) >= 1)
    bad = request({"command": "set", "values": {"guidance": "11"}}, sock)
    assert not bad["ok"] and "'guidance' must lie in 0..10" in bad["error"]
    assert source.denoiser.guidance == 0.5 and rig.daemon.settings.guidance == 0.5
    assert request({"command": "set", "values": {"guidance": "none"}}, sock)["ok"]
    assert source.denoiser.guidance == 1.0  # the card's weight


def test_dmc_set_style_writes_the_next_phrase_in_that_style_and_an_unknown_one_changes_nothing(
    start, tmp_path: Path, styled_model_dir: Path
) -> None:
    source = ModelPhraseSource(load_model(styled_model_dir, device="cpu"))
    rig = start(Settings(bpm=240, bars=1, steps=8, takes="off"), source)
    sock = tmp_path / "c.sock"
    bad = request({"command": "set", "values": {"style": "jazz", "velocity": "60"}}, sock)
    assert not bad["ok"] and "unknown style 'jazz'; this model knows low, middle, high" in bad["error"]
    assert rig.daemon.settings.style == "mix" and rig.daemon.settings.velocity == 90
    assert request({"command": "set", "values": {"style": "high"}}, sock)["ok"]
    assert load_settings(tmp_path / "settings.toml").style == "high"
    rig.daemon.trigger()
    wait_for(lambda: rig.daemon.status()["last"] is not None and len(note_ons(rig)) >= 1)
    assert source.denoiser.style == STYLES.names.index("high")
    assert rig.daemon.status()["last"]["style"] == "high"  # the status line and the take's record name it


def test_guidance_for_a_model_without_a_guide_is_refused_and_nothing_changes(start, tmp_path: Path,
                                                                              tiny_denoiser) -> None:  # fmt: skip
    rig = start(Settings(bpm=240, bars=1, takes="off"), ModelPhraseSource(tiny_denoiser))
    answer = request({"command": "set", "values": {"guidance": "1", "velocity": "60"}}, tmp_path / "c.sock")
    assert not answer["ok"] and "has no guide" in answer["error"]
    assert rig.daemon.settings.velocity == 90 and tiny_denoiser.guidance == 0.0
    ArpeggioSource().set_guidance(0.0)  # the demo has nothing to guide: only "off" is accepted
    with pytest.raises(BridgeError, match="no model to guide"):
        ArpeggioSource().set_guidance(1.0)
