"""Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself").

A model folder may carry a guide: a much smaller network trained briefly on the same data. At
every step both run, and the prediction moves away from the guide's:
``main + w * (main - guide)``. The guide makes the main model's errors, only worse, so the
difference points toward what the main model knows that the guide does not (here: keys and
chords; docs/evaluation.md). Unlike classifier-free guidance it needs no conditioning, and the
guide costs a fraction of a step.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from bridge.card import CARD_FILE, GuideRef, ModelCard, check_guidance, read_card, write_card
from bridge.errors import BridgeError

GUIDE_FOLDER = "guide"


def check_guide(card: ModelCard, guide: ModelCard) -> None:
    """A guide must denoise the same data the same way, or the difference of the two is noise."""
    same = {
        "length": card.length == guide.length,
        "feature scaling (stats)": card.stats == guide.stats,
        "noise schedule": card.schedule == guide.schedule,
        "prediction": card.prediction == guide.prediction,
    }
    differ = [name for name, ok in same.items() if not ok]
    if differ:
        raise BridgeError(
            f"guide {guide.name!r} cannot guide model {card.name!r}: their {', '.join(differ)} differ; "
            "train the guide on the same dataset with the same diffusion settings"
        )
    if guide.guide is not None:
        raise BridgeError(f"guide {guide.name!r} has a guide of its own; attach its folder without one")
    if guide.styles is not None and (card.styles is None or guide.styles.names != card.styles.names):
        raise BridgeError(
            f"guide {guide.name!r} is conditioned on the styles {', '.join(guide.styles.names)}, which model "
            f"{card.name!r} does not take in that order; attach a guide without styles or with the model's"
        )


def guide_files(card: ModelCard) -> list[str]:
    """The files a model folder consists of: its card, its graph and any variants' graphs."""
    variants = [v["model_file"] for v in (card.variants or {}).values()]
    return [CARD_FILE, card.model_file, *variants]


def attach_guide(model_dir: str | os.PathLike[str], guide_dir: str | os.PathLike[str], weight: float) -> ModelCard:
    """Copy the model folder ``guide_dir`` into ``model_dir/guide`` and name it in the card with ``weight``.

    Both cards are read and their checksums verified first; a guide already there is replaced only
    once the new one is copied in full.
    """
    model_dir, guide_dir = Path(model_dir), Path(guide_dir)
    card, guide = read_card(model_dir), read_card(guide_dir)
    check_guide(card, guide)
    ref = GuideRef(GUIDE_FOLDER, weight)
    target, staging = model_dir / GUIDE_FOLDER, model_dir / f".{GUIDE_FOLDER}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in guide_files(guide):
        shutil.copy2(guide_dir / name, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    card = dataclasses.replace(card, guide=ref)
    write_card(model_dir, card)
    return card


def detach_guide(model_dir: str | os.PathLike[str]) -> ModelCard:
    """Remove the guide from a model folder: its card entry first, then its files."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    if card.guide is None:
        raise BridgeError(f"model {card.name!r} ({model_dir}) has no guide")
    folder = model_dir / card.guide.folder
    card = dataclasses.replace(card, guide=None)
    write_card(model_dir, card)
    shutil.rmtree(folder, ignore_errors=True)
    return card


def guidance_weight(card: ModelCard, asked: float | None) -> float:
    """The weight to sample with: the one asked for, else the card's; 0 (off) for a model without a guide."""
    if asked is None:
        return card.guide.weight if card.guide is not None else 0.0
    check_guidance(asked)
    if asked and card.guide is None:
        raise BridgeError(
            f"model {card.name!r} has no guide, so guidance {asked:g} cannot apply; "
            "attach one with 'dmc guide MODEL GUIDE' or leave --guidance out"
        )
    return asked
