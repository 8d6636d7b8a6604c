"""A one-line terminal progress bar for batch runs: count, images/s, ETA and failures."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from vfmstudio.engines.job import Progress


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def progress_line(p: Progress, width: int = 24) -> str:
    todo = max(1, p.total - p.skipped)
    frac = min(1.0, p.processed / todo)
    filled = int(frac * width)
    bar = "#" * filled + "." * (width - filled)
    skipped = f" ({p.skipped} done before)" if p.skipped else ""
    return (
        f"[{bar}] {p.processed}/{todo}{skipped} {p.rate:.1f} img/s ETA {format_duration(p.eta)}"
        f" failed {p.failed}"
    )


class ProgressBar:
    """Redraws at most ``interval`` seconds apart, and only on a terminal."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.interval = interval
        self._last = 0.0
        self._shown = False

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < self.interval and p.processed < p.total - p.skipped):
            return
        self._last = now
        self.stream.write("\r" + progress_line(p)[:119].ljust(80))
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
