"""Tools as data: what a tool takes, what it returns, and how its parameters parse.

The CLI (``--param name=value``) and the window (forms) are built from the same declarations,
so a tool's parameters are described once, here, and validated in one place.
"""

from __future__ import annotations

import enum
import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vfmstudio.core.results import RESULT_TYPES

#: Result kinds that carry no pixel coordinates: a tool returning only these gives the same answer for
#: an image decoded at a reduced size, so it may declare ``ToolSpec.decode_side`` (ADR 0160).
COORDINATE_FREE_RESULTS: frozenset[str] = frozenset({"classification", "embedding", "ranking", "text"})

TOOL_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_-]*$")
PARAM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ParamError(ValueError):
    """A parameter value was refused; the message names the parameter and the reason."""


class InputKind(enum.StrEnum):
    IMAGE = "image"  # exactly one image
    PAIR = "pair"  # a source and a target image
    SET = "set"  # one or more images, processed together
    TEXT = "text"  # no image: the tool works from its parameters alone (e.g. encodes a text query)

    def check_count(self, n: int) -> None:
        if self is InputKind.IMAGE and n != 1:
            raise ParamError(f"this tool takes one image, got {n}")
        if self is InputKind.PAIR and n != 2:
            raise ParamError(f"this tool takes a pair of images (source, target), got {n}")
        if self is InputKind.SET and n < 1:
            raise ParamError("this tool takes at least one image")
        if self is InputKind.TEXT and n != 0:
            raise ParamError(f"this tool takes no image (it works from its parameters), got {n}")


