#!/usr/bin/env bash
# The GPU check: torch and JAX on CUDA against the NumPy oracle, data-parallel parity, and
# timings as a share of the device's peak, through the `nin` command alone (no pytest).
#
#   bash benchmarks/gpu_check.sh OUTDIR [--require-gpu torch,jax]
#   bash benchmarks/gpu_check.sh OUTDIR --prerequisites-only [--require-gpu ...]   only step 1
#   bash benchmarks/gpu_check.sh --plan                                             the steps and their limits
#
# Runs on a GPU machine as it is, without network: Python >= 3.10 with NumPy, torch (CUDA) and/or
# JAX (CUDA) + Flax + optax, and safetensors; TensorFlow, MXNet, pytest, hypothesis, mlxtend and
# imageio-ffmpeg are not needed. PYTHON names the interpreter (default python3). Nothing is
# downloaded: the package is installed with --no-deps --no-build-isolation, or, where that cannot
# be done, imported from a folder of links (the layout pyproject.toml's package-dir makes).
#
# The steps, each under its own time limit (--plan; they add up to under 8 minutes):
#   1. prerequisites (benchmarks/gpu_env.py): the interpreter, NumPy, nin, torch and JAX with the
#      GPU each sees, or why it sees none (CPU-only build, no CUDA plugin, driver); --require-gpu
#      makes a listed framework without a GPU a failure;
#   2. nin conformance --device gpu, float32 at the CPU tolerances and bf16 against the oracle;
#   3. nin compare --device gpu;
#   4. nin bench --device gpu, float32 and bf16: images per second and the share of the device's
#      peak, its GEMM probes at 8192² and 16384²;
#   5. data-parallel parity (benchmarks/dp_parity.py): torch at world sizes 1 and 2 (two workers
#      share one GPU over gloo), JAX at world size 1 (a JAX process takes every GPU it sees: world
#      size 2 needs a GPU per process), each run's weights and momentum against
#      nin.train.sgd_reference per tensor.
#
# Each step's verdict: ok; mismatch (the check ran and found a difference); failed (exit N);
# timed out; or "no GPU visible" where no framework it needs sees a GPU (the step is not run).
# Writes into OUTDIR: env.txt, one log per step (conformance-*.{txt,json}, compare.{txt,json},
# bench-*.{txt,json,md}, parity-*/ and parity-*.txt) and summary.md, the verdicts.
# Exit status: 0 every step that ran passed, on a GPU; 1 a step failed, mismatched or timed out (or
# --require-gpu named a framework without a GPU); 2 bad arguments or a missing prerequisite;
# 3 nothing failed but nothing ran on a GPU either: no framework sees one (a CPU machine).
set -uo pipefail

# step -> time limit in seconds; timeout(1) then allows GRACE more before SIGKILL. Estimates: no
# GPU machine has run this script yet (the first one to do so should replace them with measured
# times and a margin)
declare -A LIMIT=(
    [prerequisites]=55 [conformance-float32]=95 [conformance-bf16]=60 [compare]=25
    [bench-float32]=75 [bench-bf16]=60 [parity-torch]=55 [parity-jax]=30
)
# within prerequisites: installing nin, asking nvidia-smi, benchmarks/gpu_env.py (importing torch and
# JAX took 13-19 s on the loaded 2-core CPU machine)
INSTALL_LIMIT_S=10 SMI_LIMIT_S=3 ENV_LIMIT_S=38
STEPS=(prerequisites conformance-float32 conformance-bf16 compare bench-float32 bench-bf16 parity-torch parity-jax)
GRACE=2
BUDGET=480
GPU_FRAMEWORKS=(torch jax)
# conformance's models: every layer kind of the zoo (hanging ceil-mode windows, the clipped
# average divisor, the 11×11 stride-4 stem, a fully connected head, 3-D, 19 convolutions deep)
declare -A MODELS=(
    [float32]="nin_tiny nin_mnist nin_cifar10 nin_d2l nin_d2l_fc nin_imagenet nin_depth19 nin3d"
    [bf16]="nin_tiny nin_cifar10 nin_d2l nin3d"
)
# data-parallel world sizes and the limit of each training run in them
declare -A WORLD_SIZES=([torch]="1 2" [jax]="1")
RUN_LIMIT_S=22

usage() { sed -n '/^#   bash/s/^# *//p' "$0" >&2; }
bad_usage() {
    echo "gpu_check.sh: $1" >&2
    usage
    exit 2
}

out="" require="" mode=check
while (($#)); do
    case $1 in
        --require-gpu) (($# > 1)) || bad_usage "--require-gpu needs a list, e.g. --require-gpu torch,jax"
            require=$2
            shift ;;
        --require-gpu=*) require=${1#*=} ;;
        --prerequisites-only) mode=prerequisites ;;
        --plan) mode=plan ;;
        -h | --help) usage; exit 0 ;;
        -*) bad_usage "unknown option $1" ;;
        *) [[ -z $out ]] || bad_usage "one OUTDIR only; got $out and $1"
            out=$1 ;;
    esac
    shift
