"""A plugin whose tools fail in every way a plugin tool can, plus one that works (family ``faulty``).

Registered as the module ``faulty`` by the reliability fixtures. ``HANG`` releases the hanging tool
at the end of a test so no thread outlives it for long; ``LEAK`` is the global a leaking tool grows.
"""

from __future__ import annotations

import threading

import numpy as np

from vfmstudio.plugin_api import Heatmap, Masks, Param, ParamType, Text, ToolSpec, hookimpl

HANG = threading.Event()
LEAK: list[np.ndarray] = []
FORWARD = {"calls": 0}


@hookimpl
def vfm_register_tools():
    return [
        ToolSpec(
            id="faulty.ok",
            title="OK",
            run="faulty:ok",
            returns=("heatmap",),
            params=(Param("scale", ParamType.FLOAT, 1.0, minimum=0.0, maximum=10.0),),
        ),
        ToolSpec(id="faulty.raises", title="Raises", run="faulty:raises", returns=("text",)),
        ToolSpec(id="faulty.hangs", title="Hangs", run="faulty:hangs", returns=("text",)),
        ToolSpec(id="faulty.nan", title="NaN", run="faulty:nan", returns=("heatmap",)),
        ToolSpec(id="faulty.shape", title="Shape", run="faulty:shape", returns=("masks",)),
        ToolSpec(id="faulty.notresult", title="Not a result", run="faulty:not_result", returns=("text",)),
        ToolSpec(
            id="faulty.leaks",
            title="Leaks",
            run="faulty:leaks",
            returns=("text",),
            params=(Param("mb", ParamType.INT, 8, minimum=1, maximum=64),),
        ),
        ToolSpec(
            id="faulty.slowprep",
            title="Hanging preparation",
            run="faulty:ok",
            prepare="faulty:hangs",
            returns=("heatmap",),
            params=(Param("scale", ParamType.FLOAT, 1.0, minimum=0.0, maximum=10.0),),
        ),
        ToolSpec(
            id="faulty.missing", title="Missing", run="faulty_module_that_is_gone:run", returns=("text",)
        ),
        # Tools that attack the process that runs them (tests/reliability/test_tool_isolation.py).
        ToolSpec(id="faulty.osexit", title="os._exit", run="faulty:os_exit", returns=("text",)),
        ToolSpec(id="faulty.sysexit", title="sys.exit", run="faulty:sys_exit", returns=("text",)),
        ToolSpec(id="faulty.segfault", title="Segfault", run="faulty:segfault", returns=("text",)),
        ToolSpec(id="faulty.loops", title="Loops", run="faulty:loops", returns=("text",)),
        ToolSpec(id="faulty.endless", title="Endless", run="faulty:endless", returns=("text",)),
        ToolSpec(id="faulty.prints", title="Prints", run="faulty:prints", returns=("text",)),
        ToolSpec(id="faulty.chdir", title="Chdir", run="faulty:chdir", returns=("text",)),
        ToolSpec(
            id="faulty.forks",
            title="Forks",
            run="faulty:forks",
            returns=("text",),
            params=(Param("pidfile", ParamType.STR, ""),),
        ),
        ToolSpec(id="faulty.patches", title="Patches validation", run="faulty:patches", returns=("masks",)),
    ]


def ok(ctx, images, params):
    """The well-behaved tool: features once per image (counted), then cheap math per parameter."""
    image = images[0]

    def features():
        FORWARD["calls"] += 1
        return image.pixels.astype(np.float32).mean(axis=2)

    grey = ctx.cached(("faulty-features", image.id), features)
    return [Heatmap(grey * float(params["scale"]), image_id=image.id)]


def raises(ctx, images, params):
    raise RuntimeError("the plugin tripped over its own feet")


def hangs(ctx, images, params):
    # Ignores its cancel token on purpose: the studio must cope with a tool that never checks it.
    HANG.wait(60)
    return [Text("too late", image_id=images[0].id)]


def nan(ctx, images, params):
    values = np.full((4, 4), np.nan, np.float32)
    return [Heatmap(values, image_id=images[0].id)]


def shape(ctx, images, params):
    image = images[0]
    return [Masks(np.zeros((1, image.height + 3, image.width), bool), ("thing",), image_id=image.id)]


def not_result(ctx, images, params):
    return {"text": "a dict is not a result"}


def leaks(ctx, images, params):
    LEAK.append(np.ones(params["mb"] << 20, np.uint8))
    return [Text(f"{len(LEAK)} blocks kept", image_id=images[0].id)]


def os_exit(ctx, images, params):
    import os

    os._exit(0)  # "success", with nothing done


def sys_exit(ctx, images, params):
    import sys

    sys.exit(0)


def segfault(ctx, images, params):
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV


def loops(ctx, images, params):
    while True:  # never checks its token, never sleeps
        pass


class _Endless(list):
    """Claims to be a list of results and never ends when iterated."""

    def __iter__(self):
        while True:
            yield Text("again")


def endless(ctx, images, params):
    out = _Endless()
    out.append(Text("first", image_id=images[0].id))
    return out


def prints(ctx, images, params):
    import os

    print("chatter from the plugin on stdout")
    os.write(1, b"and from C code on fd 1\n")
    return [Text("printed", image_id=images[0].id)]


def chdir(ctx, images, params):
    import os
    import tempfile

    os.chdir(tempfile.gettempdir())
    return [Text("moved", image_id=images[0].id)]


def forks(ctx, images, params):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(params["pidfile"], "w") as fp:
        fp.write(str(child.pid))
    return [Text("left a child behind", image_id=images[0].id)]


def patches(ctx, images, params):
    import vfmstudio.execution as host

    host._validate = lambda tool, value, images: tuple(value)  # switch the host's checks off
    image = images[0]
    return [Masks(np.zeros((1, image.height + 3, image.width), bool), ("thing",), image_id=image.id)]
