"""CLIP and SigLIP: zero-shot labels, open-vocabulary heat maps and masks, text-to-image search.

Registering is light: tool code lives in the underscore modules, imported only when a tool runs.
"""

from __future__ import annotations

from vfmstudio.plugin_api import InputKind, ModelSpec, Param, ParamType, ToolSpec, hookimpl

__version__ = "0.1.0"

_APACHE = "Apache-2.0"
DECLARED_MODELS = (
    ModelSpec("openai/clip-vit-base-patch32", "clip", "CLIP ViT-B/32", 151, "MIT", default=True),
    ModelSpec("openai/clip-vit-base-patch16", "clip", "CLIP ViT-B/16", 150, "MIT"),
    ModelSpec("openai/clip-vit-large-patch14", "clip", "CLIP ViT-L/14", 428, "MIT"),
    ModelSpec("google/siglip-base-patch16-224", "siglip", "SigLIP B/16 224", 203, _APACHE, default=True),
    ModelSpec("google/siglip-so400m-patch14-384", "siglip", "SigLIP so400m/14 384", 878, _APACHE),
    # SigLIP 2: fixed-resolution checkpoints keep the SigLIP layout; NaFlex ones keep the aspect ratio.
    ModelSpec("google/siglip2-base-patch16-224", "siglip2", "SigLIP 2 B/16 224", 375, _APACHE, default=True),
    ModelSpec("google/siglip2-base-patch16-384", "siglip2", "SigLIP 2 B/16 384", 376, _APACHE),
    ModelSpec("google/siglip2-base-patch16-naflex", "siglip2", "SigLIP 2 B/16 NaFlex", 375, _APACHE),
    ModelSpec("google/siglip2-large-patch16-256", "siglip2", "SigLIP 2 L/16 256", 882, _APACHE),
    ModelSpec("google/siglip2-so400m-patch14-384", "siglip2", "SigLIP 2 so400m/14 384", 1136, _APACHE),
    ModelSpec("google/siglip2-so400m-patch16-naflex", "siglip2", "SigLIP 2 so400m/16 NaFlex", 1136, _APACHE),
    ModelSpec("google/siglip2-giant-opt-patch16-256", "siglip2", "SigLIP 2 g-opt/16 256", 1871, _APACHE),
)
MODELS = tuple(m.choice() for m in DECLARED_MODELS)  # this plugin's own models, as tool choices
MODEL_FAMILIES = ("clip", "siglip", "siglip2")
# Larger than the input of any CLIP / SigLIP / SigLIP 2 checkpoint (224 to 512 px, NaFlex at most
# 512 px on the short side): batch runs of the global tools may decode large photos down to it.
MAX_INPUT_SIDE = 1024

# Dense maps need small patches; B/16 is the model MaskCLIP and SCLIP report on.
SEGMENT_DEFAULT = "openai/clip-vit-base-patch16"

_TEMPLATES_HELP = (
    "single ('a photo of a {}.'), ensemble7, ensemble80 (OpenAI's ImageNet prompts), "
    "or your own template(s) with {} for the label, separated by |"
)
_LABELS_HELP = "class names separated by commas (or ;), or the path of a text file with one label per line"


def _labels() -> Param:
    return Param("labels", ParamType.STRLIST, help=_LABELS_HELP, required=True)


def _templates(default: str) -> Param:
    return Param("templates", ParamType.STR, default, help=_TEMPLATES_HELP)


CLASSIFY = ToolSpec(
    id="clip.classify",
    title="Zero-shot labels",
    run="vfmstudio_clip._classify:classify",
    prepare="vfmstudio_clip._classify:prepare",
    inputs=InputKind.SET,
    params=(
        _labels(),
        _templates("single"),
        Param(
            "multi_label",
            ParamType.BOOL,
            "auto",
            special=("auto",),
            help="independent sigmoid score per label (SigLIP); auto: sigmoid for SigLIP, softmax for CLIP",
        ),
        Param("batch_size", ParamType.INT, 16, minimum=1, maximum=512, help="images per forward pass"),
    ),
    model_families=MODEL_FAMILIES,
    default_model="openai/clip-vit-base-patch32",
    returns=("classification",),
    decode_side=MAX_INPUT_SIDE,
    description="Scores for your class names. Text is encoded once per label set and model; images go "
    "through the model in batches and their embeddings are cached by content.",
)

