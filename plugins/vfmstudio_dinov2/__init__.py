"""DINOv2 and DINOv3 dense features: PCA foreground and part maps, similarity, matches, token norms,
label propagation.

The tools are ``dino.*``; their former ``dinov2.*`` ids stay aliases, so scripts and batch files
keep working. Patch size, special tokens and positions come from each checkpoint's config.

Registering is cheap: the tool code (``_tools``, ``_features``) and torch are imported only when a
tool runs. Every tool computes the features of an image once per (model, precision, resolution)
and keeps them in the feature cache; see docs/tools/dinov2.md.
"""

from __future__ import annotations

from vfmstudio.plugin_api import InputKind, ModelSpec, Param, ParamType, ToolSpec, hookimpl

VFM_TOOL_FAMILIES = ("dino",)
DEFAULT_MODEL = "facebook/dinov2-small"
MODEL_FAMILIES = ("dinov2", "dinov3")

_DINOV2 = "Apache-2.0"
_DINOV3 = "DINOv3 License"  # Meta's own licence; the hub asks users to accept it (gated)
DECLARED_MODELS = (
    ModelSpec("facebook/dinov2-small", "dinov2", "DINOv2 ViT-S/14", 22, _DINOV2, default=True),
    ModelSpec("facebook/dinov2-base", "dinov2", "DINOv2 ViT-B/14", 86, _DINOV2),
    ModelSpec("facebook/dinov2-large", "dinov2", "DINOv2 ViT-L/14", 304, _DINOV2),
    ModelSpec("facebook/dinov2-giant", "dinov2", "DINOv2 ViT-g/14", 1136, _DINOV2),
    ModelSpec("facebook/dinov2-with-registers-small", "dinov2", "DINOv2 ViT-S/14 + registers", 22, _DINOV2),
    ModelSpec("facebook/dinov2-with-registers-base", "dinov2", "DINOv2 ViT-B/14 + registers", 86, _DINOV2),
    ModelSpec("facebook/dinov2-with-registers-large", "dinov2", "DINOv2 ViT-L/14 + registers", 304, _DINOV2),
    ModelSpec("facebook/dinov2-with-registers-giant", "dinov2", "DINOv2 ViT-g/14 + registers", 1136, _DINOV2),
    # DINOv3 ViTs (patch 16, RoPE, 4 registers): S to H+ are distilled from the 7B teacher.
    ModelSpec(
        "facebook/dinov3-vits16-pretrain-lvd1689m",
        "dinov3",
        "DINOv3 ViT-S/16 (distilled)",
        21,
        _DINOV3,
        gated=True,
        default=True,
    ),
    ModelSpec(
        "facebook/dinov3-vits16plus-pretrain-lvd1689m",
        "dinov3",
        "DINOv3 ViT-S+/16 (distilled)",
        29,
        _DINOV3,
        gated=True,
    ),
    ModelSpec(
        "facebook/dinov3-vitb16-pretrain-lvd1689m",
        "dinov3",
        "DINOv3 ViT-B/16 (distilled)",
        86,
        _DINOV3,
        gated=True,
    ),
    ModelSpec(
        "facebook/dinov3-vitl16-pretrain-lvd1689m",
        "dinov3",
        "DINOv3 ViT-L/16 (distilled)",
        300,
        _DINOV3,
        gated=True,
    ),
    ModelSpec(
        "facebook/dinov3-vith16plus-pretrain-lvd1689m",
        "dinov3",
        "DINOv3 ViT-H+/16 (distilled)",
        840,
        _DINOV3,
        gated=True,
    ),
    ModelSpec(
        "facebook/dinov3-vit7b16-pretrain-lvd1689m", "dinov3", "DINOv3 ViT-7B/16", 6716, _DINOV3, gated=True
    ),
    ModelSpec(
        "facebook/dinov3-vitl16-pretrain-sat493m",
        "dinov3",
        "DINOv3 ViT-L/16 satellite (distilled)",
        300,
        _DINOV3,
        gated=True,
    ),
)
MODELS = tuple(m.choice() for m in DECLARED_MODELS)  # this plugin's own models, as tool choices

RESOLUTION = Param(
    "resolution",
    ParamType.INT,
    448,
    minimum=28,
    maximum=1792,
    help="short side of the model input in pixels (cropped to multiples of the model's patch size)",
)
UPSAMPLE = Param(
    "upsample",
    ParamType.CHOICE,
    "bilinear",
    choices=("nearest", "bilinear", "bicubic"),
    help="how patch-level maps are resampled to the image",
)
THRESHOLD = Param(
    "threshold",
    ParamType.FLOAT,
    "auto",
    minimum=0.0,
    maximum=1.0,
    special=("auto",),
    help="cut on the first PCA component scaled to [0, 1] (foreground above); auto = Otsu's histogram valley",
)
SIGN = Param(
    "sign",
    ParamType.CHOICE,
    "auto",
    choices=("auto", "flip"),
    help="auto: foreground is the more central (else the smaller) side of the cut; flip: the other side",
)
CLEANUP = Param(
    "cleanup",
    ParamType.BOOL,
    True,
    help="drop foreground specks and fill holes smaller than 1% of the patch grid",
)


