"""training.corpus: music21's offline scores -> cached MIDI folders -> `dmc dataset build --music21`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import training.corpus as corpus_module
from bridge.cli import main
from bridge.codec import Note
from tests.midi_factory import write_notes_file
from training.corpus import (
    FAILED_SUFFIX,
    SCORE_SUFFIXES,
    cache_root,
    convert_corpus,
    convert_score,
    corpus_paths,
    score_names,
)
from training.datafile import load_dataset
from training.errors import TrainingError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder for this test (never the user's ~/.cache)."""
    monkeypatch.setenv("DMC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "music21"


def test_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DMC_CACHE", str(tmp_path / "a"))
    assert cache_root() == tmp_path / "a" / "music21"
    monkeypatch.delenv("DMC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "diffusion-composer" / "music21"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "diffusion-composer" / "music21"


def test_corpus_paths_are_scores_only() -> None:
    haydn = corpus_paths("haydn")
    assert len(haydn) == 9 and all(p.suffix == ".mxl" and p.is_file() for p in haydn)
    bach = corpus_paths("bach")
    assert len(bach) > 300
    assert {p.suffix.lower() for p in bach} <= set(SCORE_SUFFIXES)  # no .rntxt analyses
    with pytest.raises(TrainingError, match="no scores for 'nobody'"):
        corpus_paths("nobody")


@pytest.mark.parametrize("composer", ["haydn", "mozart", "beethoven", "bach", "monteverdi", "trecento"])
def test_score_names_are_unique_per_piece(composer: str) -> None:
    """music21 has many 'movement1.mxl' in different folders: each must get its own MIDI file name."""
    paths = corpus_paths(composer)
    names = score_names(paths)
    assert len(set(names)) == len(names)
    assert all("/" not in name and name for name in names)
    # a score left out is the same piece in another format (beethoven/opus18no1/movement1.krn and .mxl)
    kept = set(names.values())
    for left_out in set(paths) - kept:
        assert left_out.with_suffix("") in {p.with_suffix("") for p in kept}, left_out
    pieces = {p.with_suffix("") for p in paths}
    assert len(names) == len(pieces)


def test_score_names_of_haydn() -> None:
    names = score_names(corpus_paths("haydn"))
    assert sorted(names) == [f"opus{o}-movement{m}" for o, ms in (("1no1", 5), ("74no1", 4)) for m in range(1, ms + 1)]


def fake_convert(source: Path, target_dir: Path, name: str | None = None) -> int:
    """Stands in for music21's conversion (module level, so worker processes can unpickle it).

    Fails like music21 (a marker, 0 written) for Haydn's opus 74 no. 1, third movement.
    """
    stem = name or source.stem
    if stem == "opus74no1-movement3":
        (target_dir / f"{stem}{FAILED_SUFFIX}").write_text("badly formed repeats")
        return 0
    write_notes_file(target_dir / f"{stem}.mid", [Note(float(k), 60 + len(source.parts) % 12, 1.0) for k in range(4)])
    return 1


def test_convert_corpus_writes_one_file_per_piece_and_caches(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_module, "convert_score", fake_convert)
    folders = convert_corpus(["haydn", "mozart"], workers=2, show_progress=False)
    assert folders == [cache / "haydn", cache / "mozart"]
    assert len(list(folders[0].glob("*.mid"))) == 8  # and one that failed
    assert [p.name for p in folders[0].glob(f"*{FAILED_SUFFIX}")] == [f"opus74no1-movement3{FAILED_SUFFIX}"]
    assert len(list(folders[1].glob("*.mid"))) == 16
    before = {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()}

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached corpus must not be converted again")

    monkeypatch.setattr(corpus_module, "ProcessPoolExecutor", no_conversion)
    assert convert_corpus(["haydn", "mozart"], workers=2, show_progress=False) == folders
    assert {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()} == before  # failures are not retried


def test_a_score_music21_cannot_read_is_remembered(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mxl"
    bad.write_text("not a MusicXML archive")
    assert convert_score(bad, tmp_path, "set-broken") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mxl", f"set-broken{FAILED_SUFFIX}"]
    assert "broken.mxl" in (tmp_path / f"set-broken{FAILED_SUFFIX}").read_text()


@pytest.mark.slow
def test_dmc_dataset_build_music21_offline(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real conversion of Haydn's nine quartet movements (about 25 s of CPU), then a cached rebuild.

    Marked slow: deselect with ``-m "not slow"``.
    """
    out = tmp_path / "haydn.npz"
    argv = ["dataset", "build", "--music21", "haydn", "--out", str(out), "--length", "64", "--heldout", "0.25",
            "--workers", str(min(2, os.cpu_count() or 1))]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    movements = {f"opus{o}-movement{m}" for o, ms in (("1no1", 5), ("74no1", 4)) for m in range(1, ms + 1)}
    converted = {p.stem for p in (cache / "haydn").glob("*.mid")}
    failed = {p.stem for p in (cache / "haydn").glob(f"*{FAILED_SUFFIX}")}
    assert converted | failed == movements and not converted & failed  # one file per movement, or why not
    assert len(converted) >= 7  # music21 9/10 cannot expand the repeats of opus 74/1 movements 3 and 4
    data = load_dataset(out)
    counts = data.meta["counts"]
    match = re.match(
        rf"{re.escape(str(out))}: (\d+) segments of 64 notes \((\d+) train, (\d+) held out\) from (\d+) of (\d+) files",
        printed,
    )
    assert match, printed
    keys = ("segments", "segments_train", "segments_heldout", "files_used", "files_found")
    assert [int(g) for g in match.groups()] == [counts[k] for k in keys]
    assert counts["files_found"] == len(converted) and counts["files_used"] >= 7
    assert counts["segments"] > 100 and counts["segments_heldout"] > 0
    assert data.segments.shape == (counts["segments"], 64, 3)
    assert data.meta["music21"] == ["haydn"]
    assert list(data.meta["build"]["families"]) == ["all"] and data.meta["build"]["mode"] == "merge"
    assert {f.removesuffix(".mid") for f in data.files.tolist()} <= converted
    assert len(set(data.files.tolist())) == len(data.files)
    assert set(data.file_id[data.heldout].tolist()).isdisjoint(data.file_id[~data.heldout].tolist())

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second build must read the cache")

    monkeypatch.setattr(corpus_module, "ProcessPoolExecutor", no_conversion)
    assert main([*argv[:5], str(tmp_path / "again.npz"), *argv[6:]]) == 0
    again = load_dataset(tmp_path / "again.npz")
    assert (again.segments == data.segments).all() and again.meta["counts"] == counts
