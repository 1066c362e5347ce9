"""training.dataset and training.datafile: a folder of good and bad MIDI files -> one .npz, and `dmc dataset`."""

from __future__ import annotations

import itertools
import json
import logging
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from bridge.cli import main
from bridge.codec import FeatureStats, Note, merge_unisons
from bridge.constraints import KEY_FIT_SCALES, best_key
from bridge.home_key import HOME_TONICS
from tests.midi_factory import random_notes, write_notes_file
from training.datafile import DatasetFile, load_dataset, save_dataset, style_shares
from training.dataset import BuildConfig, build_dataset, choose_heldout, choose_heldout_segments, find_midi_files
from training.errors import TrainingError

L = 16  # notes per segment in these tests


@dataclass(frozen=True)
class Corpus:
    """A folder of test files and, for every file that must be used, the segments it must give."""

    root: Path
    expected: dict[str, np.ndarray]  # relative path -> (k, L, 3) float32
    found: int
    skipped: dict[str, int]


def features_by_hand(notes: list[Note]) -> np.ndarray:
    """(pitch, duration, delta) computed here, independently of bridge.codec."""
    ordered = sorted(notes, key=lambda x: (x.onset, x.pitch))
    onsets = [x.onset for x in ordered]
    deltas = [0.0] + [b - a for a, b in itertools.pairwise(onsets)]
    return np.array([[x.pitch, x.duration, d] for x, d in zip(ordered, deltas, strict=True)])


def windows(features: np.ndarray, keep: list[int] | None = None) -> np.ndarray:
    """Non-overlapping L-note windows with a zero first delta, the ones listed in ``keep`` (default all)."""
    count = len(features) // L
    out = np.stack([features[k * L : (k + 1) * L] for k in range(count)]).astype(np.float32)
    out[:, 0, 2] = 0.0
    return out[keep if keep is not None else slice(None)]


