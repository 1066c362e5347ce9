"""The styles a conditioned model knows (the source folders it was trained on) and how a request picks one.

A styled network takes a third input, ``style`` ``(B,)`` int32: the index of a name, or ``len(names)``
for "no style" (the mixture of all of them, which training learns by showing a tenth of the segments
without theirs). ``mix`` draws each piece's style with the odds the training data had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.errors import BridgeError

NO_STYLE = "none"  # the request for the unconditioned mixture
MIX = "mix"  # the request for a style per piece, drawn by training share
REQUESTS = (MIX, NO_STYLE)
STYLE_STREAM = 0x5717E  # keeps the style draw apart from the sampler's noise, which the same seed drives


@dataclass(frozen=True)
class Styles:
    """Style names in index order and each one's share of the training segments."""

    names: tuple[str, ...]
    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.names or len(set(self.names)) != len(self.names) or set(self.names) & set(REQUESTS):
            raise BridgeError(f"styles need distinct names other than {REQUESTS}, got {list(self.names)}")
        if len(self.shares) != len(self.names) or min(self.shares) < 0 or abs(sum(self.shares) - 1.0) > 1e-3:
            raise BridgeError(f"style shares must be one per name and sum to 1, got {list(self.shares)}")

    @property
    def none(self) -> int:
        """The index that means "no style"."""
        return len(self.names)

    def check(self, asked: str) -> str:
        """``asked`` if it is a style name, ``mix`` or ``none``; else a BridgeError that lists them."""
        if asked not in self.names and asked not in REQUESTS:
            known = ", ".join(self.names)
            raise BridgeError(f"unknown style {asked!r}; this model knows {known} (or {MIX}, {NO_STYLE})")
        return asked

    def choose(self, asked: str, rng: np.random.Generator) -> int:
        """The style index for a request: one name, ``none``, or ``mix`` (drawn by share from ``rng``)."""
        if self.check(asked) == MIX:
            return int(rng.choice(len(self.names), p=np.asarray(self.shares) / sum(self.shares)))
        return self.none if asked == NO_STYLE else self.names.index(asked)

    def name(self, index: int) -> str:
        """The name of an index (``none`` for the no-style index)."""
        return NO_STYLE if index == self.none else self.names[index]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Styles:
        """Parse ``{"names": [...], "shares": [...]}``."""
        if not isinstance(data, dict) or set(data) != {"names", "shares"}:
            raise BridgeError(f"styles must have 'names' and 'shares' only, got {data!r}")
        return cls(tuple(map(str, data["names"])), tuple(map(float, data["shares"])))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"names": list(self.names), "shares": list(self.shares)}


def check_style(styles: Styles | None, asked: str) -> None:
    """BridgeError, naming what there is, for a style the network cannot take; one without styles takes only
    ``mix`` and ``none`` (both mean its one mixture)."""
    if styles is not None:
        styles.check(asked)
    elif asked not in REQUESTS:
        raise BridgeError(f"this model is not conditioned on styles; use style {MIX} or {NO_STYLE}, not {asked!r}")


def pick_style(styles: Styles | None, asked: str, seed: int) -> int | None:
    """The style index of one piece or phrase, drawn from its own seed so that it is made again alike
    (None for a network without styles; :func:`check_style` refuses what it cannot take)."""
    check_style(styles, asked)
    return None if styles is None else styles.choose(asked, np.random.default_rng([seed, STYLE_STREAM]))
