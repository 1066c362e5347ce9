"""General MIDI instrument families, for choosing which tracks a model learns from."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.errors import BridgeError

# GM level 1: sixteen families of eight programs each, in program order.
FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive", "sound_effects",
)  # fmt: skip
DRUM_CHANNEL = 9  # channel 10 in the 1-based numbering musicians see


def family_of(program: int) -> str:
    """The GM family name of a program number 0..127."""
    return FAMILIES[program // 8]


def programs_for(families: Iterable[str] = ("piano",), programs: Iterable[int] = ()) -> frozenset[int]:
    """Programs allowed by family names (or ``all``) plus explicit program numbers."""
    allowed: set[int] = set()
    for name in families:
        if name == "all":
            return frozenset(range(128))
        if name not in FAMILIES:
            raise BridgeError(f"instrument family {name!r} is unknown; use 'all' or one of {', '.join(FAMILIES)}")
        start = FAMILIES.index(name) * 8
        allowed.update(range(start, start + 8))
    for program in programs:
        if not 0 <= program <= 127:
            raise BridgeError(f"MIDI program {program} is out of range 0..127")
        allowed.add(program)
    return frozenset(allowed)
