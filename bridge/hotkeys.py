"""Optional global keyboard hotkeys for generate, stop and next variation (extra ``hotkeys``: pynput).

The keys work while the DAW has the focus. pynput's listener runs its own thread and calls the
daemon's actions, which are the same thread-safe calls the control channel makes.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from bridge.errors import BridgeError
from bridge.triggers import ACTIONS

log = logging.getLogger(__name__)
DEFAULT_HOTKEYS = {"generate": "<ctrl>+<alt>+g", "stop": "<ctrl>+<alt>+s", "variation": "<ctrl>+<alt>+v"}


def parse_hotkeys(text: str) -> dict[str, str]:
    """``"generate=<ctrl>+<alt>+g,stop=<f9>"`` -> bindings; actions not named keep their default; "" all defaults."""
    bindings = dict(DEFAULT_HOTKEYS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        action, sep, combo = item.partition("=")
        if not sep or action.strip() not in ACTIONS or not combo.strip():
            raise BridgeError(f"cannot read the hotkey {item!r}; write ACTION=KEYS with ACTION one of {ACTIONS}, "
                              "e.g. generate=<ctrl>+<alt>+g")  # fmt: skip
        bindings[action.strip()] = combo.strip()
    if len(set(bindings.values())) != len(bindings):
        raise BridgeError(f"two actions share one hotkey: {bindings}")
    return bindings


class HotkeyListener:
    """Global hotkeys -> actions; a context manager that stops its listener on exit."""

    def __init__(self, bindings: Mapping[str, str], actions: Mapping[str, Callable[[], object]],
                 keyboard: ModuleType | None = None) -> None:  # fmt: skip
        self.bindings = dict(bindings)
        self.actions = dict(actions)
        self._keyboard = keyboard
        self._listener: Any = None

    def __enter__(self) -> HotkeyListener:
        keyboard = self._keyboard or _pynput_keyboard()
        try:
            hotkeys = {combo: self._call(action) for action, combo in self.bindings.items()}
            self._listener = keyboard.GlobalHotKeys(hotkeys)
        except ValueError as exc:
            raise BridgeError(f"cannot use the hotkeys {self.bindings}: {exc}") from exc
        self._listener.start()
        log.info("hotkeys: %s", ", ".join(f"{a} {c}" for a, c in self.bindings.items()))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def _call(self, action: str) -> Callable[[], None]:
        def press() -> None:
            try:
                self.actions[action]()
            except Exception:  # a hotkey must never kill the keyboard listener
                log.exception("hotkey %s failed", action)

        return press


def _pynput_keyboard() -> ModuleType:
    if importlib.util.find_spec("pynput") is None:
        raise BridgeError("hotkeys need the extra: pip install 'diffusion-composer[hotkeys]'")
    try:
        from pynput import keyboard
    except Exception as exc:  # pynput fails at import when there is no display to listen to (X11, ...)
        raise BridgeError(f"global hotkeys are unavailable here ({exc}); use a MIDI trigger or 'dmc trigger'") from exc
    return keyboard
