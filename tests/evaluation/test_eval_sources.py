"""Loading sets from a dataset .npz and from a folder of .mid files; the `dmc evaluate` command."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import mido
import numpy as np
import pytest
from tonal_music import tonal_set

from bridge.codec import FeatureStats, Note, merge_unisons, notes_to_features, segment
from evaluation import EvaluationError
from evaluation.commands import register
from evaluation.sources import load_pieces
from training.datafile import DatasetFile, save_dataset

LENGTH = 32


def write_mid(path: Path, notes: list[Note], ticks_per_beat: int = 96) -> None:
    """A type-1 file written with mido alone, at a resolution other than the writer's default."""
    events = sorted(
        [(round(n.onset * ticks_per_beat), 1, "note_on", n.pitch, n.velocity) for n in notes]
        + [(round((n.onset + n.duration) * ticks_per_beat), 0, "note_off", n.pitch, 0) for n in notes]
    )
    track, now = mido.MidiTrack(), 0
    for tick, _, kind, pitch, velocity in events:
        track.append(mido.Message(kind, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    mid.save(path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset .npz of 12 pieces cut into 32-note segments; files 8..11 are held out."""
    features = [notes_to_features(p) for p in tonal_set(5, 12)]
    cuts = [segment(f, LENGTH) for f in features]
    segments = np.concatenate(cuts)
    file_id = np.repeat(np.arange(12), [len(c) for c in cuts])
    stats = FeatureStats.fit(segments[file_id < 8])
    meta = {"length": LENGTH, "hop": LENGTH, "encoding": "log", "stats": stats.to_dict(), "styles": ["odd", "even"]}
    files, file_style = np.array([f"{i}.mid" for i in range(12)]), (np.arange(12) % 2 == 0).astype(np.int32)
    path = tmp_path_factory.mktemp("data") / "set.npz"
    save_dataset(path, DatasetFile(segments, file_id, file_id >= 8, files, meta, file_style))
    return path


def test_dataset_split_decodes_segments(dataset: Path):
    heldout = load_pieces(dataset, split="heldout")
    train = load_pieces(dataset, split="train")
    assert heldout.length == LENGTH and set(heldout.groups) == {8, 9, 10, 11}
    assert set(train.groups) == set(range(8))
    first = segment(notes_to_features(tonal_set(5, 12)[8]), LENGTH)[0]
    np.testing.assert_allclose(notes_to_features(list(heldout.pieces[0])), first, atol=1e-5)  # stored as float32


def melody_of(piece: list[Note]) -> list[Note]:
    """The monophonic top line (the generator's chords have velocity 60): no same-pitch overlaps,
    which a MIDI channel cannot tell apart."""
    return [n for n in piece if n.velocity != 60]


def test_one_styles_reference(dataset: Path, tmp_path: Path):
    """--reference-style keeps the held-out segments of the files of that style only."""
    assert set(load_pieces(dataset, style="even").groups) == {8, 10}
    assert set(load_pieces(dataset, style="odd").groups) == {9, 11}
    with pytest.raises(EvaluationError, match="has no style 'jazz'; its styles: odd, even"):
        load_pieces(dataset, style="jazz")
    with pytest.raises(EvaluationError, match="records no styles"):
        load_pieces(tmp_path, style="odd")


def test_midi_folder_round_trip(tmp_path: Path):
    short, long = (melody_of(p) for p in tonal_set(6, 2))
    write_mid(tmp_path / "a.mid", short[:20])
    (tmp_path / "sub").mkdir()
    write_mid(tmp_path / "sub" / "b.MID", long)
    (tmp_path / "notes.txt").write_text("not midi")
    loaded = load_pieces(tmp_path, length=LENGTH)
    assert len(loaded.pieces) == 1 + len(long) // LENGTH and set(loaded.groups) == {0, 1}
    # At most LENGTH notes: the file as it is; longer: the dataset builder's segments.
    np.testing.assert_allclose(notes_to_features(list(loaded.pieces[0])), notes_to_features(short[:20]))
    assert [n.onset for n in loaded.pieces[0]] == pytest.approx([n.onset for n in short[:20]])
    expected = segment(notes_to_features(long), LENGTH)
    for piece, features in zip(loaded.pieces[1:], expected, strict=True):
        np.testing.assert_allclose(notes_to_features(list(piece)), features, atol=1e-9)


def test_unusable_sources_are_clear_errors(tmp_path: Path):
    with pytest.raises(EvaluationError, match=r"no \.mid files"):
        load_pieces(tmp_path)
    with pytest.raises(EvaluationError, match="neither"):
        load_pieces(tmp_path / "missing.npz")
    (tmp_path / "set.npz").write_bytes(b"")
    with pytest.raises(EvaluationError, match="split"):
        load_pieces(tmp_path / "set.npz", split="test")


def test_subsample_bounds_the_set(dataset: Path):
    pieces = load_pieces(dataset, split="all")
    fewer = pieces.subsample(5, np.random.default_rng(0))
    assert len(fewer.pieces) == len(fewer.groups) == 5 and set(fewer.pieces) <= set(pieces.pieces)
    assert pieces.subsample(10_000, np.random.default_rng(0)) is pieces


def test_evaluate_command(tmp_path: Path, dataset: Path, capsys: pytest.CaptureFixture[str]):
    samples = tmp_path / "samples"
    samples.mkdir()
    for i, piece in enumerate(tonal_set(7, 4)):
        write_mid(samples / f"sample-{i + 1}.mid", piece[:LENGTH])
    parser = argparse.ArgumentParser(prog="dmc")
    register(parser.add_subparsers())
    out = tmp_path / "report.json"
    args = parser.parse_args(["evaluate", str(samples), "--reference", str(dataset), "--json", str(out), "--seed", "1"])
    assert args.handler(args) == 0
    table = capsys.readouterr().out
    assert "pitch_class_transitions *" in table and "4 samples" in table
    report = json.loads(out.read_text())
    assert report["seed"] == 1 and report["summary"]["total"] == len(report["scores"])
    args = parser.parse_args(["evaluate", str(samples), "--reference", str(dataset), "--reference-style", "even"])
    assert args.handler(args) == 0 and "4 samples" in capsys.readouterr().out


def test_merge_unisons_scores_both_sets_as_one_keyboard_plays_them(tmp_path: Path, dataset: Path):
    """Pieces with every note doubled score as the pieces themselves, once both sets are merged."""
    parser = argparse.ArgumentParser(prog="dmc")
    register(parser.add_subparsers())
    reports = {}
    for name, doubled in (("plain", False), ("doubled", True)):
        folder = tmp_path / name
        folder.mkdir()
        for i, piece in enumerate(tonal_set(7, 4)):
            notes = merge_unisons(piece[:LENGTH])
            copies = [replace(n, duration=n.duration / 2) for n in notes] if doubled else []
            write_mid(folder / f"sample-{i + 1}.mid", notes + copies)
        for merged in (False, True):
            out = tmp_path / f"{name}-{merged}.json"
            argv = ["evaluate", str(folder), "--reference", str(dataset), "--json", str(out)]
            args = parser.parse_args(argv + ["--merge-unisons"] * merged)
            assert args.handler(args) == 0
            reports[name, merged] = {r["name"]: r["sample"] for r in json.loads(out.read_text())["scores"]}
    assert reports["doubled", True] == reports["plain", True]
    assert reports["doubled", False]["polyphony"] != reports["plain", False]["polyphony"]


def test_registering_the_command_stays_light():
    """`dmc` imports every command module at start-up: this one must not pull in numpy."""
    code = "import sys, evaluation.commands; assert 'numpy' not in sys.modules, 'numpy imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
