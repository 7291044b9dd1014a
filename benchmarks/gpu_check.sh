#!/usr/bin/env bash
# The GPU check: torch and JAX on CUDA against the NumPy oracle, then side-by-side timings.
#
#   bash benchmarks/gpu_check.sh OUTDIR
#
# Runs on a GPU machine as it is, without network: any Python >= 3.10 with NumPy, torch (CUDA) and/or
# JAX (CUDA) + Flax + optax, safetensors and pytest already installed; TensorFlow, MXNet and the optional
# libraries (matplotlib, pillow, imageio-ffmpeg, tqdm) are not needed (the backends report themselves
# unavailable; training runs without bars and curves). Nothing is downloaded: the package is installed with --no-deps --no-build-isolation, or,
# where that cannot be done, imported from a folder of links (the layout pyproject.toml's package-dir makes).
#
# Writes into OUTDIR: env.txt, tests.log + tests.xml (the `gpu`-marked tests: forward, every intermediate,
# gradients and K SGD steps of torch and JAX on CUDA against the oracle, TF32 off), compare.{txt,json}
# (`nin compare --device gpu`), bench-{float32,bf16}.{txt,json,md} (`nin bench --device gpu` on nin_d2l at
# batch 32, 128 and 256), distributed-{torch,jax}.log (data-parallel training, world size 1 on CUDA), summary.md.
# Every step has its own time limit; the whole check is sized to finish within 8 minutes on one H200.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$root"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset NIN_BACKENDS NIN_REQUIRE_BACKENDS PYTEST_ADDOPTS
start=$SECONDS
summary="$out/summary.md"
: >"$summary"

step() {  # step NAME LIMIT_S LOG COMMAND... : run with a time limit, record status and seconds in summary.md
    local name=$1 limit=$2 log=$3 t0=$SECONDS rc
    shift 3
    echo "== $name (limit ${limit}s)" >&2
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status="TIMED OUT after ${limit}s" ;;
        *) status="FAILED (exit $rc)" ;;
    esac
    printf -- '- %s: %s in %ss (log: %s)\n' "$name" "$status" "$((SECONDS - t0))" "$(basename "$log")" | tee -a "$summary" >&2
    tail -n 3 "$log" | sed 's/^/    /' >&2
    return 0
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "host: $(uname -srm), $(nproc) CPU cores"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
    "$PY" - <<'EOF'
import importlib, sys
print("python:", sys.version.split()[0])
for name in ("numpy", "torch", "jax", "jaxlib", "flax", "optax", "onnx", "onnxruntime", "tensorflow", "mxnet"):
    try:
        print(f"{name}: {importlib.import_module(name).__version__}")
    except Exception as e:  # a framework that is absent here is expected; record it
        print(f"{name}: - ({type(e).__name__})")
EOF
} >"$out/env.txt" 2>&1
cat "$out/env.txt" >&2

# install without network; fall back to a folder of links: nin -> common/*, nin/frameworks -> frameworks/
if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1 \
    || ! (cd /tmp && "$PY" -c "import nin.frameworks") >>"$out/install.log" 2>&1; then
    links=$(mktemp -d)
    mkdir "$links/nin"
    ln -s "$root"/common/* "$links/nin/"
    ln -s "$root/frameworks" "$links/nin/frameworks"
    export PYTHONPATH="$links${PYTHONPATH:+:$PYTHONPATH}"
    echo "pip install -e failed (see install.log): importing nin from links in $links" >&2
fi
"$PY" -c "import nin, nin.frameworks as f; print('nin', nin.__version__, 'from', nin.__file__, '| backends here:', f.available_backends())" | tee -a "$out/env.txt" >&2

nin=("$PY" -m nin.cli)  # an array, not a function: `timeout` runs programs only

step "gpu tests (torch, jax on CUDA vs the NumPy oracle)" 240 "$out/tests.log" \
    "$PY" -m pytest -q -p no:cacheprovider -m gpu -rA --junitxml="$out/tests.xml" \
    tests/test_gpu.py tests/test_conformance.py tests/test_train_backends.py tests/test_precision.py tests/test_commands.py

step "nin compare --device gpu" 90 "$out/compare.txt" \
    "${nin[@]}" compare nin_cifar10 --backends torch jax --device gpu --json "$out/compare.json"

for precision in float32 bf16; do
    step "nin bench --device gpu --precision $precision" 120 "$out/bench-$precision.txt" \
        "${nin[@]}" bench --backends torch jax --models nin_d2l --batch-sizes 32 128 256 --device gpu \
        --precision "$precision" --rounds 3 --json "$out/bench-$precision.json" --markdown "$out/bench-$precision.md"
done

# world size 1 through the distributed engine itself (--workers 1 would be the plain trainer)
free_port() { "$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
dp_train() {  # dp_train BACKEND: one epoch of nin_tiny as rank 0 of a one-worker job on the GPU
    "$PY" -m nin.cli train --backend "$1" --model nin_tiny --data synthetic --epochs 1 --device gpu --no-progress \
        --coordinator "127.0.0.1:$(free_port)" --rank 0 --world-size 1 --out "$out/dist-$1"
}
export -f free_port dp_train  # `timeout` runs programs: the functions reach it through bash -c
export PY out
step "data-parallel engine, world size 1 on CUDA: torch (DDP over NCCL)" 90 "$out/distributed-torch.log" bash -c "dp_train torch"
step "data-parallel engine, world size 1 on CUDA: jax (jax.distributed)" 90 "$out/distributed-jax.log" bash -c "dp_train jax"

printf -- '- total: %ss\n' "$((SECONDS - start))" | tee -a "$summary" >&2
grep -q "FAILED\|TIMED OUT" "$summary" && exit 1
exit 0
