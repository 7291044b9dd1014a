"""Data-parallel training with Paddle's own engine: ``paddle.distributed`` (gloo on the CPU),
its process group joined with ``init_parallel_env`` and the gradients summed over the workers
with its ``all_reduce`` after ``backward``.  The optimizer, the momentum export and the
evaluation are the single-process ``Trainer``'s (``train.py``); only the step differs:

    paddle.distributed.init_parallel_env()                       # PADDLE_TRAINER_ID, MASTER_ADDR …
    loss = (cross_entropy(model(x_r), y_r, reduction="none") * w_r).sum() / n
    loss.backward()
    for p in model.parameters(): paddle.distributed.all_reduce(p.grad)

Not ``paddle.DataParallel``, which all-reduces inside ``backward``: when a peer is lost (the
test suite SIGKILLs one), its gloo ``TimeoutException`` is thrown inside the autograd engine
(``GradNodeAccumulation``) and ends the surviving worker with ``std::terminate`` (SIGABRT,
measured 2026-12-06), so the launcher could not tell the lost worker from the survivor.  An
``all_reduce`` called from Python raises a Python exception instead, and the worker stops
with the suite's one-line error.

``initialize`` sets the variables ``python -m paddle.distributed.launch`` would set for each
worker (``PADDLE_TRAINER_ID``, ``PADDLE_TRAINERS_NUM``, ``MASTER_ADDR``, ``MASTER_PORT``, the
backend ``gloo``) from the suite's ``Cluster``, so ``nin train --workers N`` starts the job
with the suite's launcher, as for the other engines.  Rank 0 serves the rendezvous (a TCP store
at the coordinator's address).  GPUs (NCCL) are refused: the Paddle here is a CPU-only build, so
that path could not be run (``initialize`` says so).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn.functional as F

import nin
from nin.distributed import Cluster, DataParallel, DistributedError, evaluate_shard
from nin.train import Recipe, derive_seed, spec_for

from . import stderr_without, train
from .adapter import build, compute_scope, gpu_missing_reason, native_input, native_labels, native_parameters

# The banner ``init_parallel_env`` prints on stderr, listing the flags that differ from their
# defaults (paddle/distributed/parallel.py, ``_print_modified_flags``): Paddle's own settings
# (FLAGS_enable_pir_in_executor), nothing the suite changed
_FLAGS_BANNER = ("======================= Modified FLAGS detected", "FLAGS(name=", "=" * 71)


def initialize(cluster: Cluster) -> None:
    """Join the job at the coordinator (rank 0 serves its TCP store), over gloo on the CPU."""
    if cluster.device == "gpu":
        why = gpu_missing_reason() or "this backend's GPU path (NCCL) has never been run: no CUDA build of Paddle here"
        raise DistributedError(f"the paddle backend trains data-parallel on the CPU only ({why}); use --device cpu")
    # Paddle's signal handlers print a "C++ Traceback" for the SIGTERM with which the launcher
    # stops the other workers when one is lost; the launcher's one-line error says what happened
    paddle.disable_signal_handler()
    paddle.set_device("cpu")
    # the workers' own addresses, where the launcher gives them (NIN_PEERS); Paddle's process
    # group rendezvouses at MASTER_ADDR:MASTER_PORT and only names the endpoints
    peers = cluster.peers or tuple(f"{cluster.host}:{cluster.port}" for _ in range(cluster.world_size))
    os.environ.update(
        PADDLE_TRAINER_ID=str(cluster.rank),
        PADDLE_TRAINERS_NUM=str(cluster.world_size),
        PADDLE_TRAINER_ENDPOINTS=",".join(peers),
        PADDLE_CURRENT_ENDPOINT=peers[cluster.rank],
        MASTER_ADDR=cluster.host,
        MASTER_PORT=str(cluster.port),
        PADDLE_DISTRI_BACKEND="gloo",
    )
    try:
        with stderr_without(_FLAGS_BANNER):
            dist.init_parallel_env()
    except (RuntimeError, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(
            f"rank {cluster.rank} could not join the job at {cluster.coordinator} ({reason}); "
            f"check that every worker was started with the same coordinator"
        ) from None


def shutdown() -> None:
    """Leave the job in step: a barrier, so that rank 0, which serves the store, leaves last."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class Trainer(DataParallel, train.Trainer):
    """The ``nin.train.Trainer`` contract over a job: ``step`` and ``evaluate`` take global
    batches; every worker holds the same weights and momentum."""

    def __init__(self, spec: nin.NiNSpec, recipe: Recipe, cluster: Cluster):
        super().__init__(build(spec_for(recipe, spec), recipe.seed, device=cluster.device, init=recipe.init), recipe)
        self.cluster = cluster
        self._params = list(native_parameters(self.model).values())

    def begin_epoch(self, epoch: int) -> None:
        """Dropout masks differ between workers: seeded from ``(seed, epoch, rank)``."""
        paddle.seed(derive_seed(self.recipe.seed, epoch, self.cluster.rank))

    def sum_over_workers(self, values: Sequence[float]) -> list[float]:
        """``dist.all_reduce`` (a sum) of ``values`` over the workers, in float64."""
        total = paddle.to_tensor(np.asarray(values, np.float64))
        dist.all_reduce(total)
        return total.numpy().tolist()

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One step on this worker's shard of the global batch; the gradient is the sum of every
        worker's ``Σ weight·loss / n``."""
        n = len(y)
        x, y, weight = self.train_shard(x, y)
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, len(inputs))
        weight = paddle.to_tensor(weight)
        self.optimizer.set_lr(lr)
        self.model.train()
        with compute_scope(self.model):
            logits = self.model(inputs)
            losses = F.cross_entropy(logits, labels, reduction="none") * weight
        (losses.sum() / n).backward()
        for param in self._params:
            dist.all_reduce(param.grad)
        self.optimizer.step()
        self.optimizer.clear_grad(set_to_zero=False)
        self.model.eval()
        correct = ((logits.argmax(axis=1) == labels).astype("float32") * weight).sum()
        loss_sum, correct = self.sum_over_workers([float(losses.sum()), float(correct)])
        return loss_sum / n, round(correct)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """This worker's shard in evaluation mode; (summed loss, correct) over all workers."""
        return evaluate_shard(super().evaluate, self.sum_over_workers, x, y, self.cluster)
