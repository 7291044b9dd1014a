"""Data-parallel training with PyTorch's own engine: ``torch.distributed`` (gloo on the CPU,
NCCL on CUDA) and ``DistributedDataParallel``, which averages the gradients during
``backward``.  The optimizer, the momentum export and the evaluation are the single-process
``Trainer``'s (``train.py``); only the step differs:

    model = DistributedDataParallel(model)                      # + init_process_group
    loss = (cross_entropy(model(x_r), y_r, reduction="none") * w_r).sum() * N / n

Works under ``torchrun`` too (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``;
``nin.distributed.cluster_from``).  On CUDA each worker takes GPU ``rank mod
torch.cuda.device_count()``; where the workers on one host outnumber its GPUs, two of them share
a device, which NCCL refuses ("Duplicate GPU detected"), so such a job's collectives go through
gloo, which reduces CUDA tensors by way of host memory (``process_group_backend``).
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import nin
from nin.distributed import Cluster, DataParallel, DistributedError, evaluate_shard
from nin.train import Recipe, derive_seed, spec_for

from . import train
from .adapter import build, compute_scope, native_input, native_labels


def workers_on_this_host(cluster: Cluster, env: dict[str, str] | None = None) -> int:
    """How many of the job's workers run on this host: torchrun's ``LOCAL_WORLD_SIZE``; else
    all of them when the coordinator is a loopback address (every worker reaches it, so all
    are here, as with ``nin train --workers N``); else one, each worker on a GPU of its own."""
    env = os.environ if env is None else env
    if env.get("LOCAL_WORLD_SIZE", "").isdigit():
        return int(env["LOCAL_WORLD_SIZE"])
    try:
        loopback = cluster.host == "localhost" or ipaddress.ip_address(cluster.host).is_loopback
    except ValueError:  # a host name
        loopback = False
    return cluster.world_size if loopback else 1


def process_group_backend(cluster: Cluster, gpus: int, env: dict[str, str] | None = None) -> str:
    """The collectives' engine: gloo on the CPU; NCCL on GPUs, unless this host's workers
    outnumber its ``gpus`` so that two share one (NCCL refuses that): gloo then too."""
    if cluster.device != "gpu" or 0 < gpus < workers_on_this_host(cluster, env):
        return "gloo"
    return "nccl"


def initialize(cluster: Cluster) -> None:
    """Join the process group at the coordinator (a TCP rendezvous), within the timeout."""
    if cluster.device == "gpu":
        if not dist.is_nccl_available():
            raise DistributedError(
                f"--device gpu trains over NCCL, and torch {torch.__version__} has no NCCL built in "
                f"(a CPU-only build, or one without CUDA); install a CUDA build of torch, or use --device cpu (gloo)"
            )
        if torch.cuda.is_available():
            torch.cuda.set_device(cluster.rank % torch.cuda.device_count())
    backend = process_group_backend(cluster, torch.cuda.device_count() if cluster.device == "gpu" else 0)
    # under torchrun the agent already serves the rendezvous store at MASTER_ADDR:MASTER_PORT
    init_method = "env://" if "TORCHELASTIC_RUN_ID" in os.environ else f"tcp://{cluster.coordinator}"
    try:
        dist.init_process_group(
            backend,
            init_method=init_method,
            rank=cluster.rank,
            world_size=cluster.world_size,
            timeout=timedelta(seconds=cluster.timeout_s),
        )
    except (RuntimeError, ValueError) as e:  # DistNetworkError and DistStoreError are RuntimeErrors
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        timed_out = isinstance(e, dist.DistStoreError) or "timed out" in reason.lower() or "timeout" in reason.lower()
        waited = f" within {cluster.timeout_s:.0f} s" if timed_out else ""
        raise DistributedError(
            f"rank {cluster.rank} could not join the job at {cluster.coordinator}{waited} ({reason}); "
            f"check that every worker was started with the same coordinator"
        ) from None


def shutdown() -> None:
    """Leave the job in step.  Every worker passes a barrier and reports to the rendezvous store,
    and rank 0, which serves the store, waits for all of them before it goes: a worker whose last
    gloo exchange meets a peer that has already closed its sockets aborts (SIGABRT), which one
    2-worker run in the test suite did when rank 0 left first."""
    if not dist.is_initialized():
        return
    dist.barrier()
    store = dist.distributed_c10d._get_default_store()
    store.add("nin/left", 1)
    if dist.get_rank() == 0:
        deadline = time.monotonic() + 60
        while store.add("nin/left", 0) < dist.get_world_size() and time.monotonic() < deadline:
            time.sleep(0.02)
    dist.destroy_process_group()


class Trainer(DataParallel, train.Trainer):
    """The ``nin.train.Trainer`` contract over a job: ``step`` and ``evaluate`` take global
    batches; every worker holds the same weights and momentum."""

    def __init__(self, spec: nin.NiNSpec, recipe: Recipe, cluster: Cluster):
        super().__init__(build(spec_for(recipe, spec), recipe.seed, device=cluster.device, init=recipe.init), recipe)
        self.cluster = cluster
        self.ddp = DistributedDataParallel(self.model)

    def begin_epoch(self, epoch: int) -> None:
        """Dropout masks differ between workers: seeded from ``(seed, epoch, rank)``."""
        torch.manual_seed(derive_seed(self.recipe.seed, epoch, self.cluster.rank))

    def sum_over_workers(self, values: Sequence[float]) -> list[float]:
        """``dist.all_reduce`` (a sum) of ``values`` over the workers, in float64."""
        total = torch.tensor(values, dtype=torch.float64, device=self._device)
        dist.all_reduce(total)
        return total.tolist()

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One step on this worker's shard of the global batch; the gradient is DDP's average."""
        n, world = len(y), self.cluster.world_size
        x, y, weight = self.train_shard(x, y)
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, len(inputs))
        weight = torch.from_numpy(weight).to(self._device)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.ddp.train()
        with compute_scope(self.model):
            logits = self.ddp(inputs)
            losses = F.cross_entropy(logits.float(), labels, reduction="none") * weight
        # DDP divides the summed gradients by N: scale by N so they add up to the mean's
        loss = losses.sum() * (world / n)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.ddp.eval()
        correct = ((logits.argmax(dim=1) == labels).float() * weight).sum()
        loss_sum, correct = self.sum_over_workers([losses.sum().item(), correct.item()])
        return loss_sum / n, round(correct)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """This worker's shard in evaluation mode; (summed loss, correct) over all workers."""
        return evaluate_shard(super().evaluate, self.sum_over_workers, x, y, self.cluster)
