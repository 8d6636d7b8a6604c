"""What a running tool sees: its model choice, device, caches, progress and cancel token."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vfmstudio.core.cancel import CancelToken

T = TypeVar("T")


class _NoCache:
    """Stands in when no cache is given: computes every time (tests, one-shot scripts)."""

    def get_or_create(self, key: Hashable, factory: Callable[[], T], nbytes: int | None = None) -> T:
        return factory()


@dataclass
class RunContext:
    """Passed to every tool function as ``ctx``.

    ``models`` and ``features`` are byte-bounded caches shared by every run in the process, so a
    second run on the same image with the same model reuses the loaded model and the features.
    Tools set ``used_device`` / ``used_precision`` once they know them, for the envelope.
    """

    tool_id: str
    model_ref: str | None = None
    device: str = "auto"
    precision: str = "auto"
    cancel: CancelToken = field(default_factory=CancelToken)
    models: Any = field(default_factory=_NoCache)
    features: Any = field(default_factory=_NoCache)
    on_progress: Callable[[float | None, str], None] | None = None
    on_partial: Callable[[Any], None] | None = None
    used_device: str | None = None
    used_precision: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def progress(self, fraction: float | None, message: str = "") -> None:
        """Report progress in [0, 1] (None: unknown) and check for cancellation."""
        self.cancel.raise_if_cancelled()
        if self.on_progress is not None:
            self.on_progress(None if fraction is None else max(0.0, min(1.0, float(fraction))), message)

    def note(self, message: str) -> None:
        """Record a one-line remark for the prediction's ``notes`` (how the run differs from what was
        asked, e.g. a resolution scaled down to fit a limit) and report it as progress too."""
        if message not in self.notes:
            self.notes.append(message)
        self.progress(None, message)

    def partial(self, obj: Any) -> None:
        """Stream an intermediate value (e.g. text generated so far) to the caller."""
        if self.on_partial is not None:
            self.on_partial(obj)

    def check_cancelled(self) -> None:
        self.cancel.raise_if_cancelled()

    def model(self, key: Hashable, loader: Callable[[], T]) -> T:
        """A loaded model from the model cache, loading it once with ``loader``."""
        return self.models.get_or_create(("model", key, self.device, self.precision), loader)

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Per-image features from the feature cache, computing them once with ``compute``."""
        return self.features.get_or_create(key, compute)
