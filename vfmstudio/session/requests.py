"""What the session asks the window to run, or why it will not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vfmstudio.core.tools import ToolSpec

LIVE_PREFIX = "live:"
View = Literal["image", "pair", "set"]


@dataclass(frozen=True)
class RunRequest:
    """One tool run on ``paths`` (the image on view first).

    ``live`` runs are interactive reruns (threshold drag, point click, layer scrub): they share a
    supersede key per image and tool, so only the newest value is computed, and they post no
    "done" message. ``origin`` is the view a click was made on: its result must not pull the user
    to another tab.
    """

    tool: ToolSpec
    params: dict[str, Any]
    paths: tuple[Path, ...]
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    live: bool = False
    origin: View | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{LIVE_PREFIX if self.live else 'run:'}{self.paths[0]}:{self.tool.id}"

    @property
    def names(self) -> str:
        return ", ".join(p.name for p in self.paths)


@dataclass(frozen=True)
class Refusal:
    """Why a run cannot start: shown to the user as one line."""

    message: str
    level: str = "warning"


Outcome = RunRequest | Refusal | None
