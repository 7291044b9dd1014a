# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Data-parallel training: six engines, one optimisation
#
# Data parallelism runs N copies of the network, each on its own share of every batch, and
# adds their gradients before one common update (Goyal et al., *Accurate, Large Minibatch SGD*,
# 2017, [arXiv:1706.02677](https://arxiv.org/abs/1706.02677)). Done exactly, N workers at a
# global batch B compute the same training as one process at batch B: the gradient of the mean
# loss over B examples is the sum of the workers' partial gradients. This tutorial shows that
# identity with the NumPy reference, shows the few lines with which each framework's own
# engine does the summing, and then trains `nin_tiny` with two worker processes and compares
# the result with one process.
#
# `python docs/04_data_parallel.py --out DIR` keeps the two-worker run in `DIR` (default: a new
# temporary folder). Every number below is printed by the code or checked with an `assert`.
# The command-line form of the same training is
# `nin train --backend torch --model nin_tiny --data synthetic:3x16x16 --workers 2 --out DIR`;
# [distributed.md](distributed.md) has the multi-host form and the measured speed.

# %%
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import nin
from nin import reference
from nin.datasets import batches
from nin.distributed import local_shard
from nin.frameworks import source
from nin.loaders import load_dataset
from nin.train import Recipe, fit, get_trainer, load_checkpoint, spec_for

parser = argparse.ArgumentParser(description="data-parallel training of nin_tiny with two workers")
parser.add_argument("--out", help="folder for the two-worker run (default: a new temporary folder)")
args, _ = parser.parse_known_args()  # a notebook kernel passes arguments of its own
out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="nin_dp_"))

available = nin.available_backends()
print("backends installed:", ", ".join(available) or "none")
for name in nin.list_backends():
    if name not in available:
        print(f"note: {name} is not installed; the cells that need it skip it")

# %% [markdown]
# ## Who reads what
#
# Every worker draws the same seeded batches that one process would draw, and keeps its own
# rows: worker r of N takes rows r·B/N to (r+1)·B/N − 1. The global batch must therefore split
# evenly (`nin train` says so before starting any process). The last batch of an epoch can be
# smaller; it is padded to a multiple of N with copies of its last row, which get weight 0.

# %%
spec = spec_for(Recipe(), nin.get_spec("nin_tiny"))
data = load_dataset("synthetic:3x16x16")
x, y = next(batches(data.x_train, data.y_train, 16, seed=0, epoch=0))
shards = [local_shard(x, y, rank, 2) for rank in range(2)]
assert np.array_equal(np.concatenate([s[0] for s in shards]), x)
print("global batch 16 over 2 workers: worker 0 reads rows 0–7, worker 1 rows 8–15")

small = [local_shard(x[:3], y[:3], rank, 2) for rank in range(2)]
real = [int(s[2].sum()) for s in small]
print(f"a last batch of 3 over 2 workers: {real[0]} + {real[1]} rows, one padding row of weight 0")

# %% [markdown]
# ## Why summing the workers' gradients is exact
#
# Each worker computes the gradient of `Σ weight·loss_i / n` over its rows, where n is the
# number of real examples in the global batch. Summed over the workers that is the gradient of
# the batch's mean loss. (PyTorch's DDP averages instead of summing, so its workers multiply by
# N first.) The NumPy reference checks it in float64:

# %%
weights = nin.init_weights(spec, 0, "centered")
_, full = reference.loss_and_grads(spec, weights, x, y)
summed = {name: np.zeros_like(g) for name, g in full.items()}
for rows_x, rows_y, rows_w in shards:
    _, part = reference.loss_and_grads(spec, weights, rows_x, rows_y)
    for name, g in part.items():
        summed[name] += g * rows_w.sum() / len(y)  # a worker's mean-loss gradient, times its share
error = max(float(np.abs(summed[k] - full[k]).max()) for k in full)
assert error < 1e-12
print(f"gradient of the batch vs the shards' weighted sum: max|Δ| = {error:.1e}")

# %% [markdown]
# ## The six engines
#
# The single-process trainers (`frameworks/<name>/train.py`) stay as they are; each
# `frameworks/<name>/distributed.py` adds only what the engine needs. The heart of each, from
# its module docstring:
#
# | framework | engine | who sums the gradients |
# |---|---|---|
# | PyTorch | `torch.distributed` (gloo; NCCL on CUDA) + `DistributedDataParallel` | DDP's hooks during `backward` (an average) |
# | TensorFlow | `tf.distribute.MultiWorkerMirroredStrategy` (`TF_CONFIG`) | the Keras optimizer, through the strategy's all-reduce |
# | JAX | `jax.distributed.initialize` + a `Mesh` over all processes' devices | XLA, inside the sharded `jit` |
# | MXNet | the `dist_sync` kvstore (scheduler, server, workers) | the parameter server |
# | PaddlePaddle | `paddle.distributed.init_parallel_env` (gloo on the CPU) | `paddle.distributed.all_reduce` after `backward` |
# | MLX | `mx.distributed` on its `ring` backend | `nn.average_gradients`, inside the compiled step |
#
# <!-- framework-tabs: distributed -->


# %%
for name in nin.list_backends():
    if name not in available:
        print(f"=== {name}: not installed, skipped\n")
        continue
    print(f"=== {name}: nin/frameworks/{name}/distributed.py")
    print("\n".join(snippet.code for snippet in source.docstring_code(name, "distributed")) + "\n")

# %% [markdown]
# ## Two workers against one process
#
# `nin train --workers 2` starts two worker processes on free local ports, each joining the
# job with `--rank`, `--world-size` and `--coordinator`; only rank 0 writes the metrics and the
# checkpoint. One epoch of `nin_tiny` on the synthetic images at global batch 16 is 32 steps,
# all of them in the warmup, so the learning rate changes at every step. The same recipe in one
# process must give the same weights up to the order of float32 sums.

# %%
backend = "torch" if "torch" in available else (available[0] if available else None)
if backend is None:
    print("note: no framework is installed; skipped the two-worker run")
else:
    run = out_dir / f"{backend}_2workers"
    command = [
        sys.executable, "-m", "nin.cli", "train", "--backend", backend, "--model", "nin_tiny",
        "--data", "synthetic:3x16x16", "--batch-size", "16", "--epochs", "1", "--no-progress", "--out", str(run),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not (run / "checkpoint.npz").exists():
        subprocess.run([*command, "--workers", "2"], check=True, env=env, timeout=600)
    two = load_checkpoint(run / "checkpoint.npz").state
    recipe = Recipe(batch_size=16, epochs=1)
    trainer = get_trainer(backend, spec, recipe)
    fit(trainer, data, recipe, out_dir / f"{backend}_1process", progress=False)
    one = trainer.export_state()
    largest = max(float(np.abs(w).max()) for w in one["weights"].values())
    delta = max(float(np.abs(two["weights"][k] - one["weights"][k]).max()) for k in one["weights"])
    assert delta <= 1e-5 * largest
    print(f"2 workers vs 1 process after one epoch ({backend}): max|Δw| = {delta:.1e}, {delta / largest:.1e} of max|w|")
