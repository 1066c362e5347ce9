"""Settings: checked on creation, text from ``dmc set`` coerced, TOML round trip, unknown keys named."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import BridgeError
from bridge.settings import Settings, load_settings, parse_assignments, save_settings


def test_defaults_are_valid_and_round_trip_through_toml(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    assert load_settings(path) == Settings()  # no file yet: defaults
    changed = Settings().with_values({"key": "F#", "scale": "dorian", "seed": "7", "program": "none", "bars": 4})
    save_settings(path, changed)
    assert load_settings(path) == changed
    assert "program" not in path.read_text()  # None is left out


def test_text_values_are_coerced_by_type() -> None:
    s = Settings().with_values(parse_assignments(["offset_ms=-12.5", "velocity=100", "seed=random", "mode=respond"]))
    assert (s.offset_ms, s.velocity, s.seed, s.mode) == (-12.5, 100, None, "respond")
    guided = Settings().with_values(parse_assignments(["guidance=0.5"]))
    assert guided.guidance == 0.5 and guided.with_values({"guidance": "none"}).guidance is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"colour": "red"}, "unknown setting 'colour'"),
        ({"velocity": "200"}, "'velocity' must lie in 1..127"),
        ({"bars": "two"}, "'bars' needs a int"),
        ({"bars": 2.5}, "'bars' needs a int"),
        ({"mode": "loop"}, "'mode' must be one of phrase, continuous, respond"),
        ({"scale": "klingon"}, "settings 'key' and 'scale': cannot read the scale"),
        ({"trigger_stop": "knob 3"}, "setting 'trigger_stop': "),
        ({"steps": "3", "min_steps": "4"}, "'min_steps'"),
        ({"note_lengths": "nearest"}, "'note_lengths' must be one of corpus, grid"),
        ({"chords": "jazz"}, "'chords' must be one of corpus, model"),
        ({"onsets": "swing"}, "'onsets' must be one of echo, corpus, grid"),
        ({"guidance": "-1"}, "'guidance' must lie in 0..10"),
    ],
)
def test_bad_values_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(BridgeError, match=message):
        Settings().with_values(values)


def test_unknown_key_in_the_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('bars = 2\ntempo = 120\n')
    with pytest.raises(BridgeError, match=r"settings.toml: unknown setting 'tempo'"):
        load_settings(path)


def test_assignment_without_equals_is_an_error() -> None:
    with pytest.raises(BridgeError, match="KEY=VALUE"):
        parse_assignments(["bars"])


def test_key_auto_is_a_setting() -> None:
    assert Settings(key="auto").scale_text == "auto"
    with pytest.raises(BridgeError, match="key"):
        Settings(key="H")
