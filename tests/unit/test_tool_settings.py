"""Settings that stick: per-tool choices, the family's model, the last tool, a restart."""

from __future__ import annotations

from vfmstudio.core.tools import ModelChoice, Param, ParamType, ToolSpec
from vfmstudio.session.tool_settings import ToolSettings

PCA = ToolSpec(
    "dino.pca",
    "PCA",
    "x:y",
    params=(
        Param("threshold", ParamType.FLOAT, 0.5, minimum=0, maximum=1),
        Param("points", ParamType.POINTS),
    ),
    models=(ModelChoice("org/small"), ModelChoice("org/big")),
)
NORMS = ToolSpec(
    "dino.norms",
    "Norms",
    "x:y",
    params=(Param("layer", ParamType.INT, -1),),
    models=(ModelChoice("org/small"), ModelChoice("org/big")),
)
CLIP = ToolSpec("clip.classify", "Classify", "x:y", models=(ModelChoice("clip/base"),))
NO_MODEL = ToolSpec("dino.plain", "Plain", "x:y")


def test_a_tool_remembers_its_model_device_precision_and_parameters():
    s = ToolSettings()
    s.remember(
        PCA,
        model="org/big",
        device="cpu",
        precision="fp32",
        params={"threshold": 0.25, "points": ((1.0, 2.0),)},
    )
    c = s.choice(PCA)
    assert (c.model, c.device, c.precision) == ("org/big", "cpu", "fp32")
    assert c.params == {"threshold": 0.25}  # clicked points belong to one image, not to the settings


def test_a_model_chosen_for_a_tool_is_the_default_for_its_family_only():
    s = ToolSettings()
    s.remember(PCA, model="org/big")
    assert s.choice(NORMS).model == "org/big"
    assert s.choice(CLIP).model == "clip/base"
    assert s.choice(NO_MODEL).model is None
    s.remember(NORMS, model="org/small")
    assert s.choice(PCA).model == "org/big"  # its own choice stays


def test_everything_survives_a_restart_and_the_last_tool_is_kept():
    s = ToolSettings()
    s.remember(PCA, model="org/big", params={"threshold": 0.3})
    s.remember(NORMS, device="cpu", params={"layer": 4})
    again = ToolSettings.from_json(s.to_json())
    assert again.last_tool == "dino.norms"
    assert again.choice(PCA).params == {"threshold": 0.3} and again.choice(PCA).model == "org/big"
    assert again.choice(NORMS).device == "cpu" and again.choice(NORMS).params == {"layer": 4}


def test_stored_values_that_no_longer_fit_are_dropped_not_fatal():
    s = ToolSettings.from_json(
        '{"version": 1, "tools": {"dino.pca": {"params": {"threshold": 7, "gone": 1}}}}'
    )
    assert s.choice(PCA).params == {}
    for bad in ("not json", "[]", '{"version": 99}', '{"version": 1, "tools": []}'):
        assert ToolSettings.from_json(bad).choice(PCA).model == "org/small"
