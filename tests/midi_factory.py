"""Write test MIDI files with mido, at any resolution, event by event.

Scenarios are written in beats (ints, exact ``Fraction``s or floats that land on the grid) and
turned into ticks of the file's own ``ticks_per_beat``, so one scenario can be written at 96, 480
or 960 ticks per beat and must read back as the same notes. mido writes running status by
itself; :func:`running_status_count` proves it from the bytes, and :func:`raw_midi_file`
assembles files from hand-written track bytes for what mido would never write.

Other test authors may import this module (``from tests.midi_factory import ...``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import mido
import numpy as np

from bridge.codec import Note

Beats = int | float | Fraction
Event = tuple[Beats, mido.Message | mido.MetaMessage]  # (time in beats, message; its .time is ignored)


def to_ticks(beats: Beats, ticks_per_beat: int) -> int:
    """Beats -> ticks; a time that is not on the file's grid is a mistake in the test, not a rounding.

    A float is read as the nearest simple fraction, so ``1 / 3`` beat is 32 ticks at 96 per beat.
    """
    exact = Fraction(beats).limit_denominator(100_000) if isinstance(beats, float) else Fraction(beats)
    ticks = exact * ticks_per_beat
    if ticks.denominator != 1:
        raise ValueError(f"{beats} beats is not on the grid of {ticks_per_beat} ticks per beat")
    return int(ticks)


def tempo(beat: Beats, bpm: float) -> Event:
    return beat, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))


def time_signature(beat: Beats, numerator: int, denominator: int) -> Event:
    return beat, mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator)


def program_change(beat: Beats, channel: int, program: int) -> Event:
    return beat, mido.Message("program_change", channel=channel, program=program)


def note_on(beat: Beats, pitch: int, velocity: int = 80, channel: int = 0) -> Event:
    return beat, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)


def note_off(
    beat: Beats, pitch: int, channel: int = 0, *, style: Literal["note_off", "velocity0"] = "note_off"
) -> Event:
    """A note-off as a real note_off message or as a note_on with velocity 0 (the common compact form)."""
    if style == "velocity0":
        return beat, mido.Message("note_on", channel=channel, note=pitch, velocity=0)
    return beat, mido.Message("note_off", channel=channel, note=pitch, velocity=64)


def note_events(
    notes: Iterable[Note], *, style: Literal["note_off", "velocity0"] = "note_off", program_changes: bool = False
) -> list[Event]:
    """On and off events for notes (their channel and velocity); optionally a program change per channel at 0."""
    notes = list(notes)
    events: list[Event] = []
    if program_changes:
        events += [program_change(0, ch, prog) for ch, prog in sorted({(n.channel, n.program) for n in notes})]
    for n in notes:
        events.append(note_on(n.onset, n.pitch, n.velocity, n.channel))
        events.append(note_off(n.onset + n.duration, n.pitch, n.channel, style=style))
    return events


def midi_track(
    events: Iterable[Event], ticks_per_beat: int, *, end: Beats | None = None, name: str = ""
) -> mido.MidiTrack:
    """Events at absolute beats -> a track with delta times (stable order at equal times), closed by end_of_track.

    ``end`` (beats) places end_of_track later than the last event, e.g. to close a note left sounding.
    """
    timed = sorted(((to_ticks(b, ticks_per_beat), i, m) for i, (b, m) in enumerate(events)), key=lambda e: e[:2])
    track = mido.MidiTrack()
    if name:
        track.append(mido.MetaMessage("track_name", name=name, time=0))
    now = 0
    for tick, _, msg in timed:
        track.append(msg.copy(time=tick - now))
        now = tick
    last = now if end is None else to_ticks(end, ticks_per_beat)
    if last < now:
        raise ValueError(f"end {end} is before the last event")
    track.append(mido.MetaMessage("end_of_track", time=last - now))
    return track


def write_midi_file(
    path: str | os.PathLike[str], tracks: Sequence[mido.MidiTrack], *, ticks_per_beat: int = 480, file_type: int = 1
) -> Path:
    """Save tracks as a standard MIDI file (type 0 needs exactly one track); missing folders are made."""
    mid = mido.MidiFile(type=file_type, ticks_per_beat=ticks_per_beat)
    mid.tracks.extend(tracks)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    return Path(path)


def write_notes_file(
    path: str | os.PathLike[str],
    notes: Iterable[Note],
    *,
    ticks_per_beat: int = 480,
    bpm: float | None = 120.0,
    style: Literal["note_off", "velocity0"] = "note_off",
) -> Path:
    """One-track (type 0) file of notes with a program change per (channel, program) at 0 and an optional tempo."""
    events = [tempo(0, bpm)] if bpm is not None else []
    events += note_events(notes, style=style, program_changes=True)
    return write_midi_file(path, [midi_track(events, ticks_per_beat)], ticks_per_beat=ticks_per_beat, file_type=0)


def vlq(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def raw_midi_file(
    path: str | os.PathLike[str], tracks: Sequence[bytes], *, ticks_per_beat: int = 480, fmt: int = 1
) -> Path:
    """A file from hand-written track bodies (deltas and events, end_of_track included by the caller).

    ``ticks_per_beat`` is written as a signed 16-bit division, so a negative value makes an SMPTE file.
    """
    header = b"MThd" + (6).to_bytes(4, "big") + fmt.to_bytes(2, "big") + len(tracks).to_bytes(2, "big")
    header += ticks_per_beat.to_bytes(2, "big", signed=True)
    body = b"".join(b"MTrk" + len(t).to_bytes(4, "big") + t for t in tracks)
    Path(path).write_bytes(header + body)
    return Path(path)


def read_vlq(data: bytes, pos: int) -> tuple[int, int]:
    """A variable-length quantity at ``pos`` -> (value, position after it)."""
    value = 0
    while True:
        byte = data[pos]
        value, pos = (value << 7) | (byte & 0x7F), pos + 1
        if not byte & 0x80:
            return value, pos


def running_status_count(path: str | os.PathLike[str]) -> int:
    """How many channel events in the file omit their status byte (use running status), read from the raw bytes."""
    data = Path(path).read_bytes()
    pos, count = 14, 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "big")
        body, pos = data[pos + 8 : pos + 8 + size], pos + 8 + size
        i, status = 0, None
        while i < len(body):
            _, i = read_vlq(body, i)  # the delta time
            if body[i] == 0xFF:  # meta: type, length, data; does not change the running status
                length, i = read_vlq(body, i + 2)
                i += length
                continue
            if body[i] & 0x80:
                status, i = body[i], i + 1
            else:
                count += 1
            if status is None or status >= 0xF0:
                raise ValueError("sysex events and running status without a status are not expected here")
            i += 1 if status >> 4 in (0xC, 0xD) else 2
    return count


def random_notes(
    rng: np.random.Generator,
    count: int,
    *,
    grid: int = 4,
    pitch_range: tuple[int, int] = (36, 96),
    velocity_range: tuple[int, int] = (40, 110),
    chord_share: float = 0.25,
    max_step: int = 4,
    max_duration: int = 8,
    channel: int = 0,
    program: int = 0,
) -> list[Note]:
    """Plausible piano-like notes: a wandering melody with some chords, onsets/durations on 1/``grid`` beats.

    Times are multiples of 1/grid beat, so any ticks_per_beat divisible by ``grid`` represents them exactly;
    a key is never struck again while it sounds (its earlier note is shortened), as on a piano.
    """
    low, high = pitch_range
    pitch, tick = int(rng.integers(low, high)), 0
    notes: list[Note] = []
    sounding: dict[int, int] = {}  # pitch -> index of its latest note
    while len(notes) < count:
        pitch = int(np.clip(pitch + rng.integers(-5, 6), low, high - 1))
        chord = [pitch] + ([pitch - 4, pitch - 7] if rng.random() < chord_share else [])
        for p in chord[: count - len(notes)]:
            p = int(np.clip(p, 0, 127))
            if p in sounding:  # a key is released before it is struck again: no ambiguous same-key overlaps
                before = notes[sounding[p]]
                end = min(before.onset + before.duration, tick / grid)
                notes[sounding[p]] = replace(before, duration=end - before.onset)
            sounding[p] = len(notes)
            duration, velocity = int(rng.integers(1, max_duration + 1)), int(rng.integers(*velocity_range))
            notes.append(Note(tick / grid, p, duration / grid, velocity, channel, program))
        tick += int(rng.integers(1, max_step + 1))
    return notes
