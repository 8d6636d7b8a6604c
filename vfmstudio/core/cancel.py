"""Cooperative cancellation shared by jobs, tools and generation loops."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised inside a job when its cancel token fires; the job ends with status 'cancelled'."""


class CancelToken:
    """A thread-safe flag. Tools call :meth:`raise_if_cancelled` between stages and batches."""

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason or "cancelled")

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancel; returns True if cancelled."""
        return self._event.wait(timeout)