done
IFS=, read -ra required <<<"$require"
for name in "${required[@]}"; do
    [[ -z $name || " ${GPU_FRAMEWORKS[*]} " == *" $name "* ]] \
        || bad_usage "--require-gpu takes a comma-separated list of ${GPU_FRAMEWORKS[*]}; got '$name'"
done
if [[ -n $require && -z ${require//,/} ]]; then
    bad_usage "--require-gpu needs a list, e.g. --require-gpu torch,jax"
fi

total=0
for name in "${STEPS[@]}"; do total=$((total + LIMIT[$name] + GRACE)); done
if [[ $mode == plan ]]; then
    for name in "${STEPS[@]}"; do printf '%-20s %4ss\n' "$name" "${LIMIT[$name]}"; done
    echo "total: ${total}s with ${GRACE}s to stop each step, of a budget of ${BUDGET}s"
    exit $((total < BUDGET ? 0 : 1))
fi
[[ -n $out ]] || bad_usage "OUTDIR is missing"
((total < BUDGET)) || { echo "gpu_check.sh: the step limits add up to ${total}s, over ${BUDGET}s" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd -P)
if ! mkdir -p "$out" 2>/dev/null || [[ ! -w $out ]]; then
    echo "gpu_check.sh: cannot write to OUTDIR $out; give a folder you can create or write to" >&2
    exit 2
fi
out=$(cd "$out" && pwd)
PY=${PYTHON:-python3}
if [[ $PY == */* && -d $(dirname "$PY") ]]; then  # a path given from here stays valid in $root
    PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
fi
cd "$root" || exit 2
# several JAX processes share one GPU (the bench workers, data-parallel ranks): without this each
# would take 75 % of its memory at start
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset NIN_BACKENDS NIN_REQUIRE_BACKENDS PYTEST_ADDOPTS
start=$SECONDS
summary="$out/summary.md"
failures=0 ran=0 skipped=0
{
    echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "| step | verdict | seconds | limit | log |"
    echo "|---|---|---|---|---|"
} >"$summary"

record() {  # record STEP VERDICT SECONDS LOG: one row of summary.md, and the console line
    local limit=${LIMIT[$1]:-}
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "${limit:+${limit}s}" "$4" >>"$summary"
    printf -- '- %s: %s (%ss)\n' "$1" "$2" "$3" >&2
}

step() {  # step NAME EXIT1 LOG COMMAND...: run under the step's limit; EXIT1 is what exit 1 means
    local name=$1 one=$2 log=$3 t0=$SECONDS rc verdict
    shift 3
    echo "== $name (limit ${LIMIT[$name]}s): $*" >&2
    timeout --kill-after="$GRACE" "${LIMIT[$name]}" "$@" >"$log" 2>&1
    rc=$?
    case $rc in
        0) verdict=ok ;;
        1) verdict=$one ;;
        124 | 137) verdict="timed out after ${LIMIT[$name]}s" ;;
        *) verdict="failed (exit $rc)" ;;
    esac
    if [[ $verdict != ok ]]; then  # with the log's last word on it
        failures=$((failures + 1))
        verdict="$verdict: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1 | cut -c 1-200 | tr '|' '/')"
    fi
    ran=$((ran + 1))
    record "$name" "$verdict" "$((SECONDS - t0))" "$(basename "$log")"
    tail -n 3 "$log" | sed 's/^/    /' >&2
}

not_run() {  # not_run NAME WHY: a step that needs a GPU no framework here sees
    skipped=$((skipped + 1))
    record "$1" "no GPU visible ($2): not run" 0 "-"
}

finish() {  # finish STATUS: the closing line of summary.md, then exit
    local line
    case $1 in
        0) line="all $ran steps that ran passed ($skipped not run: no GPU visible)" ;;
        1) line="FAILED: $failures of the $ran steps that ran did not pass ($skipped not run: no GPU visible)" ;;
        2) line="STOPPED: the prerequisites are not met (env.txt)" ;;
        3) line="nothing ran on a GPU: no framework sees one, so this run checked nothing on a GPU (exit 3)" ;;
    esac
    printf '\n%s; %ss in all.\n' "$line" "$((SECONDS - start))" | tee -a "$summary" >&2
    exit "$1"
}

# -- 1. prerequisites ------------------------------------------------------------------------------
t0=$SECONDS
echo "== prerequisites (limit ${LIMIT[prerequisites]}s)" >&2
if ! command -v "$PY" >/dev/null; then
    echo "gpu_check.sh: no Python interpreter '$PY'; set PYTHON to one (>= 3.10)" >&2
    record prerequisites "failed: no interpreter $PY" 0 -
    finish 2
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "gpu_check.sh: $PY is Python $("$PY" -c 'import sys; print(sys.version.split()[0])'); the check needs >= 3.10" >&2
    record prerequisites "failed: Python < 3.10" 0 -
    finish 2
fi
# nin from this checkout: already importable, else installed without network, else from links
nin_here() { (cd / && "$PY" -c "import nin, sys; sys.exit(nin.__file__ != '$root/common/__init__.py')") 2>/dev/null; }
if ! nin_here; then
    timeout --kill-after="$GRACE" "$INSTALL_LIMIT_S" "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1
    if ! nin_here; then
        links=$(mktemp -d)
        trap 'rm -rf "$links"' EXIT
        mkdir "$links/nin"
        ln -s "$root"/common/* "$links/nin/"
        ln -s "$root/frameworks" "$links/nin/frameworks"
        export PYTHONPATH="$links${PYTHONPATH:+:$PYTHONPATH}"
        echo "pip could not install nin here (install.log): importing it from links in $links" | tee -a "$out/install.log" >&2
    fi
fi
{
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "host: $(uname -srm), $(nproc) CPU cores"
    timeout "$SMI_LIMIT_S" nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
        | sed 's/^/nvidia-smi: /'
} >"$out/env.txt"
timeout --kill-after="$GRACE" "$ENV_LIMIT_S" "$PY" benchmarks/gpu_env.py ${require:+--require-gpu "$require"} >>"$out/env.txt" 2>&1
rc=$?
cat "$out/env.txt" >&2
gpus=$(sed -n 's/^gpus: //p' "$out/env.txt")
[[ $gpus == - ]] && gpus=""
case $rc in
    0) verdict="ok (GPU: ${gpus:-none})" ;;
    1) verdict="failed: $(grep -m 1 '^--require-gpu' "$out/env.txt")" ;;
    124 | 137) verdict="timed out" ;;
    *) verdict="failed: $(grep -m 1 '^missing prerequisites' "$out/env.txt" || echo "exit $rc")" ;;
esac
[[ $verdict == ok* ]] || failures=$((failures + 1))
ran=$((ran + 1))
record prerequisites "$verdict" "$((SECONDS - t0))" env.txt
((rc == 0 || rc == 1)) || finish 2
if [[ $mode == prerequisites ]]; then
    ((rc == 1)) && finish 1
    [[ -n $gpus ]] || finish 3
    finish 0
fi

nin=("$PY" -m nin.cli)  # an array, not a function: timeout runs programs only
read -ra gpu_list <<<"$gpus"

# -- 2. conformance: every framework that sees a GPU against the oracle -------------------------------
# with --require-gpu it runs without a GPU too, and exits 1 naming the one that is missing
missing_gpu=mismatch
((rc == 1)) && missing_gpu="failed (exit 1: a required GPU is missing, or a mismatch)"
for precision in float32 bf16; do
    name=conformance-$precision
    read -ra models <<<"${MODELS[$precision]}"
    if [[ -n $gpus || -n $require ]]; then
        step "$name" "$missing_gpu" "$out/$name.txt" "${nin[@]}" conformance --device gpu --precision "$precision" \
            ${require:+--require-gpu "$require"} --models "${models[@]}" --json "$out/$name.json"
    else
        not_run "$name" "torch, jax"
    fi
done

# -- 3. compare ------------------------------------------------------------------------------------
if [[ -n $gpus ]]; then
    step compare mismatch "$out/compare.txt" \
        "${nin[@]}" compare nin_cifar10 --backends "${gpu_list[@]}" --device gpu --json "$out/compare.json"
else
    not_run compare "torch, jax"
fi

# -- 4. bench --------------------------------------------------------------------------------------
for precision in float32 bf16; do
    name=bench-$precision
    if [[ -n $gpus ]]; then
        step "$name" "failed (exit 1)" "$out/$name.txt" "${nin[@]}" bench --backends "${gpu_list[@]}" --models nin_d2l \
            --batch-sizes 128 --device gpu --precision "$precision" --rounds 3 \
            --json "$out/$name.json" --markdown "$out/$name.md"
    else
        not_run "$name" "torch, jax"
    fi
done

# -- 5. data-parallel parity -------------------------------------------------------------------------
for framework in "${GPU_FRAMEWORKS[@]}"; do
    name=parity-$framework
    if [[ " $gpus " == *" $framework "* ]]; then
        read -ra sizes <<<"${WORLD_SIZES[$framework]}"
        step "$name" mismatch "$out/$name.txt" "$PY" benchmarks/dp_parity.py --backend "$framework" --device gpu \
            --world-sizes "${sizes[@]}" --timeout "$RUN_LIMIT_S" --out "$out/$name"
    else
        not_run "$name" "$framework"
    fi
done

((failures)) && finish 1
[[ -n $gpus ]] || finish 3
finish 0
