"""Global hotkeys: parsing, and a press reaching the daemon's action.

pynput needs a desktop session to listen to the keyboard, which these machines lack, so the
listener is given a stand-in for pynput's ``keyboard`` module with the same GlobalHotKeys API.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import pytest

from bridge.errors import BridgeError
from bridge.hotkeys import DEFAULT_HOTKEYS, HotkeyListener, parse_hotkeys


class FakeGlobalHotKeys:
    """pynput.keyboard.GlobalHotKeys' surface: a mapping of combos to callbacks, start and stop."""

    made: ClassVar[list[FakeGlobalHotKeys]] = []

    def __init__(self, hotkeys: dict) -> None:
        self.hotkeys, self.running = hotkeys, False
        FakeGlobalHotKeys.made.append(self)

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False


def test_parse_keeps_defaults_and_refuses_nonsense() -> None:
    assert parse_hotkeys("") == DEFAULT_HOTKEYS
    assert parse_hotkeys("generate=<f9>, stop=<f10>")["stop"] == "<f10>"
    with pytest.raises(BridgeError, match="ACTION=KEYS"):
        parse_hotkeys("play=<f9>")
    with pytest.raises(BridgeError, match="share one hotkey"):
        parse_hotkeys("generate=<f9>,stop=<f9>")


def test_a_press_calls_the_action_and_errors_do_not_escape() -> None:
    calls: list[str] = []

    def failing() -> None:
        raise RuntimeError("boom")

    actions = {"generate": lambda: calls.append("generate"), "stop": failing, "variation": lambda: None}
    keyboard = SimpleNamespace(GlobalHotKeys=FakeGlobalHotKeys)
    with HotkeyListener(parse_hotkeys("generate=<f9>"), actions, keyboard) as listener:
        fake = FakeGlobalHotKeys.made[-1]
        assert fake.running and set(fake.hotkeys) == {"<f9>", DEFAULT_HOTKEYS["stop"], DEFAULT_HOTKEYS["variation"]}
        fake.hotkeys["<f9>"]()
        fake.hotkeys[DEFAULT_HOTKEYS["stop"]]()  # logged, not raised into pynput's thread
        assert listener.bindings["generate"] == "<f9>"
    assert calls == ["generate"] and not fake.running


def test_no_keyboard_to_listen_to_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no X display pynput (if installed) cannot start; without pynput, the extra is named."""
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(BridgeError, match="hotkeys"):
        HotkeyListener(DEFAULT_HOTKEYS, {}).__enter__()
