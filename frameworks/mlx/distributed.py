"""Data-parallel training with MLX's own engine: ``mx.distributed`` on its ``ring`` backend
(TCP sockets between neighbouring workers, which run on the CPU here), and
``nn.average_gradients`` inside the compiled training step.  The optimizer, the momentum
export and the evaluation are the single-process ``Trainer``'s (``train.py``); only the loss
and the gradients' all-reduce differ:

    group = mx.distributed.init(strict=True, backend="ring")    # MLX_HOSTFILE, MLX_RANK
    loss = (nn.losses.cross_entropy(model(x_r), y_r, reduction="none") * w_r).sum() * N / n
    optimizer.update(model, nn.average_gradients(grads, group=group))

Works under ``mlx.launch --backend ring`` too, which sets ``MLX_HOSTFILE`` (a JSON list of each
rank's ``ip:port`` addresses) and ``MLX_RANK``; ``nin train --workers N`` writes that file
from the workers' own addresses (``Cluster.peers``).  The ring needs no coordinator: each
worker listens on its address and connects to its neighbours, retrying until they are up.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

import nin
from nin.distributed import Cluster, DataParallel, DistributedError, evaluate_shard
from nin.train import Recipe, derive_seed, spec_for

from . import train
from .adapter import build, native_input, native_labels, weighted_loss

_group: dict[str, mx.distributed.Group] = {}


def initialize(cluster: Cluster) -> None:
    """Join the ring of ``cluster.world_size`` workers (``MLX_HOSTFILE`` and ``MLX_RANK`` where
    ``mlx.launch`` set them, else a hostfile of ``cluster.peers``)."""
    if cluster.device != "cpu":
        raise DistributedError(
            "MLX's ring backend trains on the CPU here (MLX's GPUs are Metal's and CUDA's, with their own "
            "backends); use --device cpu"
        )
    if "MLX_HOSTFILE" not in os.environ:
        if len(cluster.peers) != cluster.world_size:
            raise DistributedError(
                f"MLX's ring connects every worker to its neighbours: set MLX_HOSTFILE (a JSON list of each rank's "
                f'["ip:port"]) and MLX_RANK={cluster.rank} on every host, as mlx.launch does, or use --workers N on one host'
            )
        with tempfile.NamedTemporaryFile("w", prefix="nin-mlx-ring-", suffix=".json", delete=False) as f:
            json.dump([[peer] for peer in cluster.peers], f)
        os.environ["MLX_HOSTFILE"], os.environ["MLX_RANK"] = f.name, str(cluster.rank)
    try:
        group = mx.distributed.init(strict=True, backend="ring")
    except RuntimeError as e:
        raise DistributedError(
            f"rank {cluster.rank} could not join MLX's ring ({str(e).splitlines()[0]}); check MLX_HOSTFILE"
        ) from None
    if (group.rank(), group.size()) != (cluster.rank, cluster.world_size):
        raise DistributedError(
            f"MLX's ring made this worker rank {group.rank()} of {group.size()}, but it was started as rank "
            f"{cluster.rank} of {cluster.world_size}; MLX_HOSTFILE and MLX_RANK must agree with --rank and --world-size"
        )
    _group["ring"] = group


def shutdown() -> None:
    """Leave the ring in step: a last all-reduce, so that no worker closes its sockets while a
    neighbour still exchanges with it."""
    group = _group.pop("ring", None)
    if group is not None:
        mx.eval(mx.distributed.all_sum(mx.zeros(1), group=group))


class Trainer(DataParallel, train.Trainer):
    """The ``nin.train.Trainer`` contract over the ring: ``step`` and ``evaluate`` take global
    batches; every worker holds the same weights and momentum."""

    def __init__(self, spec: nin.NiNSpec, recipe: Recipe, cluster: Cluster):
        super().__init__(build(spec_for(recipe, spec), recipe.seed, device=cluster.device, init=recipe.init), recipe)
        self.cluster, self.group = cluster, _group["ring"]
        self._step = train._train_step(
            self.model, self.optimizer, lambda grads: nn.average_gradients(grads, group=self.group)
        )

    def begin_epoch(self, epoch: int) -> None:
        """Dropout masks differ between workers: seeded from ``(seed, epoch, rank)``."""
        mx.random.seed(derive_seed(self.recipe.seed, epoch, self.cluster.rank))

    def sum_over_workers(self, values: Sequence[float]) -> list[float]:
        """``mx.distributed.all_sum`` of ``values`` over the ring, in float32 (MLX's CPU
        all-reduce has no float64)."""
        total = mx.distributed.all_sum(mx.array(np.asarray(values, np.float32)), group=self.group)
        mx.eval(total)
        return np.array(total).astype(float).tolist()

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One step on this worker's shard of the global batch; the gradient is the ring's average."""
        n, world = len(y), self.cluster.world_size
        x, y, weight = self.train_shard(x, y)
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, inputs.shape[0])
        weights = mx.array(weight)
        self.optimizer.learning_rate = lr
        # ``Σ weight·loss_i · N / n``: averaged over the workers, the global batch's mean loss
        _, logits = self._step(inputs, labels, weights, mx.array(world / n, mx.float32))
        local = [weighted_loss(logits, labels, weights, mx.array(1.0)), train.correct_count(logits, labels, weights)]
        mx.eval(*local, self.model.state, self.optimizer.state)
        loss_sum, correct = self.sum_over_workers([value.item() for value in local])
        return loss_sum / n, round(correct)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """This worker's shard in evaluation mode; (summed loss, correct) over all workers."""
        return evaluate_shard(super().evaluate, self.sum_over_workers, x, y, self.cluster)
