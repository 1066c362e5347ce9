"""Trigger mapping and MIDI-learn."""

from __future__ import annotations

import pytest
from rtmidi.midiconstants import CONTROL_CHANGE, NOTE_OFF, NOTE_ON

from bridge.errors import BridgeError
from bridge.triggers import Binding, Learned, TriggerInput, parse_binding


def test_parse_and_print_bindings() -> None:
    assert parse_binding("note 36 ch 16") == Binding("note", 36, 15)
    assert str(parse_binding("CC 20")) == "cc 20"
    assert parse_binding("none") is None
    with pytest.raises(BridgeError, match="note 36"):
        parse_binding("note")


def test_notes_and_cc_presses_trigger_their_actions() -> None:
    triggers = TriggerInput({"generate": Binding("note", 36, 15), "stop": Binding("cc", 20)})
    assert triggers.feed([NOTE_ON | 15, 36, 100]) == "generate"
    assert triggers.feed([NOTE_ON | 0, 36, 100]) is None  # other channel
    assert triggers.feed([NOTE_OFF | 15, 36, 0]) is None
    assert triggers.feed([CONTROL_CHANGE | 3, 20, 127]) == "stop"
    assert triggers.feed([CONTROL_CHANGE | 3, 20, 100]) is None  # still held: one press
    assert triggers.feed([CONTROL_CHANGE | 3, 20, 0]) is None
    assert triggers.feed([CONTROL_CHANGE | 3, 20, 127]) == "stop"


def test_learn_takes_the_next_press_with_its_channel() -> None:
    triggers = TriggerInput({})
    triggers.arm("variation")
    assert triggers.learning == "variation"
    assert triggers.feed([CONTROL_CHANGE | 2, 21, 0]) is None  # not a press
    assert triggers.feed([CONTROL_CHANGE | 2, 21, 127]) == Learned("variation", Binding("cc", 21, 2))
    assert triggers.learning is None


def test_learn_times_out_and_rejects_unknown_actions() -> None:
    triggers = TriggerInput({})
    triggers.arm("generate", timeout_s=0.0)
    assert triggers.feed([NOTE_ON, 60, 90]) is None
    with pytest.raises(BridgeError, match="actions are"):
        triggers.arm("explode")
