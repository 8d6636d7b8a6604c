"""PaliGemma 2 tools: caption, ask (VQA), OCR, raw prompt, detect and segment.

This module only declares the tools (no torch import): the code runs from ``_tools`` when a tool runs.
See docs/tools/paligemma.md.
"""

from __future__ import annotations

from vfmstudio.plugin_api import InputKind, ModelSpec, Param, ParamType, ToolSpec, hookimpl

__version__ = "0.1.0"

DECLARED_MODELS = (
    ModelSpec(
        "google/paligemma2-3b-mix-224",
        "paligemma",
        "PaliGemma 2 3B mix 224",
        3030,
        "Gemma",
        gated=True,
        default=True,
    ),
    ModelSpec(
        "google/paligemma2-3b-mix-448", "paligemma", "PaliGemma 2 3B mix 448", 3030, "Gemma", gated=True
    ),
)
MODELS = tuple(m.choice() for m in DECLARED_MODELS)  # this plugin's own models, as tool choices


def _max_tokens(default: int) -> Param:
    return Param(
        "max_new_tokens",
        ParamType.INT,
        default,
        minimum=1,
        maximum=2048,
        help="stop after this many generated tokens",
    )


_LANG = Param("lang", ParamType.STR, "en", help="language code of the answer, e.g. en, de, fr")
_CLASSES = Param(
    "classes",
    ParamType.STRLIST,
    required=True,
    help="object names separated by ';' (or commas), e.g. \"cat ; dog\"",
)


def _tool(name: str, title: str, params: tuple[Param, ...], returns: str, description: str) -> ToolSpec:
    # Detect and segment add a text result when they find nothing: the model's answer, as the reason.
    kinds = (returns,) if returns == "text" else (returns, "text")
    return ToolSpec(
        id=f"paligemma.{name}",
        title=title,
        run=f"vfmstudio_paligemma._tools:{name}",
        inputs=InputKind.IMAGE,
        params=params,
        model_families=("paligemma",),
        returns=kinds,
        description=description,
        prepare="vfmstudio_paligemma._tools:prepare",
        # PaliGemma's largest input is 896 px; text answers carry no pixel coordinates, so a batch may
        # decode a large photo at a reduced size (detect and segment see the full image).
        decode_side=896 if returns == "text" else None,
    )


TOOLS = (
    _tool("caption", "Caption", (
        Param("length", ParamType.CHOICE, "short", choices=("short", "long"),
              help="short: 'caption', long: 'describe'"),
        _LANG, _max_tokens(128)), "text", "A short caption or a longer description of the image."),
    _tool("ask", "Ask", (
        Param("question", ParamType.TEXT, required=True, help="a question about the image"),
        _LANG, _max_tokens(64)), "text", "Answers a question about the image (VQA)."),
    _tool("ocr", "Read text (OCR)", (_max_tokens(256),), "text", "Reads the text in the image."),
    _tool("prompt", "Prompt", (
        Param("prompt", ParamType.TEXT, required=True, help="the prompt as the model expects it, e.g. 'cap en'"),
        _max_tokens(128)), "text", "Runs a raw prompt, for tasks the other tools do not cover."),
    _tool("detect", "Detect", (_CLASSES, _max_tokens(128)), "detections",
          "Boxes for the named objects, in image pixels. Each score is the geometric mean of the "
          "probabilities of the object's location and label tokens."),
    _tool("segment", "Segment", (
        _CLASSES, _max_tokens(256),
        Param("vae_path", ParamType.STR, "",
              help="vae-oid.npz mask decoder weights; empty: $VFMSTUDIO_PALIGEMMA_VAE or the hub cache"),
        Param("paste", ParamType.CHOICE, "evaluator", choices=("evaluator", "cover"),
              help="evaluator: box = loc/1023, truncated, empty boxes dropped (big_vision's evaluator); "
                   "cover: the pixels covering the drawn box (loc/1024, floor/ceil)")),
          "masks", "A mask and box for each named object, decoded from PaliGemma's segmentation tokens; "
                   "scores as for detect."),
)  # fmt: skip


@hookimpl
def vfm_register_tools() -> list[ToolSpec]:
    return list(TOOLS)


@hookimpl
def vfm_register_models() -> list[ModelSpec]:
    return list(DECLARED_MODELS)