class ParamType(enum.StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    TEXT = "text"  # multi-line free text (prompts)
    CHOICE = "choice"
    STRLIST = "strlist"  # a list of strings, given as "a, b, c" (or "a ; b" where sep is ';')
    POINTS = "points"  # image points "x,y; x,y" in pixels


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@dataclass(frozen=True)
class Param:
    """One typed parameter.

    ``special`` lists literal words accepted besides the type (e.g. ``("auto",)`` for a number
    that may be chosen automatically). ``sep`` splits STRLIST text; ``None`` accepts both ',' and ';'.
    """

    name: str
    type: ParamType
    default: Any = None
    help: str = ""
    title: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    special: tuple[str, ...] = ()
    sep: str | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if not PARAM_NAME.match(self.name):
            raise ValueError(f"parameter name {self.name!r} must be lower_snake_case")
        object.__setattr__(self, "type", ParamType(self.type))
        if self.type is ParamType.CHOICE and not self.choices:
            raise ValueError(f"parameter {self.name!r}: a choice needs choices")
        if self.default is not None and not self.required:
            object.__setattr__(self, "default", self.coerce(self.default))

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    # -- parsing from text (CLI, form fields) --------------------------------------------
    def parse(self, text: str) -> Any:
        text = text.strip()
        if text in self.special:
            return text
        t = self.type
        try:
            if t is ParamType.INT:
                value: Any = int(text)
            elif t is ParamType.FLOAT:
                value = float(text)
            elif t is ParamType.BOOL:
                low = text.lower()
                if low not in _TRUE | _FALSE:
                    raise ParamError(f"parameter '{self.name}': expected true/false, got {text!r}")
                value = low in _TRUE
            elif t is ParamType.STRLIST:
                value = split_list(text, self.sep)
            elif t is ParamType.POINTS:
                value = parse_points(text)
            else:
                value = text
        except ValueError as exc:
            if isinstance(exc, ParamError):
                raise
            raise ParamError(f"parameter '{self.name}': expected {t.value}, got {text!r}") from None
        return self.coerce(value)

    # -- validating Python values ---------------------------------------------------------
    def coerce(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.special:
            return value
        t = self.type
        where = f"parameter '{self.name}'"
        if t in (ParamType.INT, ParamType.FLOAT):
            if isinstance(value, bool) or not isinstance(value, int | float):
                if isinstance(value, str):
                    return self.parse(value)
                raise ParamError(f"{where}: expected a number, got {value!r}")
            if t is ParamType.INT:
                if isinstance(value, float) and not value.is_integer():
                    raise ParamError(f"{where}: expected a whole number, got {value!r}")
                value = int(value)
            else:
                value = float(value)
                if value != value or value in (float("inf"), float("-inf")):
                    raise ParamError(f"{where}: must be a finite number")
            if self.minimum is not None and value < self.minimum:
                raise ParamError(f"{where}: {value} is below the minimum {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise ParamError(f"{where}: {value} is above the maximum {self.maximum}")
            return value
        if t is ParamType.BOOL:
            if isinstance(value, str):
                return self.parse(value)
            if not isinstance(value, bool):
                raise ParamError(f"{where}: expected true/false, got {value!r}")
            return value
        if t is ParamType.CHOICE:
            if value not in self.choices:
                raise ParamError(f"{where}: {value!r} is not one of {', '.join(self.choices)}")
            return value
        if t is ParamType.STRLIST:
            if isinstance(value, str):
                value = split_list(value, self.sep)
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ParamError(f"{where}: expected a list of strings")
            return tuple(v.strip() for v in value if v.strip())
        if t is ParamType.POINTS:
            if isinstance(value, str):
                value = parse_points(value)
            try:
                pts = tuple((float(x), float(y)) for x, y in value)
            except (TypeError, ValueError):
                raise ParamError(f"{where}: expected points as 'x,y; x,y'") from None
            if not all(math.isfinite(v) for p in pts for v in p):  # a NaN point reached the tool mid-batch
                raise ParamError(f"{where}: point coordinates must be finite numbers")
            return pts
        if not isinstance(value, str):
            raise ParamError(f"{where}: expected text, got {type(value).__name__}")
        return value

    def describe(self) -> dict:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "default": _plain(self.default),
            "help": self.help,
        }
        for key in ("minimum", "maximum"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.choices:
            out["choices"] = list(self.choices)
        if self.special:
            out["special"] = list(self.special)
        if self.required:
            out["required"] = True
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def split_list(text: str, sep: str | None = None) -> tuple[str, ...]:
    if sep is None:
        sep = ";" if ";" in text else ","
    return tuple(part.strip() for part in text.split(sep) if part.strip())


def parse_points(text: str) -> tuple[tuple[float, float], ...]:
    points = []
    for chunk in text.replace("|", ";").split(";"):
        chunk = chunk.strip()
        if not chunk:
            continue
        parts = [p for p in re.split(r"[,\s]+", chunk) if p]
        if len(parts) != 2:
            raise ParamError(f"a point is 'x,y', got {chunk!r}")
        points.append((float(parts[0]), float(parts[1])))
    if not points:
        raise ParamError("expected at least one point as 'x,y'")
    return tuple(points)


@dataclass(frozen=True)
class ModelChoice:
    """A model a tool can run with. ``ref`` is a hub id (optionally ``@revision``) or a folder."""

    ref: str
    title: str = ""
    params_millions: float | None = None
    gated: bool = False


MODEL_FAMILY = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin offers, declared through ``vfm_register_models`` (see docs/adr/0145).

    ``family`` groups checkpoints one code path runs (``dinov3``, ``siglip2``); tools list the
    families they take in ``ToolSpec.model_families``. ``default`` marks the family's default.
    """

    ref: str
    family: str
    title: str
    params_millions: float  # approximate, for size hints before anything is downloaded
    licence: str = ""
    gated: bool = False
    default: bool = False
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.ref or self.ref != self.ref.strip() or "@" in self.ref:
            raise ValueError(
                f"model ref {self.ref!r} must be a hub id or folder, without spaces or @revision"
            )
        if not MODEL_FAMILY.match(self.family):
            raise ValueError(
                f"model {self.ref}: family {self.family!r} must be lower case letters, digits, '-' or '_'"
            )
        if (
            isinstance(self.params_millions, bool)
            or not isinstance(self.params_millions, int | float)
            or not self.params_millions > 0
        ):
            raise ValueError(f"model {self.ref}: params_millions must be a positive number")

    @property
    def size(self) -> str:
        m = self.params_millions
        return f"{m / 1000:.1f}B" if m >= 1000 else f"{m:.0f}M"

    def choice(self) -> ModelChoice:
        return ModelChoice(self.ref, self.title, self.params_millions, self.gated)

    def describe(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "family": self.family,
            "title": self.title,
            "size": self.size,
            "params_millions": self.params_millions,
            "licence": self.licence,
            "gated": self.gated,
            "default": self.default,
            "plugin": self.plugin,
        }


@dataclass(frozen=True)
class ToolSpec:
    """A tool, declared as data. ``run`` is ``"module:function"``, imported only when it runs.

    The function is called as ``function(ctx, images, params)`` and returns a sequence of results
    (see :mod:`vfmstudio.core.results`); ``ctx`` is a :class:`vfmstudio.core.context.RunContext`.
    """

    id: str
    title: str
    run: str
    inputs: InputKind = InputKind.IMAGE
    params: tuple[Param, ...] = ()
    models: tuple[ModelChoice, ...] = ()
    default_model: str | None = None
    # Model families (ModelSpec.family) whose declared models, from any plugin, are appended to
    # ``models`` when the plugins are loaded; without a default_model, the first family's default.
    model_families: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()
    description: str = ""
    # Optional "module:function" called as ``function(ctx, images, params)`` before per-image runs
    # to fill the caches for many images in one batched forward pass (batch engines use it).
    prepare: str | None = None
    # Former ids that still find this tool (scripts, batch files and saved projects name tools by id).
    aliases: tuple[str, ...] = ()
    # The short side, in pixels, the tool's preprocessing needs at most: an int, or the name of an
    # int parameter holding it (e.g. "resolution"). Batch runs then decode a large image at a reduced
    # size whose short side is still at least that (JPEG draft mode; ADR 0160). Only for tools whose
    # results carry no pixel coordinates (COORDINATE_FREE_RESULTS); the others always see full size.
    decode_side: int | str | None = None
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for tool_id in (self.id, *self.aliases):
            if not TOOL_ID.match(tool_id):
                raise ValueError(f"tool id {tool_id!r} must look like 'family.name' (lower case)")
        if ":" not in self.run:
            raise ValueError(f"tool {self.id}: run must be 'module:function', got {self.run!r}")
        object.__setattr__(self, "inputs", InputKind(self.inputs))
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"tool {self.id}: duplicate parameter names")
        for p in self.params:
            if not isinstance(p, Param):
                raise ValueError(f"tool {self.id}: params must be Param objects")
        for kind in self.returns:
            if kind not in RESULT_TYPES:
                raise ValueError(f"tool {self.id}: unknown result type {kind!r}")
        if self.default_model is None and self.models:
            object.__setattr__(self, "default_model", self.models[0].ref)
        if self.decode_side is not None:
            self._check_decode_side()

    def _check_decode_side(self) -> None:
        side = self.decode_side
        if isinstance(side, str):
            if not any(p.name == side and p.type is ParamType.INT for p in self.params):
                raise ValueError(f"tool {self.id}: decode_side {side!r} must name one of its int parameters")
        elif isinstance(side, bool) or not isinstance(side, int) or side < 1:
            raise ValueError(f"tool {self.id}: decode_side must be a positive int or a parameter name")
        coordinates = sorted(set(self.returns) - COORDINATE_FREE_RESULTS)
        if not self.returns or coordinates:
            raise ValueError(
                f"tool {self.id}: decode_side is only for tools whose results carry no pixel coordinates "
                f"({', '.join(sorted(COORDINATE_FREE_RESULTS))}); it returns {coordinates or 'undeclared kinds'}"
            )

    def input_side(self, params: Mapping[str, Any]) -> int | None:
        """The short side :attr:`decode_side` asks for with these (resolved) parameters; None: decode
        in full (no declaration, or a parameter left to the tool, such as ``auto``)."""
        side = self.decode_side
        if isinstance(side, str):
            side = params.get(side)
        return side if isinstance(side, int) and not isinstance(side, bool) and side > 0 else None

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def for_window(self) -> bool:
        """False for tools that only feed the folder index (text tools, tools returning only embeddings):
        the window lists the others."""
        return self.inputs is not InputKind.TEXT and set(self.returns) != {"embedding"}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParamError(
            f"tool {self.id} has no parameter '{name}' (it has: {', '.join(self.param_names) or 'none'})"
        )

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def resolve_params(
        self, given: Mapping[str, Any] | None = None, *, from_text: bool = False
    ) -> dict[str, Any]:
        """Defaults overlaid with ``given``; unknown names and bad values raise :class:`ParamError`."""
        given = dict(given or {})
        out: dict[str, Any] = {}
        for name in given:
            self.param(name)  # raises for unknown names
        for p in self.params:
            if p.name in given:
                value = given[p.name]
                out[p.name] = p.parse(value) if from_text and isinstance(value, str) else p.coerce(value)
            elif p.required:
                raise ParamError(f"tool {self.id}: parameter '{p.name}' is required")
            else:
                out[p.name] = p.default
        return out

    def load_function(self) -> Callable[..., Sequence[Any]]:
        return _import_callable(self.run, self.id)

    def load_prepare(self) -> Callable[..., Any] | None:
        return _import_callable(self.prepare, self.id) if self.prepare else None

    def describe(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "plugin": self.plugin,
            "inputs": self.inputs.value,
            "params": [p.describe() for p in self.params],
            "models": [m.ref for m in self.models],
            "default_model": self.default_model,
            "returns": list(self.returns),
            "description": self.description,
            "batched": bool(self.prepare),
            "aliases": list(self.aliases),
            "decode_side": self.decode_side,
        }


class ToolRegistry(dict[str, ToolSpec]):
    """Tools by id. Looking up an alias finds the tool it names; iterating lists each tool once, by its id."""

    def __init__(self) -> None:
        super().__init__()
        self.aliases: dict[str, str] = {}

    def add(self, spec: ToolSpec) -> None:
        self[spec.id] = spec
        self.aliases.update(dict.fromkeys(spec.aliases, spec.id))

    def canonical(self, tool_id: str) -> str:
        return tool_id if dict.__contains__(self, tool_id) else self.aliases.get(tool_id, tool_id)

    def __getitem__(self, tool_id: str) -> ToolSpec:
        return super().__getitem__(self.canonical(tool_id))

    def __contains__(self, tool_id: object) -> bool:
        return isinstance(tool_id, str) and super().__contains__(self.canonical(tool_id))

    def get(self, tool_id: str, default: Any = None) -> Any:
        return super().get(self.canonical(tool_id), default)


def _import_callable(path: str, owner: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{owner}: {path} is not callable")
    return obj


@dataclass(frozen=True)
class FormatSpec:
    """An annotation format: ``exporter``/``importer`` are ``"module:function"`` paths."""

    id: str
    title: str
    exporter: str | None = None
    importer: str | None = None
    extensions: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    description: str = ""
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z][a-z0-9_-]*$", self.id):
            raise ValueError(f"format id {self.id!r} must be lower case letters, digits, '-' or '_'")
        if not self.exporter and not self.importer:
            raise ValueError(f"format {self.id}: needs an exporter or an importer")

    def describe(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "plugin": self.plugin,
            "export": bool(self.exporter),
            "import": bool(self.importer),
            "extensions": list(self.extensions),
            "params": [p.describe() for p in self.params],
            "description": self.description,
        }
