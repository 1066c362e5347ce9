"""Graph size and speed: a model folder's ONNX graph as shipped against the same graph after the export's pass.

    python benchmarks/graph.py [--model weights/default] [--steps 20] [--repeats 3] [--threads N]

The reference is the folder's ``model.onnx`` as it is; the candidate is ``export.graph_fusion.lean``
of it, built in memory (nothing is written). Both run on CPU with the bridge's session options,
timed in turns in the same run, so a busy machine slows both alike; the ratio is the number to
read. Nodes are counted as stored and after onnxruntime's own optimizations (what it runs).
A folder exported with the pass already has a lean graph: the pass then changes nothing, and the
reference to compare with is an older export (e.g. ``git show <commit>:weights/default/model.onnx``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bridge.card import read_card
from bridge.runtime import Denoiser, resolve_model_dir, session_options
from bridge.samplers import make_sampler, sample
from export import graph_fusion, parity

BATCHES = (1, 8)


def denoiser(proto: onnx.ModelProto, card: object, directory: Path, threads: int | None) -> Denoiser:
    """The graph behind the bridge's own Denoiser (IO binding), on CPU."""
    session = ort.InferenceSession(proto.SerializeToString(), session_options(threads),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    return Denoiser(session, card, directory, "cpu")  # type: ignore[arg-type]


def ms_per_step(denoisers: dict[str, Denoiser], batch: int, steps: int, repeats: int) -> dict[str, float]:
    """Fastest of ``repeats`` DDIM runs of ``steps`` steps per graph, the graphs taking turns."""
    best = dict.fromkeys(denoisers, float("inf"))
    for _ in range(repeats + 1):  # the first round warms up and counts like the others
        for label, model in denoisers.items():
            sampler = make_sampler("ddim", model.card)
            start = time.perf_counter()
            sample(model, sampler, batch, steps, seed=0)
            best[label] = min(best[label], 1000 * (time.perf_counter() - start) / steps)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or shipped name (default: the default model)")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="onnxruntime threads (default: one per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    directory = resolve_model_dir(args.model)
    card = read_card(directory)
    shipped = onnx.load(str(directory / card.model_file))
    graphs = {"shipped": shipped, "lean": graph_fusion.lean(shipped)}
    check = parity.measure(parity.onnx_runner(shipped.SerializeToString()),
                           parity.onnx_runner(graphs["lean"].SerializeToString()), card.length,
                           card.schedule.steps)  # fmt: skip
    threads = session_options(args.threads).intra_op_num_threads
    print(f"\nmodel {card.name!r} ({directory}), L = {card.length}, CPU {threads} threads, "
          f"onnxruntime {ort.__version__}")  # fmt: skip
    print(f"lean vs shipped graph: max abs difference {check.max_abs:.1e} (batches 1, 4; t = {check.timesteps})")

    nodes = {k: len(g.graph.node) for k, g in graphs.items()}
    run_nodes = {k: len(graph_fusion.ort_optimized(g).graph.node) for k, g in graphs.items()}
    denoisers = {k: denoiser(g, card, directory, args.threads) for k, g in graphs.items()}
    times = {b: ms_per_step(denoisers, b, args.steps, args.repeats) for b in BATCHES}
    rows = {k: [nodes[k], run_nodes[k], *(times[b][k] for b in BATCHES)] for k in graphs}
    rows["ratio shipped / lean"] = [s / n for s, n in zip(rows["shipped"], rows["lean"], strict=True)]
    header = ["nodes", "after ORT", *(f"ms/step b{b}" for b in BATCHES)]
    print(f"\n{'':<22}" + "".join(f"{h:>13}" for h in header))
    for label, values in rows.items():
        print(f"{label:<22}" + "".join(f"{v:>13.2f}" if isinstance(v, float) else f"{v:>13d}" for v in values))
    print(f"ms/step: network plus one DDIM step, fastest of {args.repeats} runs of {args.steps} steps, graphs in turns")


if __name__ == "__main__":
    main()
