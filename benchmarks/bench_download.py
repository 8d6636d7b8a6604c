"""Download throughput: huggingface_hub's ``hf_hub_download`` (the reference) against our engine
(``vfmstudio.ml.download``, ADR 0130) for the same file from the stand-in hub on 127.0.0.1, in one
process, each into a fresh cache; prints MB/s for both and the ratio.

Our engine reads the body in socket-sized chunks and checks the watchdog, the rate meter and the
progress throttle on each; it also verifies the sha256 (huggingface_hub does not). The point is to
show that the deadlines and prompt cancel cost little next to the transfer.

    python benchmarks/bench_download.py [--mb 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the weights file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    os.environ.pop("HF_HUB_OFFLINE", None)
    import huggingface_hub
    from huggingface_hub import constants

    from vfmstudio.ml.download import Deadlines, SnapshotDownload
    from vfmstudio.testing.fake_hub import FakeHub, random_checkpoint

    constants.HF_HUB_OFFLINE = False
    files = random_checkpoint(n_floats=16)
    files["model.safetensors"] = random.Random(0).randbytes(args.mb << 20)  # bytes are bytes to a download
    files = {k: v for k, v in files.items() if k in ("config.json", "model.safetensors")}
    size = len(files["model.safetensors"])
    repo_id = "bench/weights"
    times: dict[str, list[float]] = {"huggingface_hub": [], "vfmstudio": []}
    with FakeHub() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.add_repo(repo_id, files)
        for i in range(args.repeat):
            for name in ("huggingface_hub", "vfmstudio"):
                cache = Path(tmp) / f"{name}-{i}"
                t0 = time.perf_counter()
                if name == "huggingface_hub":
                    huggingface_hub.hf_hub_download(
                        repo_id, "model.safetensors", cache_dir=str(cache), endpoint=fake.url, tqdm_class=None
                    )
                else:
                    SnapshotDownload(
                        repo_id,
                        cache_dir=cache,
                        endpoint=fake.url,
                        token="",
                        deadlines=Deadlines(),
                        only=("model.safetensors",),
                    ).run()
                times[name].append(time.perf_counter() - t0)
                shutil.rmtree(cache)
    ref, ours = (statistics.median(times[k]) for k in ("huggingface_hub", "vfmstudio"))
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
        f"{size >> 20} MiB over 127.0.0.1, median of {args.repeat}"
    )
    print(f"huggingface_hub.hf_hub_download: {ref:.2f} s ({size / ref / 1e6:.0f} MB/s)")
    print(f"vfmstudio SnapshotDownload:      {ours:.2f} s ({size / ours / 1e6:.0f} MB/s, sha256 checked)")
    print(f"ratio ours/reference: {ours / ref:.2f}x time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