def _tool(
    name: str,
    title: str,
    function: str,
    inputs: InputKind,
    params: tuple[Param, ...],
    returns: tuple[str, ...],
    description: str,
) -> ToolSpec:
    return ToolSpec(
        id=f"dino.{name}",
        title=title,
        run=f"vfmstudio_dinov2._tools:{function}",
        inputs=inputs,
        params=(*params, RESOLUTION),
        model_families=MODEL_FAMILIES,
        default_model=DEFAULT_MODEL,
        returns=returns,
        description=description,
        prepare="vfmstudio_dinov2._features:prepare",
        aliases=(f"dinov2.{name}",),
    )


TOOLS = (
    _tool(
        "pca",
        "PCA foreground and parts",
        "pca",
        InputKind.IMAGE,
        (THRESHOLD, SIGN, CLEANUP, UPSAMPLE),
        ("feature_image", "masks", "heatmap", "histogram"),
        "Splits foreground from background on the first PCA component of the patch tokens, then colours "
        "the foreground by a 3-component PCA fitted on foreground tokens only.",
    ),
    _tool(
        "joint-pca",
        "Joint PCA over images",
        "joint_pca",
        InputKind.SET,
        (THRESHOLD, SIGN, CLEANUP, UPSAMPLE),
        ("feature_image", "masks"),
        "Like PCA, with the colour PCA fitted on the foreground tokens of all images together, so the same "
        "part gets the same colour in every image.",
    ),
    _tool(
        "similarity",
        "Patch similarity",
        "similarity",
        InputKind.SET,
        (
            Param(
                "points",
                ParamType.POINTS,
                required=True,
                help="points on the first image, 'x,y; x,y' in pixels",
            ),
        ),
        ("heatmap", "correspondences"),
        "Cosine similarity of the patch under each point of the first image to every patch of every image, "
        "and the best match in each other image.",
    ),
    _tool(
        "matches",
        "Sparse matches",
        "matches",
        InputKind.PAIR,
        (
            Param("k", ParamType.INT, 20, minimum=1, maximum=1000, help="how many diverse matches to keep"),
            Param(
                "foreground", ParamType.BOOL, True, help="match foreground patches only (automatic PCA split)"
            ),
        ),
        ("correspondences",),
        "Mutual nearest neighbours (best buddies) between two images, then a diverse top-k chosen by "
        "k-means over the pair descriptors, keeping the strongest pair of each cluster.",
    ),
    _tool(
        "norms",
        "Token norms per layer",
        "norms",
        InputKind.IMAGE,
        (
            Param(
                "layer",
                ParamType.INT,
                -1,
                help="layer whose outliers are masked: 0 = embeddings, negative counts from the end",
            ),
            Param(
                "k",
                ParamType.FLOAT,
                5.0,
                minimum=0.5,
                maximum=100.0,
                help="a token is an outlier above median + k * 1.4826 * MAD of its layer",
            ),
        ),
        ("layer_maps", "table", "heatmap", "masks"),
        "L2 norms of the patch tokens at every layer, with the high-norm artifact tokens of one layer; "
        "the CLS and register tokens are listed apart.",
    ),
    _tool(
        "propagate",
        "Propagate labels",
        "propagate",
        InputKind.SET,
        (
            Param(
                "masks",
                ParamType.STR,
                required=True,
                help="masks of the reference images (the first images), one per reference, separated by ';': "
                "label PNGs, Masks/prediction JSON files, or inline Masks JSON",
            ),
            Param("k", ParamType.INT, 5, minimum=1, maximum=200, help="neighbours that vote for each patch"),
            Param(
                "floor",
                ParamType.FLOAT,
                0.2,
                minimum=-1.0,
                maximum=1.0,
                help="neighbours less similar than this do not vote; a patch with no vote is background",
            ),
            UPSAMPLE,
        ),
        ("masks",),
        "Transfers the labels of annotated reference images to the other images by nearest-neighbour "
        "voting on patch features, as mask suggestions to accept.",
    ),
    ToolSpec(
        id="dino.embed",
        title="Image embeddings",
        run="vfmstudio_dinov2._embed:embed",
        inputs=InputKind.SET,
        aliases=("dinov2.embed",),
        params=(
            Param(
                "pool",
                ParamType.CHOICE,
                "cls",
                choices=("cls", "mean"),
                help="cls: the CLS token; mean: the mean patch token (both after the final norm)",
            ),
            Param(
                "resolution",
                ParamType.INT,
                224,
                minimum=28,
                maximum=1792,
                help="short side of the model input in pixels (cropped to whole patches)",
            ),
        ),
        model_families=MODEL_FAMILIES,
        default_model=DEFAULT_MODEL,
        returns=("embedding",),
        decode_side="resolution",  # the model input's short side: a batch need not decode more
        description="One L2-normalised vector per image (CLS or mean patch token) for the folder index "
        "(vfmstudio index, similar, duplicates).",
        prepare="vfmstudio_dinov2._features:prepare",
    ),
)


@hookimpl
def vfm_register_tools() -> list[ToolSpec]:
    return list(TOOLS)


@hookimpl
def vfm_register_models() -> list[ModelSpec]:
    return list(DECLARED_MODELS)
