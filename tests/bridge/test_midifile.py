"""bridge.midifile: every event the reader takes, at several resolutions, and the writer's round trip."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from fractions import Fraction as F
from pathlib import Path

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codec import Note
from bridge.errors import BridgeError
from bridge.instruments import DRUM_CHANNEL, FAMILIES, family_of, programs_for
from bridge.midifile import midi_file, read_midi, write_midi
from tests.midi_factory import (
    midi_track,
    note_events,
    note_off,
    note_on,
    program_change,
    raw_midi_file,
    running_status_count,
    tempo,
    time_signature,
    vlq,
    write_midi_file,
    write_notes_file,
)

RESOLUTIONS = (96, 480, 960)
END = F(6)  # every track of the scenario ends here (beats)


def n(onset: F | int, pitch: int, duration: F | int, velocity: int, channel: int, program: int) -> Note:
    """An expected note, times given as exact fractions of a beat."""
    return Note(float(onset), pitch, float(duration), velocity, channel, program)


# What the reader must make of the scenario below, written out by hand (not derived from the events).
PIANO = [  # channel 0, program 0: chords, note_off and velocity-0 offs, same-pitch overlap, a missing off
    n(0, 60, 1, 100, 0, 0),
    n(0, 64, 1, 90, 0, 0),
    n(0, 67, 1, 80, 0, 0),
    n(1, 62, F(1, 2), 70, 0, 0),
    n(F(3, 2), 65, F(1, 3), 72, 0, 0),
    n(2, 72, 1, 60, 0, 0),  # first on pairs with first off
    n(F(5, 2), 72, 1, 95, 0, 0),
    n(4, 69, 2, 88, 0, 0),  # never switched off: closed at the end of its track (beat 6)
    n(5, 71, F(1, 96), 77, 0, 0),  # one tick at 96 per beat
]
PIANO2 = [n(0, 48, 2, 64, 2, 1), n(2, 52, 1, 65, 2, 1), n(3, 55, 1, 66, 2, 1)]  # channel 2, program 1
VIOLA = [n(4, 57, 1, 67, 2, 41), n(5, 59, 1, 68, 2, 41)]  # channel 2 after a program change to 41
VIOLIN = [n(F(k, 2), 76 + k % 5, F(1, 2), 50 + k, 1, 40) for k in range(12)]  # channel 1, program 40


def scenario_tracks(tpb: int) -> list[mido.MidiTrack]:
    """Conductor, piano, drums, violin, and a piano part that turns into a viola, all ending at beat 6."""
    conductor = [
        tempo(0, 90),
        time_signature(0, 3, 4),
        (0, mido.MetaMessage("key_signature", key="Eb")),
        (3, mido.MetaMessage("marker", text="B")),
        tempo(3, 140),  # later changes do not make the starting tempo or metre
        time_signature(3, 6, 8),
    ]
    piano = [
        program_change(0, 0, 0),
        (0, mido.Message("control_change", channel=0, control=64, value=127)),
        note_on(0, 60, 100),
        note_on(0, 64, 90),
        note_on(0, 67, 80),
        note_off(1, 60),
        note_off(1, 64),
        note_off(1, 67),
        note_on(1, 62, 70),
        note_off(F(3, 2), 62, style="velocity0"),
        note_on(F(3, 2), 65, 72),
        note_off(F(11, 6), 65, style="velocity0"),
        note_on(2, 72, 60),
        (2, mido.Message("pitchwheel", channel=0, pitch=1000)),
        note_on(F(5, 2), 72, 95),  # the same key again while it sounds
        note_off(3, 72),
        note_off(F(7, 2), 72, style="velocity0"),
        note_off(4, 50),  # an off for a key that is not sounding: ignored
        note_on(4, 69, 88),  # no off at all
        note_on(5, 71, 77),
        note_off(5 + F(1, 96), 71, style="velocity0"),
        (F(11, 2), mido.Message("control_change", channel=0, control=64, value=0)),
    ]
    hits = [Note(k / 4, 36 if k % 2 else 42, 1 / 8, 100, DRUM_CHANNEL, 0) for k in range(24)]
    drums = [program_change(0, DRUM_CHANNEL, 0), *note_events(hits)]  # program 0 (piano!) on channel 10
    violin = [program_change(0, 1, 40), *note_events(VIOLIN, style="velocity0")]
    piano2 = [program_change(0, 2, 1), *note_events(PIANO2), program_change(4, 2, 41), *note_events(VIOLA)]
    parts = {"conductor": conductor, "piano": piano, "drums": drums, "violin": violin, "piano 2": piano2}
    return [midi_track(events, tpb, end=END, name=name) for name, events in parts.items()]


def write_scenario(path: Path, tpb: int, file_type: int) -> Path:
    tracks = scenario_tracks(tpb)
    if file_type == 0:  # the same events in one track: parts are told apart by channel
        events = []
        for track in tracks:
            tick = 0
            for msg in track:
                tick += msg.time
                if msg.type not in ("end_of_track", "track_name"):
                    events.append((F(tick, tpb), msg))
        tracks = [midi_track(events, tpb, end=END)]
    return write_midi_file(path, tracks, ticks_per_beat=tpb, file_type=file_type)


CASES = [  # (families, programs, mode) -> expected notes
    (("piano",), (), "longest", PIANO),
    (("piano",), (), "merge", PIANO + PIANO2),
    (("all",), (), "longest", VIOLIN),  # drums (24 hits) never count, even with program 0
    (("all",), (), "merge", PIANO + PIANO2 + VIOLIN + VIOLA),
    (("strings",), (), "longest", VIOLIN),
    (("strings",), (), "merge", VIOLIN + VIOLA),
    ((), (41,), "longest", VIOLA),  # a part's notes are filtered by the program in force at each note-on
    (("piano",), (40,), "longest", VIOLIN),
    (("piano",), (40,), "merge", PIANO + PIANO2 + VIOLIN),
    (("guitar",), (), "merge", []),
    ((), (), "merge", []),
]


@pytest.mark.parametrize("file_type", [1, 0])
@pytest.mark.parametrize("tpb", RESOLUTIONS)
def test_reads_every_event_of_the_scenario(tmp_path: Path, tpb: int, file_type: int) -> None:
    path = write_scenario(tmp_path / f"scenario-{tpb}.mid", tpb, file_type)
    assert running_status_count(path) > 0  # mido wrote running status; the reader must follow it
    for families, programs, mode, expected in CASES:
        piece = read_midi(path, families=families, programs=programs, mode=mode)
        assert piece.notes == sorted(expected), (families, programs, mode)
        assert (piece.bpm, piece.time_signature, piece.ticks_per_beat) == (90.0, (3, 4), tpb)


def test_notes_come_in_codec_order(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "s.mid", 480, 1)
    notes = read_midi(path, families=("all",), mode="merge").notes
    keys = [(x.onset, x.pitch) for x in notes]
    assert keys == sorted(keys)
    assert len(notes) == len(PIANO + PIANO2 + VIOLIN + VIOLA)


def test_hand_written_running_status(tmp_path: Path) -> None:
    """Raw track bytes: running status through note-ons, velocity-0 offs, note_offs and a controller."""
    track = b"".join(
        [
            vlq(0) + bytes([0xC0, 0x00]),  # program 0
            vlq(0) + bytes([0x90, 60, 100]),  # note_on 60 at beat 0
            vlq(0) + bytes([64, 80]),  # running status: note_on 64
            vlq(96) + bytes([60, 0]),  # running status, velocity 0: off 60 at beat 1
            vlq(0) + bytes([64, 0]),  # off 64
            vlq(0) + bytes([67, 70]),  # on 67 at beat 1
            vlq(48) + bytes([0x80, 67, 64]),  # note_off 67 at beat 1.5
            vlq(0) + bytes([69, 64]),  # running status note_off for a silent key: ignored
            vlq(0) + bytes([0xB0, 64, 127]),  # sustain pedal: ignored
            vlq(0) + bytes([0x90, 72, 90]),  # on 72 at 1.5
            vlq(192) + bytes([72, 0]),  # off 72 at 3.5 (a two-byte delta)
            vlq(0) + bytes([0xFF, 0x2F, 0x00]),
        ]
    )
    path = raw_midi_file(tmp_path / "raw.mid", [track], ticks_per_beat=96, fmt=0)
    assert running_status_count(path) == 6
    piece = read_midi(path)
    assert piece.notes == [
        Note(0.0, 60, 1.0, 100),
        Note(0.0, 64, 1.0, 80),
        Note(1.0, 67, 0.5, 70),
        Note(1.5, 72, 2.0, 90),
    ]
    assert (piece.bpm, piece.time_signature, piece.ticks_per_beat) == (120.0, (4, 4), 96)


def test_start_tempo_is_the_earliest_in_any_track(tmp_path: Path) -> None:
    """A tempo at tick 0 in a later track is in force before a tempo change later in the first track."""
    conductor = midi_track([time_signature(0, 5, 8), tempo(4, 150), time_signature(4, 2, 4)], 480)
    piano = midi_track([tempo(0, 100), *note_events([Note(0.0, 60, 1.0)])], 480)
    path = write_midi_file(tmp_path / "t.mid", [conductor, piano])
    piece = read_midi(path)
    assert (piece.bpm, piece.time_signature) == (100.0, (5, 8))


def test_program_set_in_another_track_applies(tmp_path: Path) -> None:
    """Channel state is the file's: a set-up track makes channel 1 a violin, then a piano from beat 2."""
    setup = midi_track([tempo(0, 120), program_change(0, 1, 40)], 480, name="setup")
    later = midi_track([program_change(2, 1, 0)], 480, name="later change")
    notes = [Note(float(k), 70 + k, 1.0, 80, 1) for k in range(4)]
    path = write_midi_file(tmp_path / "setup.mid", [setup, midi_track(note_events(notes), 480), later])
    assert read_midi(path, families=("strings",)).notes == [replace(x, program=40) for x in notes[:2]]
    assert read_midi(path).notes == notes[2:]  # program 0 again from beat 2: piano


