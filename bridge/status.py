"""The daemon's status for people: a live terminal panel (rich), or nothing but plain logs (``--quiet``).

The panel is drawn from :meth:`bridge.daemon.Daemon.status`, the same JSON that ``dmc status``
prints, so what a service's operator queries and what the musician sees cannot disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

REFRESH_PER_SECOND = 4


def render_status(status: dict[str, Any]) -> Group:
    """The panel: ports, tempo, model and device, the last generation, the queue, recent takes."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    for kind, port in status["ports"].items():
        state = Text("open", style="green") if port["open"] else Text("gone (waiting for it)", style="bold red")
        where = f" -> {port['connected_to']}" if port["connected_to"] else ""
        table.add_row(f"{kind} port", Text.assemble(f"{port['name']}{where}  ", state))
    tempo = status["tempo"]
    running = "" if tempo["running"] else "  (stopped: waiting for Start)"
    table.add_row("tempo", f"{tempo['bpm']:.1f} bpm from {tempo['source']} clock{running}")
    guided = f", guided at {status['guidance']:g}" if status["guidance"] else ""
    table.add_row("model", f"{status['model']} on {status['device']}{guided}")
    settings = status["settings"]
    table.add_row(
        "playing",
        f"{status['mode']} mode, {settings['key']} {settings['scale']}, {settings['bars']} bars, "
        f"channel {settings['channel']}, quantize {settings['quantize']}",
    )
    last = status["last"]
    if last:
        style = f", style {last['style']}" if last.get("style") else ""
        made = f"{last['steps']} steps in {last['generation_ms']:.0f} ms, seed {last['seed']}{style}"
        table.add_row("last phrase", made)
    queue = status["queue"]
    busy = ["generating" if queue["generating"] else "idle", f"{queue['scheduled']} scheduled"]
    if queue["streaming"]:
        busy.append("streaming")
    table.add_row("queue", ", ".join(busy) + f", {status['sounding']} notes sounding")
    timing = status["timing_ms"]
    if timing:
        table.add_row("timing", f"send error p50 {timing['p50']} ms, p99 {timing['p99']} ms, max {timing['max']} ms")
    if status["learning"]:
        table.add_row("MIDI-learn", Text(f"press a note or control for {status['learning']!r}", style="bold yellow"))
    if status["error"]:
        table.add_row("error", Text(status["error"], style="red"))
    takes = [Path(p).name for p in status["takes"][-3:]]
    if takes:
        table.add_row("recent takes", "\n".join(takes))
    return Group(Text("Diffusion Composer", style="bold"), table)


@contextmanager
def live_status(get_status: Callable[[], dict[str, Any]], quiet: bool) -> Iterator[None]:
    """Show the panel until the block ends; log lines print above it. ``quiet``: do nothing."""
    if quiet:
        yield
        return
    console = Console(stderr=True)
    root = logging.getLogger()
    handler = RichHandler(console=console, show_path=False)
    previous = root.handlers[:]
    root.handlers = [handler]
    try:
        with Live(get_renderable=lambda: render_status(get_status()), console=console,
                  refresh_per_second=REFRESH_PER_SECOND):
            yield
    finally:
        root.handlers = previous
