"""One progress display for every long job (dataset build, training, sampling).

A rich bar on a terminal; on a pipe or in a service log, a log line every few seconds instead.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)
LOG_EVERY_S = 5.0


@contextmanager
def progress(total: int, description: str, *, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``; ``fields`` (e.g. ``loss=0.1``) show beside the bar."""
    if not enabled:
        yield lambda n=1, **fields: None
        return
    if sys.stderr.isatty():
        with _rich_bar(total, description) as advance:
            yield advance
        return
    yield _LogProgress(total, description)


@contextmanager
def _rich_bar(total: int, description: str) -> Iterator[Callable[..., None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.speed:.1f}/s" if total else ""), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
    )  # fmt: skip
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, **fields: object) -> None:
            bar.update(task, advance=n, info=_format_fields(fields))

        yield advance


def _format_fields(fields: dict[str, object]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


class _LogProgress:
    """Plain-log progress: done/total, rate and time left, at most every LOG_EVERY_S seconds."""

    def __init__(self, total: int, description: str) -> None:
        self.total, self.description = total, description
        self.done, self.start, self.last = 0, time.monotonic(), 0.0

    def __call__(self, n: int = 1, **fields: object) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last < LOG_EVERY_S and self.done < self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        log.info(
            "%s %d/%d (%.1f/s, %.0f s left) %s",
            self.description, self.done, self.total, rate, left, _format_fields(fields),
        )  # fmt: skip
