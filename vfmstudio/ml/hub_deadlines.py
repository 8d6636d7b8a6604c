"""Time limits for hub requests and the watchdog that enforces them (used by ``ml.download``).

The watchdog runs on its own thread and cuts the request in flight by shutting its sockets down, which
wakes a read blocked in the kernel at once: cancel, a total deadline per request, an idle timeout and a
minimum rate over a window (a hub trickling one byte a second). See docs/adr/0130.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.ml.errors import HubTimeoutError

_WATCH_POLL_S = 0.05


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class Deadlines:
    """Time limits for hub requests (seconds, bytes per second).

    A request (the repo listing, or one file) must finish within ``request_s`` plus its size at
    ``min_rate``; no byte for ``idle_s`` cuts it; so does a rate below ``min_rate`` over ``rate_window_s``
    (a trickle). Environment: VFMSTUDIO_HUB_CONNECT_S, VFMSTUDIO_HUB_IDLE_S, VFMSTUDIO_HUB_DEADLINE_S,
    VFMSTUDIO_HUB_MIN_RATE, VFMSTUDIO_HUB_RATE_WINDOW_S.
    """

    connect_s: float = 10.0
    idle_s: float = 30.0
    request_s: float = 60.0
    min_rate: float = 1024.0
    rate_window_s: float = 30.0

    @classmethod
    def from_env(cls) -> Deadlines:
        d = cls()
        return cls(
            connect_s=_env_float("VFMSTUDIO_HUB_CONNECT_S", d.connect_s),
            idle_s=_env_float("VFMSTUDIO_HUB_IDLE_S", d.idle_s),
            request_s=_env_float("VFMSTUDIO_HUB_DEADLINE_S", d.request_s),
            min_rate=_env_float("VFMSTUDIO_HUB_MIN_RATE", d.min_rate),
            rate_window_s=_env_float("VFMSTUDIO_HUB_RATE_WINDOW_S", d.rate_window_s),
        )

    def budget(self, nbytes: int | None) -> float:
        """Total seconds allowed for a request that must carry ``nbytes``."""
        return self.request_s + max(0, nbytes or 0) / self.min_rate


class RateMeter:
    """Bytes over a sliding time window (samples of the running total)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, n: int) -> None:
        self.total += n
        now = self._clock()
        if self._samples and now - self._samples[-1][0] < 0.05:
            self._samples[-1] = (self._samples[-1][0], self.total)
        else:
            self._samples.append((now, self.total))
        while len(self._samples) > 2 and now - self._samples[1][0] > 120:
            self._samples.popleft()

    def bytes_since(self, t0: float) -> int:
        before = 0
        for t, total in self._samples:
            if t > t0:
                break
            before = total
        return self.total - before

    def speed(self, window_s: float = 3.0) -> float:
        now = self._clock()
        if not self._samples:
            return 0.0
        start = max(self._samples[0][0], now - window_s)
        span = now - start
        return self.bytes_since(start) / span if span > 0.2 else 0.0


class Watchdog:
    """Cuts the request in flight from its own thread: cancel, total deadline, idle and minimum rate.

    Cutting means shutting the request's sockets down, which wakes a read blocked in the kernel at once;
    the downloading thread then sees a network error and asks :meth:`verdict` what happened.
    """

    def __init__(self, cancel: CancelToken, clock: Callable[[], float]) -> None:
        self._cancel = cancel
        self._clock = clock
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._armed: tuple[str, float, float, Deadlines] | None = None  # what, started, deadline, limits
        self._last_byte = 0.0
        self._meter: RateMeter | None = None
        self._verdict: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vfmstudio-download-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def arm(self, what: str, budget_s: float, limits: Deadlines, meter: RateMeter) -> None:
        now = self._clock()
        with self._lock:
            self._armed = (what, now, now + budget_s, limits)
            self._last_byte = now
            self._meter = meter
            self._verdict = None

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def add_socket(self, sock: Any) -> None:
        """Remember a socket of the download's client. Every one is kept (closed ones dropped): a request
        on a pooled connection is only seen once its headers arrive, and cutting the idle ones is harmless
        since the client serves one download, one request at a time."""
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets = [s for s in self._sockets if s.fileno() != -1 and s is not sock] + [sock]
                fired = self._verdict is not None
            if fired:
                _shutdown(sock)

    def saw_bytes(self) -> None:
        self._last_byte = self._clock()

    def verdict(self) -> BaseException | None:
        """Why the watchdog cut the request (Cancelled or HubTimeoutError), or None."""
        with self._lock:
            verdict = self._verdict
        if verdict is None and self._cancel.cancelled:
            return Cancelled(self._cancel.reason or "cancelled")
        return verdict

    def check(self) -> None:
        """Raise the verdict now if there is one (called between chunks by the downloading thread)."""
        verdict = self.verdict() or self._judge()
        if verdict is not None:
            raise verdict

    def _judge(self) -> BaseException | None:
        if self._cancel.cancelled:
            return Cancelled(self._cancel.reason or "cancelled")
        with self._lock:
            armed, meter = self._armed, self._meter
        if armed is None or meter is None:
            return None
        what, started, deadline, limits = armed
        now = self._clock()
        if now >= deadline:
            return HubTimeoutError.deadline(what, now - started)
        if now - self._last_byte >= limits.idle_s:
            return HubTimeoutError.idle(what, limits.idle_s)
        if now - started >= limits.rate_window_s:
            got = meter.bytes_since(now - limits.rate_window_s)
            if got < limits.min_rate * limits.rate_window_s:
                return HubTimeoutError.slow(what, got, limits.rate_window_s, limits.min_rate)
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._cancel.wait(_WATCH_POLL_S)
            verdict = self._judge()
            if verdict is None:
                if self._cancel.cancelled:
                    self._stop.wait(_WATCH_POLL_S)  # nothing armed: don't spin on a set event
                continue
            with self._lock:
                if self._verdict is None:
                    self._verdict = verdict
                sockets = list(self._sockets)
            for sock in sockets:
                _shutdown(sock)
            self._stop.wait(_WATCH_POLL_S)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
