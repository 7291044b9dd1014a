#!/usr/bin/env bash
# A virtual environment that holds only the GPU machine's package set, in CPU builds, to prove on
# a machine without a GPU that benchmarks/gpu_check.sh needs nothing else:
#
#   bash benchmarks/gpu_stack_venv.sh DIR
#   PYTHON=DIR/bin/python bash benchmarks/gpu_check.sh OUTDIR [--require-gpu torch,jax]
#
# The GPU machine has Python 3.12, NumPy 2.5, torch 2.11 (CUDA 13), JAX 0.11.2 (CUDA 13), Flax,
# optax, safetensors, matplotlib, pillow, imageio, tqdm, onnx and onnxruntime, and no TensorFlow,
# MXNet, pytest, hypothesis, mlxtend or imageio-ffmpeg. Here every package comes at the version of
# locks/current.txt (NumPy 2.4, JAX 0.10.2, ...), and torch is pinned to 2.13.0+cpu, the CPU wheel
# this machine's package index holds (built for Python 3.11 only, so PYTHON, default python3,
# must be a 3.11): pip then fails rather than fetch a 7.6 GB CUDA build. The nin package is left
# out on purpose, as on the GPU machine: gpu_check.sh installs it itself (--no-deps, so the
# core's mlxtend and imageio-ffmpeg are not pulled in). Fails if one of the packages the GPU
# machine lacks ends up here. DIR must not exist yet; put it under /tmp or another ignored folder.
set -euo pipefail
dir=${1:?usage: bash benchmarks/gpu_stack_venv.sh DIR (a new folder)}
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
if [[ -e $dir ]]; then
    echo "gpu_stack_venv.sh: $dir exists; give a new folder (or remove it first)" >&2
    exit 2
fi
"$PY" -m venv "$dir"
"$dir/bin/python" -m pip install -q --disable-pip-version-check -c "$root/locks/current.txt" \
    numpy "torch==2.13.0+cpu" jax jaxlib flax optax safetensors matplotlib pillow imageio tqdm onnx onnxruntime
present=()
for module in tensorflow mxnet pytest hypothesis mlxtend imageio_ffmpeg; do
    if "$dir/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)"; then
        present+=("$module")
    fi
done
if ((${#present[@]})); then
    echo "gpu_stack_venv.sh: $dir holds ${present[*]}, which the GPU machine lacks" >&2
    exit 1
fi
"$dir/bin/python" -m pip list --format=freeze --disable-pip-version-check >"$dir/packages.txt"
echo "gpu_stack_venv.sh: $dir holds the GPU machine's package set (CPU builds; list in $dir/packages.txt)"
