"""dmc generate: files, record, regeneration, refusals, prompts, long pieces, key constraints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mido
import numpy as np
import pytest

from bridge.card import read_card
from bridge.chords import chord_sets
from bridge.cli import main
from bridge.codec import Note, merge_unisons
from bridge.constraints import parse_scale
from bridge.errors import BridgeError
from bridge.generate import GenerateOptions, generate, read_record
from bridge.midifile import read_midi, write_midi
from bridge.runtime import resolve_model_dir
from evaluation.metrics import groove_consistency


def _options(model: Path, **overrides: object) -> GenerateOptions:
    return GenerateOptions(**{"n": 2, "model": str(model), "steps": 8, "seed": 5, "device": "cpu", **overrides})


def _notes(path: Path) -> list[Note]:
    return read_midi(path, families=("all",), mode="merge").notes


def test_writes_n_files_and_a_complete_record(tiny_model_dir: Path, tmp_path: Path) -> None:
    paths = generate(_options(tiny_model_dir, n=3), tmp_path / "out")
    assert [p.name for p in paths] == ["sample-1.mid", "sample-2.mid", "sample-3.mid"]
    record = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert [f["seed"] for f in record["files"]] == [5, 6, 7]
    assert record["options"]["sampler"] == "dpm++" and record["options"]["steps"] == 8
    assert record["model"]["name"] == "tiny" and len(record["model"]["sha256"]) == 64
    for path, entry in zip(paths, record["files"], strict=True):
        assert mido.MidiFile(path).ticks_per_beat > 0
        assert len(_notes(path)) == entry["notes"] == 16  # the tiny model's L


def test_seeds_repeat_and_differ(tiny_model_dir: Path, tmp_path: Path) -> None:
    a = generate(_options(tiny_model_dir), tmp_path / "a")
    b = generate(_options(tiny_model_dir), tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != a[1].read_bytes()


def test_regenerate_from_record_gives_identical_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    first = generate(_options(tiny_model_dir, seed=None, sampler="ddim"), tmp_path / "first")
    assert main(["generate", str(tmp_path / "again"), "--from", str(tmp_path / "first" / "samples.json")]) == 0
    assert [p.read_bytes() for p in first] == [(tmp_path / "again" / p.name).read_bytes() for p in first]


def test_a_record_from_before_the_corpus_chords_and_onsets_is_made_again_without_them(tmp_path: Path) -> None:
    """Records without ``chords`` or ``onsets`` were made before they existed: --from must not snap their
    chords nor weigh their onsets."""
    args = ["--n", "1", "--seed", "3", "--steps", "6", "--device", "cpu", "--chords", "model", "--onsets", "grid"]
    assert main(["generate", str(tmp_path / "own"), *args]) == 0
    record = json.loads((tmp_path / "own" / "samples.json").read_text())
    del record["options"]["chords"], record["options"]["onsets"]
    (tmp_path / "old.json").write_text(json.dumps(record))
    options = read_record(tmp_path / "old.json")[0]
    assert (options.chords, options.onsets) == ("model", "grid")
    assert main(["generate", str(tmp_path / "again"), "--from", str(tmp_path / "old.json")]) == 0
    assert (tmp_path / "again" / "sample-1.mid").read_bytes() == (tmp_path / "own" / "sample-1.mid").read_bytes()


def test_one_file_alone_from_its_recorded_seed(tiny_model_dir: Path, tmp_path: Path) -> None:
    paths = generate(_options(tiny_model_dir, n=3), tmp_path / "all")
    seed = json.loads((tmp_path / "all" / "samples.json").read_text())["files"][2]["seed"]
    (single,) = generate(_options(tiny_model_dir, n=1, seed=seed), tmp_path / "one")
    assert single.read_bytes() == paths[2].read_bytes()


def test_refuses_a_non_empty_folder_unless_forced(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(BridgeError, match="not empty"):
        generate(_options(tiny_model_dir), out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    generate(_options(tiny_model_dir), out, force=True)
    assert (out / "keep.txt").read_text() == "mine" and (out / "sample-2.mid").is_file()


def test_cli_reports_a_missing_model_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(tmp_path / "out"), "--model", str(tmp_path / "nowhere")]) == 2
    assert not (tmp_path / "out" / "samples.json").exists()


def test_key_and_range_hold_in_every_note(tiny_model_dir: Path, tmp_path: Path) -> None:
    paths = generate(_options(tiny_model_dir, n=4, key="D dorian", low=50, high=70), tmp_path / "out")
    allowed = parse_scale("D dorian")
    for path in paths:
        pitches = [n.pitch for n in _notes(path)]
        assert pitches and all(p % 12 in allowed and 50 <= p <= 70 for p in pitches)


def test_long_pieces_have_the_requested_length(tiny_model_dir: Path, tmp_path: Path) -> None:
    paths = generate(_options(tiny_model_dir, notes=40), tmp_path / "out")
    assert [len(_notes(p)) for p in paths] == [40, 40]


def test_continuation_keeps_the_prompt_notes(tiny_model_dir: Path, tmp_path: Path) -> None:
    prompt = [Note(i * 0.5, 60 + (i % 5), 0.5, 80) for i in range(6)]
    write_midi(tmp_path / "prompt.mid", prompt)
    (path, _) = generate(_options(tiny_model_dir, prompt=str(tmp_path / "prompt.mid")), tmp_path / "out")
    notes = _notes(path)
    assert len(notes) == 16
    assert [(n.onset, n.pitch, n.duration) for n in notes[:6]] == [(n.onset, n.pitch, n.duration) for n in prompt]


def test_invalid_options_name_the_option() -> None:
    with pytest.raises(BridgeError, match="velocity"):
        GenerateOptions(velocity=0)
    with pytest.raises(BridgeError, match="precision"):
        GenerateOptions(precision="fp64")
    with pytest.raises(BridgeError, match="unknown generate option"):
        GenerateOptions.from_dict({"n": 1, "tempo": 3})


def test_no_flags_use_the_shipped_default_model(tmp_path: Path) -> None:
    """`dmc generate out/` on a fresh install: the default model, found without any flag."""
    assert main(["generate", str(tmp_path / "out"), "--n", "1", "--seed", "0"]) == 0
    record = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert record["model"]["name"] == "default" and record["options"]["model"] is None
    notes = _notes(tmp_path / "out" / "sample-1.mid")
    assert all(n.onset * 4 == round(n.onset * 4) for n in notes)  # the default 1/4 grid
    # 128 notes sampled; the model doubled some pitches at one onset, and a keyboard plays each once
    assert len(notes) == record["files"][0]["notes"] < 128 and merge_unisons(notes) == notes
    assert record["precision"] == "fp32" and record["options"]["precision"] == "auto"  # fp32 on CPU


def test_fp16_is_recorded_and_regenerates(tmp_path: Path) -> None:
    """--precision fp16 runs the shipped fp16 graph (here on CPU); --from makes the same files again."""
    args = ["--n", "2", "--seed", "3", "--steps", "4", "--device", "cpu", "--precision", "fp16"]
    assert main(["generate", str(tmp_path / "half"), *args]) == 0
    record = json.loads((tmp_path / "half" / "samples.json").read_text())
    assert record["precision"] == "fp16"
    assert main(["generate", str(tmp_path / "again"), "--from", str(tmp_path / "half" / "samples.json")]) == 0
    for name in ("sample-1.mid", "sample-2.mid"):
        assert (tmp_path / "half" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_corpus_note_lengths_replace_the_blurred_dotted_eighths(tmp_path: Path) -> None:
    """The shipped model blurs eighths and quarters; weighed by its corpus, far fewer dotted eighths remain."""
    counts = {}
    for choice in ("grid", "corpus"):
        args = ["--n", "8", "--seed", "1", "--steps", "10", "--device", "cpu", "--note-lengths", choice]
        assert main(["generate", str(tmp_path / choice), *args]) == 0
        record = json.loads((tmp_path / choice / "samples.json").read_text())
        assert record["options"]["note_lengths"] == choice
        durations = [n.duration for p in sorted((tmp_path / choice).glob("*.mid")) for n in _notes(p)]
        counts[choice] = sum(abs(d - 0.75) < 1e-6 for d in durations) / len(durations)
    assert counts["corpus"] < 0.05 < 0.15 < counts["grid"], counts


def test_free_timing_under_guidance_keeps_the_rhythm_in_range(tmp_path: Path) -> None:
    """With --grid 0 no projection holds the times; the guided step once pushed them past the training
    range until nearly every gap decoded as the longest (2 beats). The clip of x0 keeps them musical."""
    args = ["--n", "8", "--seed", "0", "--steps", "20", "--device", "cpu", "--grid", "0"]
    assert main(["generate", str(tmp_path / "free"), *args]) == 0
    assert json.loads((tmp_path / "free" / "samples.json").read_text())["options"]["guidance"] > 0
    gaps = np.concatenate([np.diff(sorted({n.onset for n in _notes(p)})) for p in (tmp_path / "free").glob("*.mid")])
    assert np.median(gaps) < 1.0 and np.mean(gaps > 1.9) < 0.1, np.percentile(gaps, [10, 50, 90])


def test_onsets_keep_to_the_beat_and_bars_echo_unless_the_plain_grid_is_asked_for(tmp_path: Path) -> None:
    """The shipped model's onsets fall on every sixteenth of the beat alike; weighed by its corpus, most fall
    on the beat or its half, as the corpus's (81%) do; with the echo (the default) the bars also repeat their
    rhythm more, as the corpus's do (groove consistency: median 0.935 in the held-out music)."""
    shares, groove = {}, {}
    for choice in ("grid", "corpus", "echo"):
        args = ["--n", "8", "--seed", "1", "--device", "cpu", "--onsets", choice]
        assert main(["generate", str(tmp_path / choice), *args]) == 0
        assert json.loads((tmp_path / choice / "samples.json").read_text())["options"]["onsets"] == choice
        pieces = [_notes(p) for p in (tmp_path / choice).glob("*.mid")]
        onsets = np.concatenate([sorted({n.onset for n in notes}) for notes in pieces])
        shares[choice] = np.mean(np.isclose(onsets % 0.5, 0.0))
        groove[choice] = np.mean([groove_consistency(notes) for notes in pieces])
    assert shares["grid"] < 0.6 < 0.75 < min(shares["corpus"], shares["echo"]), shares  # seen: 0.58, 0.85, 0.93
    assert groove["echo"] > groove["corpus"] + 0.02, groove  # seen: 0.936 and 0.898


