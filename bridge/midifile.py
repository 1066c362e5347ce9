"""Reading MIDI files into :class:`~bridge.codec.Note` events and writing notes back.

Times come from each file's own ticks_per_beat. A *part* is the notes of one track on one
channel (so a type-0 file with several instruments splits into parts); drums are never
taken. ``longest`` keeps the part with the most notes (the seed's main track), ``merge``
joins every matching part into one polyphonic stream.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import mido

from bridge.atomic import atomic_write
from bridge.codec import Note, sort_notes
from bridge.errors import BridgeError
from bridge.instruments import DRUM_CHANNEL, programs_for

TRACK_MODES = ("longest", "merge")
DEFAULT_BPM = 120.0


@dataclass(frozen=True)
class MidiPiece:
    """The chosen notes of one file with the tempo and metre it starts in."""

    notes: list[Note]
    bpm: float = DEFAULT_BPM
    time_signature: tuple[int, int] = (4, 4)
    ticks_per_beat: int = 480


def _program_changes(mid: mido.MidiFile) -> dict[int, tuple[list[int], list[int]]]:
    """Per channel, the ticks and programs of its program changes in every track, in time order.

    A channel's program belongs to the file, not to a track: a type-1 file may set the programs
    in a set-up track and play the notes in the others.
    """
    changes: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "program_change":
                changes[msg.channel].append((tick, msg.program))
    timeline = {channel: sorted(events, key=lambda e: e[0]) for channel, events in changes.items()}
    return {channel: ([t for t, _ in events], [p for _, p in events]) for channel, events in timeline.items()}


def _track_parts(
    track: mido.MidiTrack, tpb: int, programs: dict[int, tuple[list[int], list[int]]]
) -> dict[int, list[Note]]:
    """Notes of one track by channel; same-pitch overlaps pair first-on with first-off."""
    sounding: dict[tuple[int, int], deque[tuple[int, int, int]]] = defaultdict(deque)
    parts: dict[int, list[Note]] = defaultdict(list)
    tick = 0

    def program(channel: int) -> int:  # the program in force at this tick (0 before any change)
        ticks, values = programs.get(channel, ([], []))
        i = bisect_right(ticks, tick)
        return values[i - 1] if i else 0

    def close(channel: int, pitch: int, end: int) -> None:
        start, velocity, prog = sounding[channel, pitch].popleft()
        parts[channel].append(Note(start / tpb, pitch, (end - start) / tpb, velocity, channel, prog))

    for msg in track:
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            sounding[msg.channel, msg.note].append((tick, msg.velocity, program(msg.channel)))
        elif msg.type in ("note_on", "note_off") and sounding[msg.channel, msg.note]:
            close(msg.channel, msg.note, tick)
    for (channel, pitch), queue in sounding.items():
        while queue:  # a missing note-off closes at the end of the track
            close(channel, pitch, tick)
    return parts


def _first_meta(mid: mido.MidiFile) -> tuple[float, tuple[int, int]]:
    """The tempo and time signature in force at the start (defaults when absent).

    The earliest of each by time, in any track: a later track's tick-0 tempo comes before a change
    further on in the first track.
    """
    first: dict[str, tuple[int, mido.MetaMessage]] = {}
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in ("set_tempo", "time_signature") and (msg.type not in first or tick < first[msg.type][0]):
                first[msg.type] = (tick, msg)
    bpm = mido.tempo2bpm(first["set_tempo"][1].tempo) if "set_tempo" in first else DEFAULT_BPM
    sig = first.get("time_signature", (0, None))[1]
    return round(bpm, 3), (sig.numerator, sig.denominator) if sig else (4, 4)


def read_midi(
    path: str | os.PathLike[str],
    *,
    families: Iterable[str] = ("piano",),
    programs: Iterable[int] = (),
    mode: str = "longest",
) -> MidiPiece:
    """Read the notes of the parts whose GM program matches, in codec order.

    Raises BridgeError for an unreadable file; a file with no matching part gives no notes.
    """
    if mode not in TRACK_MODES:
        raise BridgeError(f"track mode {mode!r} is unknown; use one of {TRACK_MODES}")
    allowed = programs_for(families, programs)
    try:
        mid = mido.MidiFile(path, clip=True)
    except Exception as exc:  # untrusted bytes: mido raises many kinds for corrupt files
        raise BridgeError(f"cannot read MIDI file {path}: {exc}") from exc
    if mid.type == 2 or mid.ticks_per_beat <= 0:
        raise BridgeError(f"cannot read MIDI file {path}: type {mid.type}, {mid.ticks_per_beat} ticks per beat")
    programs = _program_changes(mid)
    parts = [
        [n for n in notes if n.program in allowed]
        for track in mid.tracks
        for channel, notes in _track_parts(track, mid.ticks_per_beat, programs).items()
        if channel != DRUM_CHANNEL
    ]
    parts = [p for p in parts if p]
    chosen = max(parts, key=len, default=[]) if mode == "longest" else [n for p in parts for n in p]
    bpm, metre = _first_meta(mid)
    return MidiPiece(sort_notes(chosen), bpm, metre, mid.ticks_per_beat)


def _note_messages(notes: Sequence[Note], tpb: int) -> list[tuple[int, int, mido.Message]]:
    """(tick, order, message) for every note; offs sort before ons at the same tick."""
    events = []
    for n in notes:
        start = round(n.onset * tpb)
        end = max(start + 1, round((n.onset + n.duration) * tpb))
        events.append((start, 1, mido.Message("note_on", channel=n.channel, note=n.pitch, velocity=n.velocity)))
        events.append((end, 0, mido.Message("note_off", channel=n.channel, note=n.pitch, velocity=0)))
    return sorted(events, key=lambda e: (e[0], e[1]))


def midi_file(
    notes: Sequence[Note],
    *,
    bpm: float = DEFAULT_BPM,
    time_signature: tuple[int, int] = (4, 4),
    ticks_per_beat: int = 480,
) -> mido.MidiFile:
    """A type-0 file: tempo, metre, one program change per used channel, then the notes."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    num, den = time_signature
    track.append(mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0))
    for channel, program in sorted({(n.channel, n.program) for n in notes}):
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    now = 0
    for tick, _, msg in _note_messages(notes, ticks_per_beat):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    return mid


def write_midi(path: str | os.PathLike[str], notes: Sequence[Note], **options: object) -> None:
    """Write notes as a .mid file atomically (a temporary file, then a rename); see :func:`midi_file`."""
    mid = midi_file(notes, **options)  # type: ignore[arg-type]
    with atomic_write(path) as handle:
        mid.save(file=handle)
