"""Tool declarations: parameters parse from text and validate Python values in one place."""

from __future__ import annotations

import pytest

from vfmstudio.core.tools import InputKind, ModelChoice, Param, ParamError, ParamType, ToolSpec


def spec(**kw):
    base = dict(
        id="fam.tool",
        title="T",
        run="mod:fn",
        params=(
            Param("threshold", ParamType.FLOAT, "auto", minimum=0, maximum=1, special=("auto",)),
            Param("k", ParamType.INT, 20, minimum=1, maximum=500),
            Param("flip", ParamType.BOOL, False),
            Param("mode", ParamType.CHOICE, "patch", choices=("patch", "maskclip")),
            Param("labels", ParamType.STRLIST, ("cat", "dog")),
            Param("points", ParamType.POINTS, ((1.0, 2.0),)),
        ),
        models=(ModelChoice("org/model"),),
    )
    base.update(kw)
    return ToolSpec(**base)


def test_defaults_and_text_parsing():
    t = spec()
    assert t.default_model == "org/model"
    assert t.resolve_params() == {
        "threshold": "auto",
        "k": 20,
        "flip": False,
        "mode": "patch",
        "labels": ("cat", "dog"),
        "points": ((1.0, 2.0),),
    }
    got = t.resolve_params(
        {
            "threshold": "0.25",
            "k": "7",
            "flip": "yes",
            "mode": "maskclip",
            "labels": "a photo, two words ,x",
            "points": "3,4; 5.5 6",
        },
        from_text=True,
    )
    assert got == {
        "threshold": 0.25,
        "k": 7,
        "flip": True,
        "mode": "maskclip",
        "labels": ("a photo", "two words", "x"),
        "points": ((3.0, 4.0), (5.5, 6.0)),
    }


def test_semicolon_lists():
    p = Param("classes", ParamType.STRLIST, ())
    assert p.parse("cat ; dog, brown") == ("cat", "dog, brown")


@pytest.mark.parametrize(
    "given, message",
    [
        ({"nope": 1}, "has no parameter 'nope'"),
        ({"k": "abc"}, "expected int"),
        ({"k": 0}, "below the minimum"),
        ({"threshold": 2.0}, "above the maximum"),
        ({"flip": "maybe"}, "true/false"),
        ({"mode": "other"}, "not one of"),
        ({"points": "1"}, "a point is 'x,y'"),
        ({"k": 1.5}, "whole number"),
    ],
)
def test_bad_values_raise_param_error(given, message):
    with pytest.raises(ParamError, match=message):
        spec().resolve_params(given, from_text=all(isinstance(v, str) for v in given.values()))


def test_required_parameter():
    t = spec(params=(Param("query", ParamType.STR, required=True),))
    with pytest.raises(ParamError, match="required"):
        t.resolve_params({})
    assert t.resolve_params({"query": "x"}) == {"query": "x"}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"id": "NoDot"}, "family.name"),
        ({"run": "nocolon"}, "module:function"),
        ({"returns": ("pixels",)}, "unknown result type"),
        ({"params": (Param("a", ParamType.INT, 1), Param("a", ParamType.INT, 1))}, "duplicate"),
    ],
)
def test_bad_specs_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        spec(**kw)


def test_input_counts():
    InputKind.PAIR.check_count(2)
    with pytest.raises(ParamError, match="pair"):
        InputKind.PAIR.check_count(1)
    with pytest.raises(ParamError, match="one image"):
        InputKind.IMAGE.check_count(3)


def test_describe_is_json_ready():
    import json

    d = spec().describe()
    assert json.loads(json.dumps(d))["params"][0]["special"] == ["auto"]