def test_chords_are_the_corpus_chords_unless_the_models_own_are_asked_for(tmp_path: Path) -> None:
    """The shipped model's own chords often hold sets its corpus never struck; snapped, (nearly) none do."""
    known = set(read_card(resolve_model_dir("default")).chords.sets)
    shares = {}
    for choice in ("model", "corpus"):
        args = ["--n", "8", "--seed", "1", "--steps", "10", "--device", "cpu", "--chords", choice]
        assert main(["generate", str(tmp_path / choice), *args]) == 0
        assert json.loads((tmp_path / choice / "samples.json").read_text())["options"]["chords"] == choice
        pieces = [_notes(p) for p in sorted((tmp_path / choice).glob("*.mid"))]
        sets = [s for notes in pieces for s in chord_sets([n.pitch for n in notes], [n.onset for n in notes])]
        shares[choice] = np.mean([s in known for s in sets])
    assert shares["model"] < 0.85 < 0.95 < shares["corpus"], shares


def test_the_chord_snap_leaves_the_prompt_as_the_user_wrote_it(tmp_path: Path) -> None:
    """A prompt of chords the corpus never struck (C-F-B, one semitone from B-F) is continued, not corrected."""
    prompt = [Note(beat, p, 1.0) for beat in range(8) for p in (60, 65, 71)]
    write_midi(tmp_path / "clash.mid", prompt)
    args = ["--n", "1", "--seed", "2", "--steps", "6", "--device", "cpu", "--prompt", str(tmp_path / "clash.mid")]
    assert main(["generate", str(tmp_path / "out"), *args]) == 0
    written = _notes(tmp_path / "out" / "sample-1.mid")
    assert [(n.onset, n.pitch) for n in written[: len(prompt)]] == [(n.onset, n.pitch) for n in prompt]


