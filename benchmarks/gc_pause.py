"""How long a full garbage collection stalls the daemon's threads, with and without the freeze at start.

    python benchmarks/gc_pause.py [--model weights/default | none] [--device cpu] [--repeats 7]

A collection holds the GIL while it scans every tracked object, so the player cannot send
until it ends. The daemon freezes what is loaded when it starts (``Daemon.start``); this loads
what ``dmc serve`` loads, writes one phrase, then times ``gc.collect()`` before and after
``gc.freeze()`` in the same run.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from bridge.runtime import DEVICES
from bridge.serve_commands import phrase_source


def median_collection_us(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory, or 'none' (default: the shipped model)")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    phrase_source(args.model, args.device, "fp32", None)  # loads and warms the model, as dmc serve does
    tracked = len(gc.get_objects())
    unfrozen = median_collection_us(args.repeats)
    gc.freeze()
    frozen = median_collection_us(args.repeats)
    print(f"tracked objects after loading: {tracked}; medians of {args.repeats} full collections:")
    print(f"  as loaded:     {unfrozen:9.1f} us")
    print(f"  after freeze:  {frozen:9.1f} us ({gc.get_freeze_count()} objects frozen)")


if __name__ == "__main__":
    main()