def test_missing_meta_gives_defaults(tmp_path: Path) -> None:
    path = write_notes_file(tmp_path / "plain.mid", [Note(0.0, 60, 1.0)], bpm=None, ticks_per_beat=96)
    piece = read_midi(path)
    assert (piece.bpm, piece.time_signature, piece.ticks_per_beat) == (120.0, (4, 4), 96)


def test_longest_part_in_a_type0_file_splits_by_channel(tmp_path: Path) -> None:
    """One track with two piano parts on two channels: `longest` takes one channel's notes, `merge` both."""
    left = [Note(float(k), 40 + k, 1.0, 60, 3, 2) for k in range(3)]
    right = [Note(k / 2, 70 + k, 0.5, 70, 4, 0) for k in range(5)]
    path = write_notes_file(tmp_path / "two.mid", left + right)
    assert read_midi(path).notes == right
    assert read_midi(path, mode="merge").notes == sorted(left + right)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"", "empty"),
        (b"this is a text file, not MIDI\n" * 4, "text"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x20\x00\x90\x3c", "truncated"),
    ],
)
def test_unreadable_files_raise_bridge_error_naming_the_file(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / f"{what}.mid"
    path.write_bytes(content)
    with pytest.raises(BridgeError, match=f"cannot read MIDI file .*{what}.mid"):
        read_midi(path)


def test_truncated_copy_of_a_good_file_is_unreadable(tmp_path: Path) -> None:
    good = write_scenario(tmp_path / "good.mid", 480, 1)
    data = good.read_bytes()
    for cut in (len(data) - 3, len(data) // 2, 20):
        bad = tmp_path / f"cut{cut}.mid"
        bad.write_bytes(data[:cut])
        with pytest.raises(BridgeError, match="cannot read MIDI file"):
            read_midi(bad)


def test_smpte_and_type2_files_are_refused(tmp_path: Path) -> None:
    track = vlq(0) + bytes([0x90, 60, 100]) + vlq(10) + bytes([60, 0]) + vlq(0) + bytes([0xFF, 0x2F, 0x00])
    smpte = raw_midi_file(tmp_path / "smpte.mid", [track], ticks_per_beat=-((25 << 8) | 40), fmt=0)
    assert mido.MidiFile(smpte).ticks_per_beat < 0  # what mido makes of an SMPTE division
    with pytest.raises(BridgeError, match="ticks per beat"):
        read_midi(smpte)
    type2 = raw_midi_file(tmp_path / "type2.mid", [track, track], ticks_per_beat=96, fmt=2)
    with pytest.raises(BridgeError, match="type 2"):
        read_midi(type2)


def test_bad_options_are_bridge_errors(tmp_path: Path) -> None:
    path = write_notes_file(tmp_path / "a.mid", [Note(0.0, 60, 1.0)])
    with pytest.raises(BridgeError, match="track mode 'loudest'"):
        read_midi(path, mode="loudest")
    with pytest.raises(BridgeError, match="family 'pianos'"):
        read_midi(path, families=("pianos",))
    with pytest.raises(BridgeError, match="128"):
        read_midi(path, programs=(128,))


def test_instrument_families() -> None:
    assert len(FAMILIES) == 16
    assert programs_for() == frozenset(range(8))
    assert programs_for(("strings",)) == frozenset(range(40, 48))
    assert programs_for(("piano",), (40, 41)) == frozenset([*range(8), 40, 41])
    assert programs_for(("all",)) == frozenset(range(128))
    assert programs_for((), ()) == frozenset()
    assert [family_of(p) for p in (0, 7, 8, 40, 127)] == ["piano", "piano", "chromatic_percussion", "strings",
                                                          "sound_effects"]  # fmt: skip
    with pytest.raises(BridgeError, match="-1"):
        programs_for((), (-1,))


# --- writing -------------------------------------------------------------------------------------------


def test_written_file_structure(tmp_path: Path) -> None:
    notes = [Note(0.0, 60, 1.0, 90, 0, 0), Note(0.5, 76, 0.25, 70, 1, 40), Note(1.0, 60, 1.0, 80, 0, 0)]
    write_midi(tmp_path / "w.mid", notes, bpm=96.0, time_signature=(6, 8), ticks_per_beat=96)
    mid = mido.MidiFile(tmp_path / "w.mid")
    assert (mid.type, mid.ticks_per_beat, len(mid.tracks)) == (0, 96, 1)
    msgs = list(mid.tracks[0])
    assert [m.type for m in msgs[:4]] == ["set_tempo", "time_signature", "program_change", "program_change"]
    assert all(m.time == 0 for m in msgs[:5])
    assert mido.tempo2bpm(msgs[0].tempo) == pytest.approx(96.0)
    assert (msgs[1].numerator, msgs[1].denominator) == (6, 8)
    assert [(m.channel, m.program) for m in msgs[2:4]] == [(0, 0), (1, 40)]
    ticks, timeline = 0, []
    for m in msgs[4:]:
        ticks += m.time
        if m.type in ("note_on", "note_off"):
            timeline.append((ticks, m.type, m.note, m.velocity))
    # at tick 96 the first C's off comes before the second C's on, so back-to-back notes stay two notes
    assert timeline == [
        (0, "note_on", 60, 90),
        (48, "note_on", 76, 70),
        (72, "note_off", 76, 0),
        (96, "note_off", 60, 0),
        (96, "note_on", 60, 80),
        (192, "note_off", 60, 0),
    ]
    assert msgs[-1].type == "end_of_track"
    assert read_midi(tmp_path / "w.mid", families=("all",), mode="merge").notes == sorted(notes)


def test_zero_length_note_lasts_one_tick(tmp_path: Path) -> None:
    write_midi(tmp_path / "z.mid", [Note(1.0, 60, 0.0)], ticks_per_beat=96)
    assert read_midi(tmp_path / "z.mid").notes == [Note(1.0, 60, 1 / 96)]


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "song.mid"
    write_midi(target, [Note(0.0, 60, 1.0)])
    before = target.read_bytes()

    def broken_save(self: mido.MidiFile, filename: object = None, file: object = None) -> None:
        file.write(b"MThd\x00\x00")  # type: ignore[attr-defined]  # half a file, then the disk is full
        raise OSError("No space left on device")

    monkeypatch.setattr(mido.MidiFile, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        write_midi(target, [Note(0.0, 72, 2.0)])
    assert target.read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.mid"]  # no temporary file left behind
    with pytest.raises(OSError, match="No space"):
        write_midi(tmp_path / "new.mid", [Note(0.0, 72, 2.0)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.mid"]


def test_midi_file_builds_in_memory() -> None:
    mid = midi_file([Note(0.0, 60, 1.0, 100, 5, 33)], ticks_per_beat=120)
    on = next(m for m in mid.tracks[0] if m.type == "note_on")
    change = next(m for m in mid.tracks[0] if m.type == "program_change")
    assert (on.channel, on.velocity, change.channel, change.program, mid.ticks_per_beat) == (5, 100, 5, 33, 120)


CHANNELS = [c for c in range(16) if c != DRUM_CHANNEL]


@st.composite
def separated_notes(draw: st.DrawFn, tpb: int) -> list[Note]:
    """Notes on a tick grid, one program per channel, never overlapping another note of the same key (may touch)."""
    channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=4, unique=True))
    program = {c: draw(st.integers(0, 127)) for c in channels}
    cursor: dict[tuple[int, int], int] = {}
    notes = []
    for _ in range(draw(st.integers(0, 30))):
        channel, pitch = draw(st.sampled_from(channels)), draw(st.integers(0, 127))
        onset = cursor.get((channel, pitch), 0) + draw(st.integers(0, 4 * tpb))
        duration = draw(st.integers(1, 8 * tpb))
        cursor[channel, pitch] = onset + duration
        notes.append(Note(onset / tpb, pitch, duration / tpb, draw(st.integers(1, 127)), channel, program[channel]))
    return notes


@st.composite
def files(draw: st.DrawFn, overlapping: bool) -> tuple[int, list[Note], float, tuple[int, int]]:
    tpb = draw(st.sampled_from([24, 96, 480, 960, 1000]))
    if overlapping:
        channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True))
        program = {c: draw(st.integers(0, 127)) for c in channels}
        notes = []
        for _ in range(draw(st.integers(0, 30))):
            channel = draw(st.sampled_from(channels))
            onset, duration = draw(st.integers(0, 16 * tpb)), draw(st.integers(1, 8 * tpb))
            pitch = draw(st.integers(58, 62))  # a narrow range, so the same key overlaps often
            notes.append(Note(onset / tpb, pitch, duration / tpb, draw(st.integers(1, 127)), channel, program[channel]))
    else:
        notes = draw(separated_notes(tpb))
    bpm = draw(st.floats(20.0, 300.0))
    metre = (draw(st.integers(1, 16)), draw(st.sampled_from([1, 2, 4, 8, 16, 32])))
    return tpb, notes, bpm, metre


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files(overlapping=False))
def test_write_read_round_trip(tmp_path: Path, case: tuple[int, list[Note], float, tuple[int, int]]) -> None:
    tpb, notes, bpm, metre = case
    path = tmp_path / "rt.mid"
    write_midi(path, notes, bpm=bpm, time_signature=metre, ticks_per_beat=tpb)
    piece = read_midi(path, families=("all",), mode="merge")
    assert piece.notes == sorted(notes)
    assert piece.bpm == pytest.approx(bpm, abs=2e-3)
    assert (piece.time_signature, piece.ticks_per_beat) == (metre, tpb)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files(overlapping=True))
def test_round_trip_of_overlapping_same_key_notes(tmp_path: Path, case: tuple[int, list[Note], float, tuple]) -> None:
    """Overlaps of one key are ambiguous in MIDI: onsets (with velocity) and ends survive, their pairing is FIFO."""
    tpb, notes, _, _ = case
    path = tmp_path / "ov.mid"
    write_midi(path, notes, ticks_per_beat=tpb)
    got = read_midi(path, families=("all",), mode="merge").notes

    def starts(ns: list[Note]) -> Counter:
        return Counter((round(x.onset * tpb), x.pitch, x.velocity, x.channel, x.program) for x in ns)

    def ends(ns: list[Note]) -> Counter:
        return Counter((round((x.onset + x.duration) * tpb), x.pitch, x.channel) for x in ns)

    assert starts(got) == starts(notes)
    assert ends(got) == ends(notes)