def make_corpus(root: Path) -> Corpus:
    """Good piano files at 96/480/960 ticks per beat, plus one file for every way a file can fail."""
    rng = np.random.default_rng(7)
    expected: dict[str, np.ndarray] = {}
    sizes = {"a.mid": 40, "b.MID": 35, "sub/c.midi": 50, "sub/deeper/d.mid": 64, "e.mid": 20, "f.mid": 33}
    for i, (name, size) in enumerate(sizes.items()):
        notes = random_notes(rng, size)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_notes_file(
            root / name, notes, ticks_per_beat=(96, 480, 960)[i % 3], style=("note_off", "velocity0")[i % 2]
        )
        expected[name] = windows(features_by_hand(notes))

    gap = random_notes(rng, 48)  # one 40-beat gap before note 20: only the middle segment goes
    gap = sorted(gap, key=lambda x: (x.onset, x.pitch))
    gap_at = gap[20].onset
    gap = [Note(x.onset + 40.0 * (x.onset >= gap_at), x.pitch, x.duration, x.velocity) for x in gap]
    write_notes_file(root / "gap.mid", gap)
    expected["gap.mid"] = windows(features_by_hand(gap), keep=[0, 2])

    held = random_notes(rng, 32)  # a 20-beat note in the first segment: only the second stays
    held[3] = Note(held[3].onset, held[3].pitch, 20.0, held[3].velocity)
    write_notes_file(root / "held.mid", held)
    expected["held.mid"] = windows(features_by_hand(held), keep=[1])

    gaps = [Note(k // 8 * 30.0 + k % 8 * 0.5, 60 + k % 8, 0.5) for k in range(48)]  # a 26-beat gap every 8 notes
    write_notes_file(root / "gaps.mid", gaps)
    write_notes_file(root / "short.mid", random_notes(rng, L - 1))
    write_notes_file(root / "violin.mid", random_notes(rng, 40, program=40))
    write_notes_file(root / "drums.mid", random_notes(rng, 40, channel=9))
    (root / "empty.mid").write_bytes(b"")
    (root / "text.mid").write_text("not MIDI at all, just a renamed text file\n" * 10)
    good = (root / "a.mid").read_bytes()
    (root / "truncated.mid").write_bytes(good[: len(good) // 2])
    (root / "notes.txt").write_text("not a .mid, never looked at")
    skipped = {"unreadable": 3, "no_matching_track": 2, "too_short": 1, "threshold": 1}
    return Corpus(root, expected, found=len(expected) + sum(skipped.values()), skipped=skipped)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("midi"))


CONFIG = BuildConfig(length=L, heldout=0.3, seed=1, workers=1)


@pytest.fixture(scope="module")
def built(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, DatasetFile, Path]:
    out = tmp_path_factory.mktemp("out") / "data" / "set.npz"  # the folder does not exist yet
    meta = build_dataset([corpus.root], out, CONFIG, show_progress=False)
    return meta, load_dataset(out), out


def test_build_counts_every_skip_by_reason(corpus: Corpus, built: tuple[dict, DatasetFile, Path]) -> None:
    meta, data, _ = built
    assert meta["skipped"] == corpus.skipped
    n_segments = sum(len(s) for s in corpus.expected.values())
    counts = meta["counts"]
    assert counts["files_found"] == corpus.found
    assert counts["files_used"] == len(corpus.expected)
    assert 0 < counts["files_heldout"] == len(np.unique(data.file_id[data.heldout])) < len(corpus.expected)
    assert counts["segments"] == n_segments
    assert counts["segments_train"] + counts["segments_heldout"] == n_segments
    assert counts["segments_heldout"] == int(data.heldout.sum())
    assert counts["notes"] == n_segments * L
    assert (meta["length"], meta["hop"], meta["encoding"]) == (L, L, "log")
    assert meta["sources"] == [str(corpus.root)]
    assert list(meta["build"]["families"]) == ["piano"] and meta["build"]["max_delta"] == 16.0
    assert data.meta == {"format": 1, **json.loads(json.dumps(meta))}  # what was returned is what was stored


def test_dataset_file_arrays(corpus: Corpus, built: tuple[dict, DatasetFile, Path]) -> None:
    _, data, _ = built
    n = sum(len(s) for s in corpus.expected.values())
    assert data.segments.shape == (n, L, 3) and data.segments.dtype == np.float32
    assert data.file_id.shape == (n,) and data.file_id.dtype == np.int32
    assert data.heldout.shape == (n,) and data.heldout.dtype == bool
    assert data.files.dtype.kind == "U" and data.length == L
    assert sorted(data.files.tolist()) == sorted(corpus.expected)  # paths relative to the source folder
    for i, name in enumerate(data.files):
        np.testing.assert_allclose(data.segments[data.file_id == i], corpus.expected[str(name)], atol=1e-5)


def test_split_is_by_file(built: tuple[dict, DatasetFile, Path]) -> None:
    _, data, _ = built
    held_files = set(data.file_id[data.heldout].tolist())
    train_files = set(data.file_id[~data.heldout].tolist())
    assert held_files and train_files
    assert held_files.isdisjoint(train_files)
    assert held_files | train_files == set(range(len(data.files)))
    assert len(data.train) + len(data.heldout_segments) == len(data.segments)
    np.testing.assert_array_equal(data.heldout_segments, data.segments[np.isin(data.file_id, list(held_files))])


def test_statistics_are_those_of_the_training_split(built: tuple[dict, DatasetFile, Path]) -> None:
    _, data, _ = built
    assert data.stats == FeatureStats.fit(data.train, "log", BuildConfig().time_quantile)
    train = data.train.reshape(-1, 3)
    assert data.stats.low[0] == train[:, 0].min() and data.stats.high[0] == train[:, 0].max()
    assert data.stats.low[1:] == (0.0, 0.0)
    np.testing.assert_allclose(data.stats.high[1:], np.quantile(train[:, 1:], 0.995, axis=0))
    scaled = data.stats.scale(data.train)
    assert scaled.min() >= -1.0 and scaled[..., 0].max() <= 1.0


def test_statistics_leave_the_held_out_files_out(tmp_path: Path) -> None:
    """Five files in five pitch bands; the lowest band held out must not widen the scaling range."""
    for band in range(5):
        notes = [Note(k / 2, 30 + 12 * band + k % 6, 0.5) for k in range(2 * L)]
        write_notes_file(tmp_path / "midi" / f"band{band}.mid", notes)
    seed = next(s for s in range(100) if choose_heldout(5, 0.4, s)[0])  # a seed that holds out band 0
    config = BuildConfig(length=L, heldout=0.4, heldout_by="files", seed=seed, workers=1)
    build_dataset([tmp_path / "midi"], tmp_path / "bands.npz", config, show_progress=False)
    data = load_dataset(tmp_path / "bands.npz")
    assert "band0.mid" in data.files[data.file_id[data.heldout]].tolist()
    assert data.segments[..., 0].min() == 30.0
    assert data.stats.low[0] == data.train[..., 0].min() >= 42.0
    assert data.stats.high[0] == data.train[..., 0].max()


def test_one_and_two_workers_give_identical_files(corpus: Corpus, built: tuple, tmp_path: Path) -> None:
    _, one, _ = built
    meta = build_dataset([corpus.root], tmp_path / "two.npz", replace(CONFIG, workers=2), show_progress=False)
    two = load_dataset(tmp_path / "two.npz")
    for name in ("segments", "file_id", "heldout", "files"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert two.meta == one.meta and meta["counts"] == one.meta["counts"]


def test_seed_changes_the_held_out_files_only(corpus: Corpus, built: tuple, tmp_path: Path) -> None:
    _, first, _ = built
    build_dataset([corpus.root], tmp_path / "s.npz", replace(CONFIG, seed=5), show_progress=False)
    other = load_dataset(tmp_path / "s.npz")
    np.testing.assert_array_equal(other.segments, first.segments)
    assert not np.array_equal(other.heldout, first.heldout)


def test_choose_heldout() -> None:
    assert choose_heldout(10, 0.2, 0).sum() == 2
    assert choose_heldout(10, 0.01, 0).sum() == 1  # at least one file
    assert choose_heldout(1, 0.5, 0).sum() == 0  # never the only file
    assert choose_heldout(10, 0.0, 0).sum() == 0
    np.testing.assert_array_equal(choose_heldout(50, 0.3, 3), choose_heldout(50, 0.3, 3))


def test_choose_heldout_segments_takes_each_groups_share_of_segments() -> None:
    counts = [1] * 30 + [8] * 5 + [3] * 10  # many short files, a few long ones, a middle group
    groups = ["short"] * 30 + ["long"] * 5 + ["mid"] * 10
    for seed in range(5):
        held = choose_heldout_segments(counts, groups, 0.2, seed)
        for group, biggest in (("short", 1), ("long", 8), ("mid", 3)):
            inside = np.array(groups) == group
            total, taken = np.sum(np.array(counts)[inside]), np.sum(np.array(counts)[inside & held])
            assert abs(taken - 0.2 * total) <= biggest / 2, (seed, group, taken)
    again = choose_heldout_segments(counts, groups, 0.2, 4)
    np.testing.assert_array_equal(choose_heldout_segments(counts, groups, 0.2, 4), again)
    assert not choose_heldout_segments(counts, groups, 0.0, 0).any()
    assert choose_heldout_segments([50, 1], ["a", "a"], 0.01, 0).sum() == 1  # at least one file
    assert not choose_heldout_segments([5], ["a"], 0.5, 0).any()  # never the only file


def test_held_out_split_follows_segments_per_folder(tmp_path: Path) -> None:
    """Ten one-segment pieces and four five-segment ones in two folders: both give a share of their
    segments, where a share of files would be mostly the short pieces."""
    rng = np.random.default_rng(0)
    for name, files, segments in (("short", 10, 1), ("long", 4, 5)):
        for k in range(files):
            write_notes_file(tmp_path / "midi" / name / f"{name}{k}.mid", random_notes(rng, segments * L))
    config = BuildConfig(length=L, heldout=0.2, workers=1)
    build_dataset([tmp_path / "midi"], tmp_path / "mix.npz", config, show_progress=False)
    data = load_dataset(tmp_path / "mix.npz")
    folder = np.array([f.split("/")[0] for f in data.files])[data.file_id]
    for name in ("short", "long"):
        assert 0.1 <= data.heldout[folder == name].mean() <= 0.3, name
    assert data.meta["build"]["heldout_by"] == "segments"


def test_each_source_folder_is_a_style(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two folders and a file given by name: three styles, named by folder, each segment tagged with its own."""
    rng = np.random.default_rng(1)
    for name, files in (("jazz", 3), ("folk", 2), ("loose", 1)):
        for k in range(files):
            write_notes_file(tmp_path / name / f"{name}{k}.mid", random_notes(rng, 2 * L))
    sources = [tmp_path / "jazz", tmp_path / "folk", tmp_path / "loose" / "loose0.mid"]
    build_dataset(sources, tmp_path / "s.npz", BuildConfig(length=L, heldout=0.0, workers=1), show_progress=False)
    data = load_dataset(tmp_path / "s.npz")
    assert data.styles == ["jazz", "folk", "loose"]
    names = np.array(data.styles)[data.train_styles]
    np.testing.assert_array_equal(names, [Path(f).stem.rstrip("0123456789") for f in data.files[data.file_id]])
    assert style_shares(data) == pytest.approx([0.5, 1 / 3, 1 / 6], abs=1e-6)
    assert main(["dataset", "info", str(tmp_path / "s.npz")]) == 0
    assert "styles: 3 (jazz, folk, loose)" in capsys.readouterr().out


def test_style_names_that_clash_or_are_reserved_keep_their_whole_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for folder in ("a/piano", "b/piano", "mix"):
        write_notes_file(tmp_path / folder / "x.mid", random_notes(rng, 2 * L))
    sources = [tmp_path / "a" / "piano", tmp_path / "b" / "piano", tmp_path / "mix"]
    build_dataset(sources, tmp_path / "s.npz", BuildConfig(length=L, heldout=0.0, workers=1), show_progress=False)
    assert load_dataset(tmp_path / "s.npz").styles == [str(s) for s in sources]


def test_a_dataset_built_before_styles_loads_without_them(tmp_path: Path, built: tuple) -> None:
    _, data, _ = built
    save_dataset(tmp_path / "old.npz", replace(data, file_style=None))
    old = load_dataset(tmp_path / "old.npz")
    assert old.styles == [] and style_shares(old) == []
    with pytest.raises(TrainingError, match="records no styles; rebuild it"):
        _ = old.train_styles


def test_options_reach_the_segments(corpus: Corpus, tmp_path: Path) -> None:
    quiet = {"show_progress": False}
    meta = build_dataset([corpus.root], tmp_path / "h.npz", BuildConfig(length=L, hop=8, workers=1), **quiet)
    assert meta["hop"] == 8 and meta["counts"]["segments"] > sum(len(s) for s in corpus.expected.values())
    meta = build_dataset([corpus.root], tmp_path / "d.npz", BuildConfig(length=L, max_delta=100, workers=1), **quiet)
    assert meta["skipped"]["threshold"] == 0  # the gaps are allowed now
    strings = build_dataset([corpus.root / "violin.mid"], tmp_path / "v.npz",
                            BuildConfig(length=L, families=("strings",), workers=1), **quiet)  # fmt: skip
    assert strings["counts"]["files_used"] == 1 and strings["counts"]["segments"] == 40 // L
    assert load_dataset(tmp_path / "v.npz").files.tolist() == [str(corpus.root / "violin.mid")]


def test_linear_encoding_stores_hertz(corpus: Corpus, built: tuple[dict, DatasetFile, Path], tmp_path: Path) -> None:
    _, log_data, _ = built
    build_dataset([corpus.root], tmp_path / "l.npz", replace(CONFIG, encoding="linear"), show_progress=False)
    data = load_dataset(tmp_path / "l.npz")
    assert data.stats.encoding == "linear" and data.meta["encoding"] == "linear"
    hz = 440.0 * 2.0 ** ((log_data.segments[..., 0].astype(np.float64) - 69.0) / 12.0)
    np.testing.assert_allclose(data.segments[..., 0], hz, rtol=1e-6)
    np.testing.assert_array_equal(data.segments[..., 1:], log_data.segments[..., 1:])
    np.testing.assert_array_equal(data.heldout, log_data.heldout)


def test_home_key_moves_each_segment_to_c_major_or_a_minor(
    corpus: Corpus, built: tuple[dict, DatasetFile, Path], tmp_path: Path
) -> None:
    _, plain, _ = built
    meta = build_dataset([corpus.root], tmp_path / "k.npz", replace(CONFIG, home_key=True), show_progress=False)
    home = load_dataset(tmp_path / "k.npz")
    assert meta["build"]["home_key"] and home.stats.home_key and not plain.stats.home_key
    moves = home.segments[..., 0] - plain.segments[..., 0]  # whole semitones, one move per segment
    np.testing.assert_array_equal(moves, np.repeat(moves[:, :1], L, axis=1))
    assert set(np.unique(moves)) <= set(range(-6, 6)) and len(np.unique(moves)) > 1
    for seg in home.segments:  # C major or A minor fits as well as any key (random notes tie often)
        histogram = np.bincount(np.rint(seg[:, 0]).astype(int) % 12, minlength=12) / L
        fits = [histogram[[(t + s) % 12 for s in KEY_FIT_SCALES[mode]]].sum() for mode, t in HOME_TONICS.items()]
        assert max(fits) == pytest.approx(best_key(histogram)[2])
    np.testing.assert_array_equal(home.segments[..., 1:], plain.segments[..., 1:])


def test_merge_unisons_reads_each_file_as_one_keyboard_plays_it(tmp_path: Path) -> None:
    """A violin doubling the piano's melody, and a held note struck again, as merged parts give them."""
    piano = random_notes(np.random.default_rng(3), 3 * L)
    violin = [replace(n, channel=1, program=40, duration=n.duration + 0.25) for n in piano[::2]]
    held = [Note(0.0, 30, 64.0, channel=2), Note(8.0, 30, 1.0, channel=3)]  # a pedal that a cello strikes again
    notes = [*piano, *violin, *held]
    write_notes_file(tmp_path / "src" / "duet.mid", notes)
    argv = ["dataset", "build", str(tmp_path / "src"), "--out", "{out}", "--length", str(L), "--families", "all",
            "--mode", "merge", "--heldout", "0", "--workers", "1"]  # fmt: skip
    for name, extra in (("plain", []), ("merged", ["--merge-unisons"])):
        assert main([a.format(out=tmp_path / f"{name}.npz") for a in argv] + extra) == 0
    plain, merged = (load_dataset(tmp_path / f"{name}.npz") for name in ("plain", "merged"))
    assert merged.meta["build"]["merge_unisons"] and not plain.meta["build"]["merge_unisons"]
    expected = merge_unisons(notes)
    assert len(expected) == len(piano) + 2 and Note(0.0, 30, 8.0, channel=2) in expected
    np.testing.assert_allclose(merged.segments, windows(features_by_hand(expected)), atol=1e-5)
    twice = [((np.diff(d.segments[..., 0], axis=1) == 0) & (d.segments[:, 1:, 2] == 0)).any() for d in (plain, merged)]
    assert twice == [True, False]  # one pitch struck twice at once: kept without the option, merged with it


def test_find_midi_files(corpus: Corpus) -> None:
    found = find_midi_files([corpus.root, corpus.root / "a.mid"])  # a file also inside a folder counts once
    assert len(found) == corpus.found and found == sorted(found)
    assert {p.suffix for p in found} == {".mid", ".MID", ".midi"}
    with pytest.raises(TrainingError, match=r"nowhere does not exist"):
        find_midi_files([corpus.root / "nowhere"])


@pytest.mark.parametrize(
    ("setting", "value"),
    [("length", 1), ("hop", -1), ("encoding", "mel"), ("mode", "loudest"), ("max_duration", 0), ("max_delta", -1),
     ("heldout", 1.0), ("workers", 0), ("pitch_gain", 0.0)],
)  # fmt: skip
def test_build_config_rejects_bad_settings(setting: str, value: object) -> None:
    with pytest.raises(TrainingError, match=f"{setting}="):
        BuildConfig(**{setting: value})  # type: ignore[arg-type]


def test_no_usable_file_is_an_error_with_the_reasons(corpus: Corpus, tmp_path: Path) -> None:
    bad = [corpus.root / name for name in ("empty.mid", "short.mid", "violin.mid")]
    with pytest.raises(TrainingError, match=r"no usable segments.*'unreadable': 1.*'too_short': 1"):
        build_dataset(bad, tmp_path / "x.npz", CONFIG, show_progress=False)
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_interrupted_write_leaves_no_file(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old.npz").write_bytes(b"the previous dataset")

    def savez_then_fail(file: object, **arrays: np.ndarray) -> None:
        file.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(np, "savez_compressed", savez_then_fail)
    for name in ("new.npz", "old.npz"):
        with pytest.raises(type(error)):
            build_dataset([corpus.root], out_dir / name, CONFIG, show_progress=False)
    assert sorted(p.name for p in out_dir.iterdir()) == ["old.npz"]  # no new file, no temporary file
    assert (out_dir / "old.npz").read_bytes() == b"the previous dataset"  # the old file is untouched


# --- dmc dataset build / info --------------------------------------------------------------------------


def test_cli_build_and_info(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.npz"
    argv = ["dataset", "build", str(corpus.root), "--out", str(out), "--length", str(L), "--heldout", "0.3",
            "--seed", "1", "--workers", "2", "--pitch-gain", "2.5", "--home-key"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    data = load_dataset(out)
    counts = data.meta["counts"]
    head = (
        f"{out}: {counts['segments']} segments of {L} notes ({counts['segments_train']} train, "
        f"{counts['segments_heldout']} held out) from {len(corpus.expected)} of {corpus.found} files"
    )
    assert printed.splitlines()[0] == head
    assert json.loads(re.search(r"^skipped: (.*)$", printed, re.M).group(1)) == corpus.skipped  # type: ignore[union-attr]
    assert FeatureStats.from_dict(json.loads(re.search(r"^stats: (.*)$", printed, re.M).group(1))) == data.stats  # type: ignore[union-attr]
    assert data.stats.pitch_gain == 2.5 and data.stats.home_key
    assert f"\nsemitone: {data.stats.semitone:.9g} (scaled pitch units)\n" in printed
    assert main(["dataset", "info", str(out)]) == 0
    assert capsys.readouterr().out == printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{empty}"], "no .mid or .midi files under"),
        (["{missing}"], "missing does not exist"),
        ([], "give MIDI folders or files, or --music21"),
        (["{bad}"], "no usable segments"),
    ],
)
def test_cli_build_errors_exit_2_with_a_message(
    corpus: Corpus, tmp_path: Path, caplog: pytest.LogCaptureFixture, args: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    shutil.copy(corpus.root / "text.mid", tmp_path / "bad" / "text.mid")
    folders = {"empty": tmp_path / "empty", "missing": tmp_path / "missing", "bad": tmp_path / "bad"}
    argv = [
        "dataset",
        "build",
        *(a.format(**folders) for a in args),
        "--out",
        str(tmp_path / "o.npz"),
        "--workers",
        "1",
    ]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    assert message in caplog.text
    assert not (tmp_path / "o.npz").exists()


def test_cli_info_of_a_missing_or_foreign_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["dataset", "info", str(tmp_path / "none.npz")]) == 2
    assert "cannot read dataset" in caplog.text and "dmc dataset build" in caplog.text


# --- the dataset file ----------------------------------------------------------------------------------


def test_load_refuses_foreign_and_newer_files(tmp_path: Path, built: tuple[dict, DatasetFile, Path]) -> None:
    np.savez(tmp_path / "foreign.npz", segments=np.zeros((1, 2, 3)))
    with pytest.raises(TrainingError, match=r"not a dmc dataset.*'file_id'"):
        load_dataset(tmp_path / "foreign.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(TrainingError, match="cannot read dataset"):
        load_dataset(tmp_path / "junk.npz")
    _, data, _ = built
    newer = DatasetFile(data.segments, data.file_id, data.heldout, data.files, {**data.meta, "format": 2})
    save_dataset(tmp_path / "newer.npz", newer)
    with pytest.raises(TrainingError, match="format 2"):
        load_dataset(tmp_path / "newer.npz")


def test_dataset_file_never_needs_pickle(built: tuple[dict, DatasetFile, Path]) -> None:
    _, _, path = built
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["file_id", "file_style", "files", "heldout", "meta", "segments"]
        assert all(npz[k].dtype != object for k in npz.files)
