"""Trigger mapping: which note or CC on the input port means generate, stop or next variation,
and MIDI-learn (the next note or CC pressed becomes the binding).

Bindings are written as the user would say them: ``"note 36"``, ``"cc 20"``, ``"note 36 ch 16"``
(channels 1..16; no channel: any), ``""`` for none. A CC counts as a press when it crosses
64 upwards, so a button that sends 127 then 0 fires once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from rtmidi.midiconstants import CONTROL_CHANGE, NOTE_ON

from bridge.errors import BridgeError

ACTIONS = ("generate", "stop", "variation")
KINDS = ("note", "cc")
PRESS = 64


@dataclass(frozen=True)
class Binding:
    """A note-on or a CC press, on one channel (0-based) or any (None)."""

    kind: str
    number: int
    channel: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or not 0 <= self.number <= 127:
            raise BridgeError(f"a trigger is 'note N' or 'cc N' with N in 0..127, got {self.kind} {self.number}")
        if self.channel is not None and not 0 <= self.channel <= 15:
            raise BridgeError(f"a trigger's channel must be 1..16, got {self.channel + 1}")

    def __str__(self) -> str:
        text = f"{self.kind} {self.number}"
        return text if self.channel is None else f"{text} ch {self.channel + 1}"

    def covers(self, pressed: Binding) -> bool:
        """Whether a press (which has a channel) is this binding."""
        same = (self.kind, self.number) == (pressed.kind, pressed.number)
        return same and self.channel in (None, pressed.channel)


def parse_binding(text: str) -> Binding | None:
    """``"note 36 ch 16"`` -> Binding; ``""`` or ``"none"`` -> None; else BridgeError saying the form."""
    words = text.lower().split()
    if not words or words == ["none"]:
        return None
    try:
        if len(words) == 2:
            return Binding(words[0], int(words[1]))
        if len(words) == 4 and words[2] in ("ch", "channel"):
            return Binding(words[0], int(words[1]), int(words[3]) - 1)
    except ValueError:
        pass
    raise BridgeError(f"cannot read the trigger {text!r}; write 'note 36', 'cc 20' or 'note 36 ch 16'")


@dataclass(frozen=True)
class Learned:
    """MIDI-learn caught a binding for an action."""

    action: str
    binding: Binding


class TriggerInput:
    """Turns input messages into actions, or into a :class:`Learned` binding while learning.

    Called from the MIDI input thread; ``arm`` from the control thread: one lock.
    """

    def __init__(self, bindings: Mapping[str, Binding | None]) -> None:
        self._lock = threading.Lock()
        self._bindings = dict(bindings)
        self._cc_values: dict[tuple[int, int], int] = {}
        self._learning: tuple[str, float] | None = None  # (action, until monotonic)

    def set_bindings(self, bindings: Mapping[str, Binding | None]) -> None:
        with self._lock:
            self._bindings = dict(bindings)

    def arm(self, action: str, timeout_s: float = 30.0) -> None:
        """Learn ``action`` from the next note or CC press within ``timeout_s``."""
        if action not in ACTIONS:
            raise BridgeError(f"cannot learn {action!r}; actions are {', '.join(ACTIONS)}")
        with self._lock:
            self._learning = (action, time.monotonic() + timeout_s)

    @property
    def learning(self) -> str | None:
        with self._lock:
            if self._learning is None or time.monotonic() > self._learning[1]:
                return None
            return self._learning[0]

    def feed(self, message: list[int]) -> str | Learned | None:
        """The action this message triggers, a :class:`Learned` binding, or None."""
        if len(message) != 3 or message[0] & 0xF0 not in (NOTE_ON, CONTROL_CHANGE):
            return None
        with self._lock:
            pressed = self._pressed(message)
            if pressed is None:
                return None
            if self._learning is not None and time.monotonic() <= self._learning[1]:
                action, self._learning = self._learning[0], None
                return Learned(action, pressed)
            for action, binding in self._bindings.items():
                if binding is not None and binding.covers(pressed):
                    return action
        return None

    def _pressed(self, message: list[int]) -> Binding | None:
        """The note or CC press in ``message`` (with its channel), or None (a release, a CC below 64)."""
        status, number, value = message[0] & 0xF0, message[1], message[2]
        channel = message[0] & 0x0F
        if status == NOTE_ON:
            return Binding("note", number, channel) if value > 0 else None
        before = self._cc_values.get((channel, number), 0)
        self._cc_values[(channel, number)] = value
        return Binding("cc", number, channel) if value >= PRESS > before else None
