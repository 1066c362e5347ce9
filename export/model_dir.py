"""A training run -> ``weights/<name>/``: model.onnx (+ fp16 variant) and its card.

Nothing is written unless parity holds: the ONNX graph must reproduce the Keras network to
within ``MAX_ABS`` on random inputs (every graph is built and checked in memory first). The
card is written last, so a reader never sees a card whose checksum names a missing file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.atomic import write_bytes
from bridge.card import ModelCard, write_card
from bridge.chords import ChordVocabulary
from bridge.codec import FeatureStats
from bridge.note_lengths import NoteLengths
from bridge.onset_gaps import OnsetGaps
from bridge.schedule import NoiseSchedule
from bridge.styles import Styles
from export import onnx_graph, parity
from export.errors import ExportError

log = logging.getLogger(__name__)
MODEL_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
FP16_MAX_ABS = 5e-2  # half precision: a sanity bound against the float32 graph, not a proof of equality


@dataclass(frozen=True)
class ExportSource:
    """What an export needs from training: the (EMA) network and how it was trained."""

    network: Any  # keras.Model taking [sample (B, 1, L, 3), timestep (B,)] (and style (B,) where styled)
    length: int
    schedule: NoiseSchedule
    prediction: str
    stats: FeatureStats
    training: dict[str, Any] = field(default_factory=dict)
    note_lengths: NoteLengths | None = None  # the training corpus's, for the bridge's rhythm grid
    styles: Styles | None = None  # the styles of a conditioned network, in its index order
    chords: ChordVocabulary | None = None  # the training corpus's, for the bridge's chord snap
    onset_gaps: OnsetGaps | None = None  # the training corpus's, for the bridge's rhythm grid

    @property
    def style_count(self) -> int:
        """Styles the network is conditioned on (0: none, no style input)."""
        return len(self.styles.names) if self.styles else 0


def keras_runner(network: Any) -> Any:
    """The Keras network as ``run(sample, timestep[, style]) -> prediction`` (numpy in, numpy out)."""
    return lambda *inputs: np.asarray(network(list(inputs), training=False))


def export_model(
    source: ExportSource, out_dir: str | os.PathLike[str], *, name: str, fp16: bool = False
) -> ModelCard:
    """Convert, prove parity, then write the model files and the card; returns the card."""
    if len(source.network.inputs) != 2 + bool(source.styles):
        raise ExportError(
            f"the network takes {len(source.network.inputs)} inputs but the run records "
            f"{source.style_count} styles; nothing was written"
        )
    proto = onnx_graph.keras_to_onnx(source.network, source.length)
    graph = proto.SerializeToString()
    check = parity.measure(keras_runner(source.network), parity.onnx_runner(graph), source.length,
                           source.schedule.steps, styles=source.style_count)  # fmt: skip
    log.info("parity Keras vs ONNX (CPU): max abs difference %.2e", check.max_abs)
    if not check.max_abs <= parity.MAX_ABS:
        raise ExportError(
            f"the ONNX graph differs from the Keras network by {check.max_abs:.3g} (limit {parity.MAX_ABS}); "
            "nothing was written. Report this with the run folder."
        )
    files = {MODEL_FILE: graph}
    variants = None
    if fp16:
        files[FP16_FILE], fp16_entry = _fp16_variant(proto, graph, source)
        variants = {"fp16": fp16_entry}
    out = Path(out_dir)
    for file_name, data in files.items():
        write_bytes(out / file_name, data)
    card = ModelCard(
        name=name, model_file=MODEL_FILE, sha256=_sha256(graph), opset=onnx_graph.OPSET,
        length=source.length, stats=source.stats, schedule=source.schedule, prediction=source.prediction,
        parameters=int(source.network.count_params()), training=source.training, parity=check.to_dict(),
        variants=variants, note_lengths=source.note_lengths, styles=source.styles, chords=source.chords,
        onset_gaps=source.onset_gaps,
    )  # fmt: skip
    write_card(out, card)
    log.info("exported %s (%.1f MB, %d parameters)", out / MODEL_FILE, len(graph) / 1e6, card.parameters)
    return card


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fp16_variant(proto: Any, graph: bytes, source: ExportSource) -> tuple[bytes, dict[str, Any]]:
    """The half-precision graph and its card entry, with parity against the float32 graph (CPU)."""
    half = onnx_graph.to_fp16(proto).SerializeToString()
    check = parity.measure(parity.onnx_runner(graph), parity.onnx_runner(half), source.length, source.schedule.steps,
                           styles=source.style_count)  # fmt: skip
    log.info("parity fp16 vs float32 graph: max abs difference %.2e", check.max_abs)
    if not check.max_abs <= FP16_MAX_ABS:
        raise ExportError(f"the fp16 graph differs from float32 by {check.max_abs:.3g} (limit {FP16_MAX_ABS})")
    return half, {"model_file": FP16_FILE, "sha256": _sha256(half), "parity_max_abs": check.max_abs}


def export_run(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    step: int | None = None,
    name: str | None = None,
    fp16: bool = False,
    data: str | os.PathLike[str] | None = None,
) -> ModelCard:
    """Export the EMA weights of a run's latest (or chosen) checkpoint to a model folder.

    ``data``: the run's dataset file, for the note-length and onset-gap priors and the chords, where
    run.json has no valid path (a run trained on another machine).
    """
    from training.run import load_ema_network

    network, config, meta = load_ema_network(run_dir, step)
    dataset = meta.get("dataset", {})
    source = ExportSource(
        network=network,
        length=config.model.length,
        schedule=config.diffusion.noise_schedule(),
        prediction=config.diffusion.prediction,
        stats=FeatureStats.from_dict(dataset["stats"]),
        **_corpus_priors(data or dataset.get("path")),
        styles=Styles(tuple(dataset["styles"]), tuple(dataset["style_shares"])) if config.model.styles else None,
        training={
            "run": str(Path(run_dir).resolve().name),
            "config": config.to_dict(),
            "steps": meta["checkpoint_step"],
            "git": meta.get("git"),
            "dataset": {k: v for k, v in dataset.items() if k != "stats"},
            **({"init_from": meta["init_from"]} if "init_from" in meta else {}),  # the run it was fine-tuned from
        },
    )
    return export_model(source, out_dir, name=name or Path(out_dir).name, fp16=fp16)


def _corpus_priors(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The training segments' note lengths, onset gaps and chords (ExportSource's fields), when the run's
    dataset file is still where it was."""
    if path is None or not Path(path).is_file():
        log.warning("dataset %s not found: the card gets no note-length or onset-gap prior (the grid rounds "
                    "the times) and no chords (the network's own are kept); give the run's dataset with --data",
                    path)  # fmt: skip
        return {}
    from training.datafile import load_dataset

    data = load_dataset(path)
    return {"note_lengths": NoteLengths.fit(data.train), "onset_gaps": OnsetGaps.fit(data.train),
            "chords": ChordVocabulary.fit(data.train, data.stats.encoding)}  # fmt: skip
