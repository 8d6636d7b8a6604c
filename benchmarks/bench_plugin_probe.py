"""What the import-time bound on third-party plugins costs (issue 21 item 3, vfmstudio._plugin_probe).

Loads a host with N fake third-party plugins (entry points in a temporary site folder) three ways,
in one process: without the probe (the reference: plain in-process imports), with a cold probe
cache (one child interpreter per plugin, all in parallel, paid once per installed version) and with
a warm cache (what every later start pays). Prints the medians and the ratios to the reference.

    python benchmarks/bench_plugin_probe.py [--plugins 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

PLUGIN = """
from vfmstudio.plugin_api import hookimpl, ToolSpec
@hookimpl
def vfm_register_tools():
    return [ToolSpec(id="{name}.t", title="T", run="{name}:run", returns=("text",))]
"""


def make_site(root: Path, n: int) -> list[str]:
    names = [f"bench_tp{i}" for i in range(n)]
    for name in names:
        (root / f"{name}.py").write_text(PLUGIN.format(name=name))
        info = root / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[vfmstudio]\n{name} = {name}\n")
    return names


def load(names: list[str], *, probe: bool, cache: Path) -> float:
    from vfmstudio._plugin_host import PluginHost

    for name in names:
        sys.modules.pop(name, None)
    t0 = time.perf_counter()
    host = PluginHost(builtins=(), probe_first=probe, probe_cache=cache).load()
    elapsed = time.perf_counter() - t0
    assert all(host.statuses[n].status == "loaded" for n in names), [
        s.describe() for s in host.statuses.values()
    ]
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plugins", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = make_site(root, args.plugins)
        sys.path.insert(0, str(root))
        load(names, probe=False, cache=root / "warmup.json")  # imports vfmstudio, numpy, pluggy once
        plain, cold, warm = [], [], []
        for i in range(args.repeat):
            plain.append(load(names, probe=False, cache=root / "unused.json"))
            cold.append(load(names, probe=True, cache=root / f"cold{i}.json"))
            warm.append(load(names, probe=True, cache=root / f"cold{i}.json"))
    ref = statistics.median(plain)
    print(f"{args.plugins} third-party plugins, median of {args.repeat}")
    print(f"  no probe (reference)   {ref * 1000:8.1f} ms")
    for label, times in (("cold probe (first start)", cold), ("warm cache (every start)", warm)):
        med = statistics.median(times)
        print(f"  {label:24s} {med * 1000:8.1f} ms   {med / ref:6.1f}x   (+{(med - ref) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
