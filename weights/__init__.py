"""Shipped model folders, ``weights/<name>/`` with ``model.onnx`` and ``model.json``.

Found through importlib.resources, so the default model loads without a flag from an
editable or a regular install alike.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_MODEL = "default"


def model_dir(name: str) -> Path:
    """The folder of the shipped model ``name`` (it may not exist; the caller checks)."""
    return Path(str(resources.files(__name__) / name))


def default_model_dir() -> Path:
    """The folder of the model used when none is named."""
    return model_dir(DEFAULT_MODEL)


def model_names() -> list[str]:
    """Names of the shipped models: folders here that hold a ``model.json``."""
    root = Path(str(resources.files(__name__)))
    return sorted(p.parent.name for p in root.glob("*/model.json"))
