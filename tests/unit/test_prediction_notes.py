"""``Prediction.notes``: one-line remarks on how a run differs from what was asked (issue 21, item 11)."""

from __future__ import annotations

import numpy as np
import pytest

from vfmstudio.core.context import RunContext
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.results import Classification, Prediction, ResultError
from vfmstudio.core.tools import ToolSpec
from vfmstudio.execution import run_tool


def _prediction(**kw) -> Prediction:
    result = Classification(labels=("a",), scores=np.array([1.0]))
    return Prediction(tool="t.x", model=None, image_ids=("i",), results=(result,), **kw)


def test_notes_round_trip_and_are_absent_when_there_are_none():
    assert "notes" not in _prediction().to_json()  # files written before notes read the same
    assert Prediction.from_json(_prediction().to_json()).notes == ()
    pred = _prediction(notes=("scaled to 55 px", "decoded at 1/8 size"))
    obj = pred.to_json()
    assert obj["notes"] == ["scaled to 55 px", "decoded at 1/8 size"]
    assert Prediction.from_json(obj).notes == pred.notes


def test_notes_are_one_printable_line_each():
    pred = _prediction(notes=("two\nlines\x1b[2J and\tmore",))
    assert pred.notes == ("two lines and more",)


@pytest.mark.parametrize("bad", ["one string", [1, 2], {"a": "b"}])
def test_malformed_notes_in_a_file_are_refused(bad):
    obj = {**_prediction().to_json(), "notes": bad}
    with pytest.raises(ResultError, match="notes: expected a list of strings"):
        Prediction.from_json(obj)


def noting_tool(ctx, images, params):
    ctx.note("resolution lowered")
    ctx.note("resolution lowered")  # said twice, kept once
    return [Classification(labels=("a",), scores=np.array([1.0]), image_id=images[0].id)]


def test_a_tool_note_reaches_the_prediction_and_the_progress(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "noting_tools", sys.modules[__name__])
    tool = ToolSpec(id="test.note", title="n", run="noting_tools:noting_tool", returns=("classification",))
    image = LoadedImage(None, np.zeros((4, 5, 3), np.uint8), "ab" * 8, 5, 4, "PNG")
    progress = []
    pred = run_tool(tool, [image], isolate=False, on_progress=lambda f, m: progress.append(m))
    assert pred.notes == ("resolution lowered",)
    assert progress.count("resolution lowered") == 2
    ctx = RunContext(tool_id="t.x")
    assert ctx.notes == []  # a fresh list per run


def test_notes_come_back_from_a_plugin_worker_process(tmp_path, monkeypatch):
    # The worker imports the tool by name from the caller's sys.path and sends JSON back.
    (tmp_path / "noting_worker_tool.py").write_text(
        "import numpy as np\n"
        "from vfmstudio.core.results import Classification\n"
        "def run(ctx, images, params):\n"
        "    ctx.note('said in the worker')\n"
        "    return [Classification(labels=('a',), scores=np.array([1.0]), image_id=images[0].id)]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tool = ToolSpec(id="test.note", title="n", run="noting_worker_tool:run", returns=("classification",))
    image = LoadedImage(None, np.zeros((4, 5, 3), np.uint8), "ab" * 8, 5, 4, "PNG")
    assert run_tool(tool, [image], isolate=True).notes == ("said in the worker",)
