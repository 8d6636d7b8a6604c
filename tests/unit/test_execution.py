"""run_tool: the fault boundary around plugin code and the validation of what tools return."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.results import Heatmap, Masks, Text
from vfmstudio.core.tools import InputKind, Param, ParamType, ToolSpec
from vfmstudio.execution import Services, ToolError, run_tool


def _image(h=6, w=8, ident="img1"):
    return LoadedImage(
        path=None,
        pixels=np.zeros((h, w, 3), np.uint8),
        id=ident,
        width=w,
        height=h,
        format="PNG",
        metadata={},
    )


@pytest.fixture
def fake_module():
    mod = types.ModuleType("fake_tools_mod")
    sys.modules[mod.__name__] = mod
    yield mod
    sys.modules.pop(mod.__name__, None)


def _spec(fn_name, **kw):
    return ToolSpec(id="fake.t", title="T", run=f"fake_tools_mod:{fn_name}", plugin="fake", **kw)


class _CountingCache:
    def __init__(self):
        self.store = {}

    def get_or_create(self, key, factory, nbytes=None):
        if key not in self.store:
            self.store[key] = factory()
        return self.store[key]


def test_successful_run_builds_the_envelope(fake_module):
    calls = []

    def ok(ctx, images, params):
        calls.append(params)
        ctx.progress(0.5, "half")
        feats = ctx.cached(("f", images[0].id), lambda: np.ones((2, 2)))
        ctx.used_device = "cpu"
        return [Heatmap(values=feats * params["gain"], image_id=images[0].id)]

    fake_module.ok = ok
    progress = []
    pred = run_tool(
        _spec("ok", params=(Param("gain", ParamType.FLOAT, 1.0),)),
        [_image()],
        {"gain": "2.5"},
        params_from_text=True,
        on_progress=lambda f, m: progress.append((f, m)),
        services=Services(models=_CountingCache(), features=_CountingCache()),
    )
    assert pred.tool == "fake.t" and pred.image_ids == ("img1",) and pred.device == "cpu"
    assert pred.params == {"gain": 2.5} and calls == [{"gain": 2.5}]
    assert float(pred.results[0].values[0, 0]) == 2.5
    assert progress == [(0.5, "half")]
    assert set(pred.timings) == {"import_s", "run_s"}


@pytest.mark.parametrize(
    "body, message, user",
    [
        ("raise RuntimeError('kaput')", "RuntimeError: kaput", False),
        ("return 'not a list'", "expected a list of results", False),
        ("return [42]", "not a result type", False),
        ("return [Text('x', image_id='other')]", "was not an input", False),
        (
            "return [Masks(masks=np.zeros((1, 3, 3), bool), labels=('a',), image_id='img1')]",
            "do not match",
            False,
        ),
        ("raise MemoryError()", "out of memory", True),
        (
            "raise type('OutOfMemoryError', (RuntimeError,), {})('CUDA out of memory')",
            "smaller resolution",
            True,
        ),
    ],
)
def test_faults_become_tool_errors_naming_the_plugin(fake_module, body, message, user):
    ns = {"np": np, "Text": Text, "Masks": Masks}
    exec(f"def bad(ctx, images, params):\n    {body}\n", ns)  # noqa: S102 - builds a faulty tool for the test
    fake_module.bad = ns["bad"]
    with pytest.raises(ToolError) as info:
        run_tool(_spec("bad"), [_image()], services=Services(_CountingCache(), _CountingCache()))
    assert message in str(info.value)
    assert str(info.value).startswith("fake.t (fake):")
    assert info.value.user_error is user


def test_declared_result_types_are_enforced(fake_module):
    fake_module.text = lambda ctx, images, params: [Text("x")]
    with pytest.raises(ToolError, match="declares"):
        run_tool(
            _spec("text", returns=("heatmap",)),
            [_image()],
            services=Services(_CountingCache(), _CountingCache()),
        )


def test_import_failure_and_bad_inputs(fake_module):
    with pytest.raises(ToolError, match="cannot load"):
        run_tool(_spec("missing_fn"), [_image()])
    with pytest.raises(ToolError, match="pair") as info:
        run_tool(_spec("x", inputs=InputKind.PAIR), [_image()])
    assert info.value.user_error


def test_cancel_propagates(fake_module):
    token = CancelToken()

    def slow(ctx, images, params):
        token.cancel()
        ctx.progress(0.1, "step")  # raises Cancelled
        return []

    fake_module.slow = slow
    with pytest.raises(Cancelled):
        run_tool(
            _spec("slow"), [_image()], cancel=token, services=Services(_CountingCache(), _CountingCache())
        )


def test_masks_without_an_image_id_are_checked_against_the_input_size(fake_module):
    """A Masks result naming no image used to skip the size check and break export later."""
    fake_module.wrong = lambda ctx, images, params: [Masks(masks=np.zeros((1, 60, 80), bool), labels=("a",))]
    fake_module.right = lambda ctx, images, params: [Masks(masks=np.zeros((1, 6, 8), bool), labels=("a",))]
    with pytest.raises(ToolError, match=r"masks of size \(60, 80\) do not match image img1 of size \(6, 8\)"):
        run_tool(_spec("wrong", returns=("masks",)), [_image()], {})
    assert run_tool(_spec("right", returns=("masks",)), [_image()], {}).results[0].size == (6, 8)


def test_a_tools_keyboard_interrupt_is_its_error_not_the_users_ctrl_c(fake_module):
    def interrupts(ctx, images, params):
        raise KeyboardInterrupt

    fake_module.interrupts = interrupts
    with pytest.raises(ToolError, match="raised KeyboardInterrupt") as info:
        run_tool(_spec("interrupts"), [_image()], {}, timeout=30)
    assert not info.value.user_error
