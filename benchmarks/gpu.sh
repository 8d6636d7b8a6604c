#!/usr/bin/env bash
# GPU benchmark (issue 9, item 6): images/s and MFU of DINOv2-S/B/L@448 and CLIP-B/32, L/14@224,
# fp32 and bf16 with SDPA, batch 1 and 32, our extraction paths vs the raw HF forward.
# Finishes within five minutes on one H100/H200 (benchmarks/gpu_bench.py --budget-s bounds it).
#
#   benchmarks/gpu.sh                       # on the GPU machine, from the repository root
#   benchmarks/gpu.sh --device cpu --quick  # smoke test anywhere
#
# Needs python3 with torch (CUDA build) and transformers 5; vfmstudio itself is used from this checkout
# (PYTHONPATH=.:plugins), never installed. numpy, Pillow and pluggy are checked and, when missing,
# installed with pip --user if pip can reach an index; otherwise point GPU_BENCH_DEPS at a folder that
# holds them (e.g. made with `pip install --target DIR pillow pluggy` elsewhere, same Python version).
# Results: printed, and written as JSON to $OUT/gpu_bench.json when $OUT is set (else benchmarks/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH=".:plugins${GPU_BENCH_DEPS:+:$GPU_BENCH_DEPS}${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1 PYTHONUNBUFFERED=1

missing=$($PY - <<'PY'
import importlib.util
need = {"torch": "torch", "transformers": "transformers", "numpy": "numpy", "PIL": "pillow", "pluggy": "pluggy"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PY
)
if [ -n "$missing" ]; then
  case " $missing " in *" torch "*|*" transformers "*)
    echo "gpu.sh: $PY lacks torch/transformers ($missing); use a Python that has a CUDA torch" >&2; exit 2;;
  esac
  echo "gpu.sh: installing $missing" >&2
  $PY -m pip install --user --quiet --retries 0 --timeout 10 $missing || {
    echo "gpu.sh: cannot install $missing here; set GPU_BENCH_DEPS to a folder that has them" >&2; exit 2; }
fi

$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv || true
out_dir=${OUT:-benchmarks}
exec timeout 290 $PY benchmarks/gpu_bench.py --out "$out_dir/gpu_bench.json" "$@"
