"""Running one tool: check inputs and parameters, call the plugin inside a fault boundary,
validate what it returns, and wrap it in a :class:`~vfmstudio.core.results.Prediction`.

Qt-free and torch-free: the CLI, the batch engines and the window's inference thread all call
:func:`run_tool`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vfmstudio import settings
from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.context import RunContext
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.results import Prediction, Result, ResultError, check_against_inputs
from vfmstudio.core.tools import ParamError, ToolSpec


class ToolError(Exception):
    """A tool failed; ``plugin`` and ``tool`` name the culprit for the messages dock and CLI."""

    def __init__(self, tool: ToolSpec, message: str, *, user_error: bool = False):
        self.tool_id = tool.id
        self.plugin = tool.plugin
        self.user_error = user_error  # bad input or unavailable model, rather than a bug
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.tool_id} ({self.plugin})" if self.plugin else self.tool_id
        return f"{where}: {self.args[0]}"


TOOL_TIMEOUT_ENV = "VFMSTUDIO_TOOL_TIMEOUT_S"
#: Seconds a run may take before it is abandoned (docs/reliability.md): long enough for a first model
#: load and a large image on a CPU, short enough that a hung plugin does not stall a batch forever.
DEFAULT_TOOL_TIMEOUT_S: float = settings.SETTINGS[TOOL_TIMEOUT_ENV].default


def tool_timeout_s(value: float | str | None = None) -> float | None:
    """The run time limit in seconds: ``value`` if given, else ``$VFMSTUDIO_TOOL_TIMEOUT_S``, else the
    default; 0 means no limit (None). Raises ValueError with a one-line reason for a bad value."""
    source = "timeout" if value is not None else TOOL_TIMEOUT_ENV
    if value is None:
        value = os.environ.get(TOOL_TIMEOUT_ENV, "")
    try:
        seconds = settings.SETTINGS[TOOL_TIMEOUT_ENV].parse(value, source=source)
    except settings.SettingError:
        raise ValueError(
            f"{source} must be a number of seconds >= 0 (0 for no limit), got {value!r}"
        ) from None
    return seconds or None


@dataclass
class Services:
    """Process-wide state a run draws on: the two caches."""

    models: Any
    features: Any

    @classmethod
    def create(cls) -> Services:
        from vfmstudio.core.cache import ByteLRUCache, feature_cache_budget, model_cache_budget

        return cls(
            models=ByteLRUCache(model_cache_budget(), name="models"),
            features=ByteLRUCache(feature_cache_budget(), name="features"),
        )


_SERVICES: Services | None = None


def default_services() -> Services:
    global _SERVICES
    if _SERVICES is None:
        _SERVICES = Services.create()
    return _SERVICES


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ParamError, ResultError]
    try:  # model errors live in ml/, which is torch-free at import time
        from vfmstudio.ml.errors import ModelError

        types.append(ModelError)
    except ImportError:  # pragma: no cover - ml is part of the package
        pass
    from vfmstudio.core.image import ImageLoadError

    types.append(ImageLoadError)
    return tuple(types)


def _context(
    tool: ToolSpec,
    model: str | None,
    device: str,
    precision: str,
    cancel: CancelToken,
    timeout: float | None,
    services: Services | None,
    on_progress=None,
    on_partial=None,
) -> RunContext:
    services = services or default_services()
    # With a time limit the tool gets its own token: firing it on a timeout must not cancel the
    # caller's (a batch shares one token across all its images).
    return RunContext(
        tool_id=tool.id,
        model_ref=model or tool.default_model,
        device=device,
        precision=precision,
        cancel=CancelToken() if timeout else cancel,
        models=services.models,
        features=services.features,
        on_progress=on_progress,
        on_partial=on_partial,
    )


def run_tool(
    tool: ToolSpec,
    images: Sequence[LoadedImage],
    params: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    cancel: CancelToken | None = None,
    on_progress: Callable[[float | None, str], None] | None = None,
    on_partial: Callable[[Any], None] | None = None,
    services: Services | None = None,
    params_from_text: bool = False,
    timeout: float | None = None,
    isolate: bool | None = None,
) -> Prediction:
    """Run ``tool`` on ``images`` and return its prediction.

    ``timeout``: seconds after which a run still going is abandoned with a :class:`ToolError` (its
    token fires; see :func:`_call_with_timeout`). ``isolate``: run in a worker process (default:
    :func:`vfmstudio.isolation.runs_isolated`, third-party tools). Raises :class:`ToolError`
    (``user_error`` set for bad parameters, images or models) and
    :class:`~vfmstudio.core.cancel.Cancelled`.
    """
    try:
        tool.inputs.check_count(len(images))
        resolved = tool.resolve_params(params, from_text=params_from_text)
    except ParamError as exc:
        raise ToolError(tool, str(exc), user_error=True) from None
    cancel = cancel or CancelToken()
    if isolate is None:
        from vfmstudio.isolation import runs_isolated

        try:
            isolate = runs_isolated(tool)
        except ValueError as exc:  # a bad VFMSTUDIO_PLUGIN_ISOLATION value
            raise ToolError(tool, str(exc), user_error=True) from None
    if isolate:
        from vfmstudio.isolation import run_isolated

        prediction = run_isolated(
            tool,
            images,
            resolved,
            model=model,
            device=device,
            precision=precision,
            cancel=cancel,
            timeout=timeout,
            on_progress=on_progress,
            on_partial=on_partial,
        )
        _validate(tool, list(prediction.results), images)  # the worker's checks ran in the plugin's process
        return dataclasses.replace(prediction, params=resolved)  # ours, not their JSON round trip
    ctx = _context(tool, model, device, precision, cancel, timeout, services, on_progress, on_partial)
    t0 = time.perf_counter()
    try:
        fn = tool.load_function()
    except Exception as exc:  # noqa: BLE001 - a plugin's code may fail to import in any way
        raise ToolError(tool, f"cannot load {tool.run}: {type(exc).__name__}: {exc}") from exc
    t_load = time.perf_counter()

    def run_and_validate(
        ctx: RunContext, images_: list[LoadedImage], params_: dict[str, Any]
    ) -> tuple[Result, ...]:
        # Validation runs inside the time limit: an endless iterable must not outlive it.
        return _validate(tool, fn(ctx, images_, params_), images)

    try:
        ctx.check_cancelled()
        cancel.raise_if_cancelled()
        if timeout:
            results = _call_with_timeout(tool, run_and_validate, ctx, list(images), resolved, timeout, cancel)
        else:
            results = run_and_validate(ctx, list(images), resolved)
    except Cancelled:
        raise
    except ToolError:
        raise
    except SystemExit as exc:  # sys.exit() in a tool ends the tool, not the studio or the command
        raise ToolError(tool, f"called sys.exit({exc.code!r}) instead of returning results") from None
    except _user_error_types() as exc:
        raise ToolError(tool, str(exc), user_error=True) from exc
    except MemoryError as exc:
        raise ToolError(
            tool,
            "out of memory: try a smaller resolution, a lower precision or fewer images",
            user_error=True,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - fault boundary around plugin code
        if _is_out_of_memory(exc):
            raise ToolError(
                tool,
                "the device ran out of memory: try a smaller resolution, a lower precision "
                "(--precision fp16/bf16) or the CPU",
                user_error=True,
            ) from exc
        raise ToolError(tool, f"{type(exc).__name__}: {exc}") from exc
    t_run = time.perf_counter()
    return Prediction(
        tool=tool.id,
        model=ctx.model_ref,
        image_ids=tuple(im.id for im in images),
        results=results,
        params=resolved,
        image_paths=tuple(str(im.path) if im.path else im.id for im in images),
        device=ctx.used_device or (None if ctx.model_ref is None else device),
        precision=ctx.used_precision,
        timings={"import_s": t_load - t0, "run_s": t_run - t_load},
        notes=tuple(ctx.notes),
    )


def _call_with_timeout(
    tool: ToolSpec,
    fn: Callable[..., Any],
    ctx: RunContext,
    images: list[LoadedImage],
    params: dict[str, Any],
    timeout: float,
    cancel: CancelToken,
) -> Any:
    """``fn(ctx, images, params)`` as a job with a time limit, waited for at most ``timeout`` seconds.

    The one time-limit mechanism of the code base is :class:`vfmstudio.core.jobs.JobRunner`'s (the
    window's runs and prefetches use it too; ADR 0108): a job past its limit is abandoned (its token
    fires, whatever it returns later is dropped) and, its thread being a daemon, never keeps the
    process from exiting. The caller's ``cancel`` is passed on to the run while waiting.
    """
    from vfmstudio.core.jobs import JobRunner

    runner = JobRunner(thread_name=f"vfm-tool-{tool.id}")
    box: dict[str, Any] = {}

    def job(job_ctx: Any) -> None:
        ctx.cancel = job_ctx.cancel  # the job's token: fired by a timeout, never the caller's own
        try:
            box["value"] = fn(ctx, images, params)
        except KeyboardInterrupt:  # on this worker thread it can only come from the tool, not the user
            box["error"] = ToolError(
                tool, "raised KeyboardInterrupt (the tool's own, not a Ctrl-C from the user)"
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised on the calling thread
            box["error"] = exc

    handle = runner.submit(job, source=tool.id, timeout=timeout)
    while True:
        try:
            result = handle.result(0.05)  # returns as soon as the run ends
            break
        except TimeoutError:
            if cancel.cancelled:
                handle.cancel()
                with contextlib.suppress(TimeoutError):
                    handle.result(0.25)  # a cooperative tool stops at its next check; others are left
                runner.shutdown(wait=False)
                raise Cancelled(cancel.reason or "cancelled") from None
    # The runner's own thread is idle now (after a time-out, a fresh one took over): end it.
    runner.shutdown(wait=True, timeout=1.0)
    if result.status == "error" and result.error is not None and result.error.kind == "TimeoutError":
        raise ToolError(
            tool,
            f"did not finish within {timeout:g} s and was abandoned (raise the limit with "
            f"--timeout or {TOOL_TIMEOUT_ENV}; 0 means none)",
        )
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _is_out_of_memory(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _validate(tool: ToolSpec, value: Any, images: Sequence[LoadedImage]) -> tuple[Result, ...]:
    if isinstance(value, Result):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ToolError(tool, f"returned {type(value).__name__}, expected a list of results")
    # The items as stored, whatever a subclass's __iter__ or __len__ claims (an endless one hangs).
    value = list.copy(value) if isinstance(value, list) else tuple.__getitem__(value, slice(None))
    sizes = {im.id: (im.height, im.width) for im in images}
    out = []
    for i, r in enumerate(value):
        if not isinstance(r, Result):
            raise ToolError(tool, f"result {i} is a {type(r).__name__}, not a result type")
        if tool.returns and r.kind not in tool.returns:
            raise ToolError(tool, f"result {i} is '{r.kind}', but the tool declares {list(tool.returns)}")
        problem = check_against_inputs(i, r, sizes)  # masks without an image id are checked too
        if problem:
            raise ToolError(tool, problem)
        out.append(r)
    return tuple(out)


def prepare_tool(
    tool: ToolSpec,
    images: Sequence[LoadedImage],
    params: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    cancel: CancelToken | None = None,
    services: Services | None = None,
    params_from_text: bool = False,
    timeout: float | None = None,
    isolate: bool | None = None,
) -> bool:
    """Fill the caches for many images at once when the tool declares ``prepare``.

    Returns False when the tool has no batched preparation. Failures (and a preparation still going
    after ``timeout`` seconds) raise :class:`ToolError`, so a caller can fall back to per-image runs,
    which report per-image errors.
    """
    if not tool.prepare:
        return False
    if isolate is None:
        from vfmstudio.isolation import runs_isolated

        try:
            isolate = runs_isolated(tool)
        except ValueError as exc:  # a bad VFMSTUDIO_PLUGIN_ISOLATION value
            raise ToolError(tool, str(exc), user_error=True) from None
    if isolate:  # in the worker that will run the tool, so its caches are the ones filled
        from vfmstudio.isolation import run_isolated

        try:
            resolved = tool.resolve_params(params, from_text=params_from_text)
        except ParamError as exc:
            raise ToolError(tool, str(exc), user_error=True) from None
        return bool(
            run_isolated(
                tool,
                images,
                resolved,
                model=model,
                device=device,
                precision=precision,
                cancel=cancel or CancelToken(),
                timeout=timeout,
                prepare=True,
            )
        )
    try:
        resolved = tool.resolve_params(params, from_text=params_from_text)
        fn = tool.load_prepare()
        if fn is None:  # tool.prepare is set, so only a loader bug gets here
            raise ToolError(tool, f"cannot load {tool.prepare}")
    except ParamError as exc:
        raise ToolError(tool, str(exc), user_error=True) from None
    except Exception as exc:  # noqa: BLE001 - plugin code may fail to import in any way
        raise ToolError(tool, f"cannot load {tool.prepare}: {type(exc).__name__}: {exc}") from exc
    cancel = cancel or CancelToken()
    ctx = _context(tool, model, device, precision, cancel, timeout, services)
    try:
        if timeout:
            _call_with_timeout(tool, fn, ctx, list(images), resolved, timeout, cancel)
        else:
            fn(ctx, list(images), resolved)
    except (Cancelled, ToolError):
        raise
    except Exception as exc:  # noqa: BLE001 - fault boundary around plugin code
        raise ToolError(tool, f"batched preparation failed: {type(exc).__name__}: {exc}") from exc
    return True
