"""Model errors: each carries one line that a user can act on (shown as-is in the UI and the CLI)."""

from __future__ import annotations

from pathlib import Path

PULL_COMMAND = "vfmstudio models pull"


class ModelError(Exception):
    """Base class: a model cannot be resolved, fetched or loaded. The message is a single line."""

    def __init__(self, message: str) -> None:
        # Keep messages on one line so status bars and log lines stay readable.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelNotAvailableError(ModelError):
    """The weights are not on disk and cannot be downloaded now."""

    def __init__(self, model: str, cache_dir: Path | str, reason: str = "offline") -> None:
        self.model = model
        self.cache_dir = Path(cache_dir)
        self.reason = reason
        super().__init__(
            f"model '{model}' is not in the local cache ({cache_dir}) and the hub cannot be reached "
            f"({reason}); fetch it with: {PULL_COMMAND} {model}"
        )


class GatedModelError(ModelError):
    """The repository is gated (e.g. PaliGemma): the licence must be accepted and a token configured."""

    def __init__(self, model: str, *, has_token: bool = False) -> None:
        self.model = model
        self.has_token = has_token
        step = (
            "then check that your access token belongs to that account"
            if has_token
            else "then add an access token (Run › Models… › Token in the window, HF_TOKEN, or `hf auth login`)"
        )
        super().__init__(
            f"model '{model}' is gated: accept its licence on https://huggingface.co/{model}, {step}; "
            f"then run: {PULL_COMMAND} {model}"
        )


class HubTimeoutError(ModelError):
    """A hub request was cut by a deadline: too slow, silent, or longer than its total time limit.

    Partial files are kept, so the message says how to resume.
    """

    def __init__(self, what: str, why: str) -> None:
        self.what = what
        self.why = why
        super().__init__(
            f"download cut while fetching {what}: {why}; partial files are kept, try again to resume"
        )

    @classmethod
    def deadline(cls, what: str, elapsed_s: float) -> HubTimeoutError:
        return cls(what, f"the hub did not finish within its deadline ({elapsed_s:.0f} s)")

    @classmethod
    def idle(cls, what: str, idle_s: float) -> HubTimeoutError:
        return cls(what, f"the hub sent nothing for {idle_s:g} s")

    @classmethod
    def slow(cls, what: str, got: int, window_s: float, min_rate: float) -> HubTimeoutError:
        return cls(
            what,
            f"the hub sent only {format_bytes(got)} in {window_s:g} s "
            f"(the minimum is {format_bytes(min_rate)}/s)",
        )


class UnsafeModelError(ModelError):
    """Only pickle weights (pytorch_model.bin) are available; we load safetensors only."""

    def __init__(self, model: str, where: Path | str | None = None) -> None:
        self.model = model
        at = f" ({where})" if where is not None else ""
        super().__init__(
            f"model '{model}'{at} has no safetensors weights; vfmstudio never loads pickle (.bin) weights. "
            "Use a revision or copy of the model that ships model.safetensors"
        )


class ModelTooLargeError(ModelError):
    """The estimated weight size does not fit in the memory available on the device."""

    def __init__(self, model: str, needed_bytes: int, available_bytes: int, device: str) -> None:
        self.model = model
        self.needed_bytes = int(needed_bytes)
        self.available_bytes = int(available_bytes)
        self.device = device
        hint = (
            "try precision bf16/fp16 or a GPU device"
            if device == "cpu"
            else "try precision bf16/fp16, a smaller model, or device cpu"
        )
        super().__init__(
            f"model '{model}' needs about {format_bytes(needed_bytes)} but only "
            f"{format_bytes(available_bytes)} is available on {device}; {hint}"
        )


def format_bytes(n: int | float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # unreachable; keeps type checkers quiet


class DeviceError(ModelError):
    """A requested device or precision is unknown or not available on this machine."""