def test_a_continuation_goes_on_in_the_prompts_rhythm_with_the_echo(tmp_path: Path) -> None:
    """Two bars of running sixteenths, continued by the shipped model: with the echo most of what follows
    runs on in sixteenths; the corpus's gaps alone turn it into eighths."""
    figure = [60, 62, 64, 65, 67, 65, 64, 62] * 4
    write_midi(tmp_path / "run.mid", [Note(i / 4, p, 0.25) for i, p in enumerate(figure)])
    shares = {}
    for choice in ("corpus", "echo"):
        args = ["--n", "4", "--seed", "1", "--device", "cpu", "--onsets", choice, "--prompt", str(tmp_path / "run.mid")]
        assert main(["generate", str(tmp_path / choice), *args]) == 0
        onsets = [sorted({n.onset for n in _notes(p)})[len(figure) - 1 :] for p in (tmp_path / choice).glob("*.mid")]
        shares[choice] = np.mean(np.isclose(np.concatenate([np.diff(o) for o in onsets]), 0.25))
    assert shares["corpus"] < 0.4 < 0.6 < shares["echo"], shares  # seen: 0.30 and 0.74


def test_home_key_model_composes_in_c_and_moves_to_the_named_key(
    tiny_model_dir: Path, home_model_dir: Path, tmp_path: Path
) -> None:
    """The two tiny models share one network, so the home-key one's D major is the other's C major, up 2."""
    (plain,) = generate(_options(tiny_model_dir, n=1, key="C major"), tmp_path / "plain")
    (home,) = generate(_options(home_model_dir, n=1, key="D major"), tmp_path / "home")
    plain_notes, home_notes = _notes(plain), _notes(home)
    assert [(n.onset, n.pitch + 2) for n in plain_notes] == [(n.onset, n.pitch) for n in home_notes]
    assert all(n.pitch % 12 in parse_scale("D major") for n in home_notes)


def test_home_key_model_continues_a_prompt_in_the_prompts_key(
    tiny_model_dir: Path, home_model_dir: Path, tmp_path: Path
) -> None:
    e_major = [Note(i * 0.5, 64 + (0, 2, 4, 5, 7, 9, 11, 12)[i % 8], 0.5, 80) for i in range(8)]
    write_midi(tmp_path / "e.mid", e_major)
    write_midi(tmp_path / "c.mid", [dataclasses.replace(n, pitch=n.pitch - 4) for n in e_major])
    (home,) = generate(_options(home_model_dir, n=1, prompt=str(tmp_path / "e.mid")), tmp_path / "home")
    (plain,) = generate(_options(tiny_model_dir, n=1, prompt=str(tmp_path / "c.mid")), tmp_path / "plain")
    home_notes = _notes(home)
    assert [(n.onset, n.pitch) for n in home_notes[:8]] == [(n.onset, n.pitch) for n in e_major]
    assert [n.pitch - 4 for n in home_notes] == [n.pitch for n in _notes(plain)]