SEGMENT = ToolSpec(
    id="clip.segment",
    title="Open-vocabulary segmentation",
    run="vfmstudio_clip._segment:segment",
    inputs=InputKind.IMAGE,
    params=(
        _labels(),
        Param(
            "mode",
            ParamType.CHOICE,
            "sclip",
            choices=("patch", "maskclip", "sclip"),
            help="last vision block: patch (unchanged), maskclip (identity attention), "
            "sclip (q-q plus k-k attention)",
        ),
        _templates("ensemble7"),
        Param(
            "background",
            ParamType.FLOAT,
            0.5,
            minimum=0.0,
            maximum=1.0,
            help="patches whose best class probability is below this become background",
        ),
        Param(
            "logit_scale",
            ParamType.FLOAT,
            40.0,
            minimum=1.0,
            maximum=200.0,
            help="sharpness of the per-patch softmax over classes",
        ),
        Param(
            "resolution",
            ParamType.INT,
            "auto",
            special=("auto",),
            minimum=32,
            maximum=4096,
            help="short side in pixels the image is resized to; larger than the model's input "
            "uses sliding windows (auto: 1.5x the model's input for sclip, 336 px for B/16 "
            "as SCLIP evaluates; the model's input size for patch and maskclip)",
        ),
        Param(
            "stride",
            ParamType.INT,
            "auto",
            special=("auto",),
            minimum=8,
            maximum=4096,
            help="sliding-window step in pixels (auto: half the model's input size)",
        ),
    ),
    model_families=MODEL_FAMILIES,
    default_model=SEGMENT_DEFAULT,
    returns=("heatmap", "masks"),
    description="Per-class heat maps and an argmax mask per class (plus background) from CLIP patch "
    "tokens. Dense features are cached per image: a threshold edit is instant and a new label "
    "costs one text encoding.",
)

SEARCH = ToolSpec(
    id="clip.search",
    title="Search images by text",
    run="vfmstudio_clip._search:search",
    inputs=InputKind.SET,
    params=(
        Param("query", ParamType.TEXT, "", help="what to look for, e.g. 'a red car at night'"),
        Param("example", ParamType.STR, "", help="path of an example image to search by (optional)"),
        Param(
            "example_weight",
            ParamType.FLOAT,
            0.5,
            minimum=0.0,
            maximum=1.0,
            help="weight of the example image against the text when both are given",
        ),
        Param("folder", ParamType.STR, "", help="also rank every image in this folder (optional)"),
        Param("recursive", ParamType.BOOL, False, help="include sub-folders of 'folder'"),
        Param("top_k", ParamType.INT, 0, minimum=0, help="keep the best k images (0: all)"),
        Param("batch_size", ParamType.INT, 16, minimum=1, maximum=512, help="images per forward pass"),
    ),
    model_families=MODEL_FAMILIES,
    default_model="openai/clip-vit-base-patch32",
    returns=("ranking",),
    description="Ranks images by similarity to a text query and/or an example image. Image embeddings are "
    "cached by content hash, so another query over the same images costs one text encoding.",
)

EMBED = ToolSpec(
    id="clip.embed",
    title="Image embeddings",
    run="vfmstudio_clip._embed:embed",
    prepare="vfmstudio_clip._embed:prepare",
    inputs=InputKind.SET,
    params=(Param("batch_size", ParamType.INT, 16, minimum=1, maximum=512, help="images per forward pass"),),
    model_families=MODEL_FAMILIES,
    returns=("embedding",),
    decode_side=MAX_INPUT_SIDE,
    description="The L2-normalised global embedding of each image, as clip.search compares them; the "
    "folder index (vfmstudio index) stores these.",
)

EMBED_TEXT = ToolSpec(
    id="clip.embed-text",
    title="Text embedding",
    run="vfmstudio_clip._embed:embed_text",
    inputs=InputKind.TEXT,
    params=(Param("text", ParamType.TEXT, required=True, help="the text to encode, e.g. 'a red car'"),),
    model_families=MODEL_FAMILIES,
    returns=("embedding",),
    description="The L2-normalised embedding of a text query, to search a folder index with.",
)

TOOLS = (CLASSIFY, SEGMENT, SEARCH, EMBED, EMBED_TEXT)


@hookimpl
def vfm_register_tools() -> list[ToolSpec]:
    return list(TOOLS)


@hookimpl
def vfm_register_models() -> list[ModelSpec]:
    return list(DECLARED_MODELS)
