"""Data-parallel training with MXNet's own engine: the ``dist_sync`` kvstore (ps-lite), with a
scheduler, one server and N workers found through the ``DMLC_*`` variables.  Gluon's
``Trainer`` pushes every gradient to the server, which sums them over the workers, and pulls
the sum back; each worker then applies the single-process ``CoupledSGD`` (``train.py``) to it
(``update_on_kvstore=False``), so the momentum stays where ``export_state`` reads it:

    kv = mx.kv.create("dist_sync")                                  # + DMLC_ROLE=worker …
    trainer = gluon.Trainer(params, CoupledSGD(...), kvstore=kv, update_on_kvstore=False)
    loss = (cross_entropy(model(x_r), y_r) * w_r).sum() / n; loss.backward(); trainer.step(1)

Rank 0's process starts the scheduler (at the coordinator's address) and the server as its own
children and stops them when it leaves.  ps-lite numbers the workers in the order they
register; shards follow ``cluster.rank``, so the order does not matter.  On several hosts
ps-lite may need ``DMLC_INTERFACE`` or ``DMLC_NODE_HOST`` (docs/distributed.md).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from collections.abc import Sequence

import mxnet as mx
import numpy as np
from mxnet import gluon

import nin
from nin.distributed import Cluster, DataParallel, DistributedError, evaluate_shard
from nin.train import Recipe, derive_seed, spec_for

from . import train
from .adapter import build, native_parameters

# MXNet 1.9 imports on NumPy ≥ 1.24 only with ``numpy.bool`` back (frameworks/README.md)
_HELPER = "import numpy; numpy.bool = bool; import mxnet"
_state: dict = {"kv": None, "helpers": []}


def initialize(cluster: Cluster) -> None:
    """Set the ``DMLC_*`` variables, start the scheduler and the server on rank 0, and join
    the ``dist_sync`` kvstore."""
    os.environ.update(
        DMLC_PS_ROOT_URI=cluster.host,
        DMLC_PS_ROOT_PORT=str(cluster.port),
        DMLC_NUM_SERVER="1",
        DMLC_NUM_WORKER=str(cluster.world_size),
    )
    if cluster.rank == 0:
        for role in ("scheduler", "server"):
            env = dict(os.environ, DMLC_ROLE=role)
            _state["helpers"].append(subprocess.Popen([sys.executable, "-c", _HELPER], env=env))
    os.environ["DMLC_ROLE"] = "worker"
    try:
        _state["kv"] = mx.kv.create("dist_sync")
    except mx.base.MXNetError as e:
        raise DistributedError(
            f"rank {cluster.rank} could not join the dist_sync kvstore at {cluster.coordinator} ({str(e).splitlines()[0]})"
        ) from None


def shutdown(timeout_s: float = 30.0) -> None:
    """Leave the kvstore (its destructor is a barrier of all workers: every other reference to
    it must be gone), then wait for rank 0's helpers to end."""
    _state["kv"] = None
    gc.collect()
    deadline = time.monotonic() + timeout_s
    for helper in _state["helpers"]:
        try:
            helper.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            helper.kill()
    _state["helpers"].clear()


class Trainer(DataParallel, train.Trainer):
    """The ``nin.train.Trainer`` contract over a job: ``step`` and ``evaluate`` take global
    batches; every worker holds the same weights and momentum."""

    def __init__(self, spec: nin.NiNSpec, recipe: Recipe, cluster: Cluster):
        super().__init__(build(spec_for(recipe, spec), recipe.seed, device=cluster.device, init=recipe.init), recipe)
        self.cluster, self._kv = cluster, _state["kv"]
        params = list(native_parameters(self.model).values())
        # the single-process Trainer's optimizer and buffers; the gradients summed by the kvstore
        self._trainer = gluon.Trainer(params, self.optimizer, kvstore=self._kv, update_on_kvstore=False)
        # Gluon joins the kvstore lazily, inside the first step(): its broadcast of the initial
        # weights (a pull into them) then races with that step's gradient push and pull on the
        # same keys, and a late worker could pull the summed gradient as its weights (seen:
        # 2 of 6 runs under load ended 0.09–0.4 away).  Join now, and wait for the pulls.
        self._trainer._init_kvstore()
        self._trainer._init_params()
        mx.nd.waitall()
        # sum_over_workers' kvstore keys, one per vector length, numbered after the parameters'
        self._first_sum_key, self._sum_keys = len(params), {}

    def begin_epoch(self, epoch: int) -> None:
        """Dropout masks differ between workers: seeded from ``(seed, epoch, rank)``."""
        mx.random.seed(derive_seed(self.recipe.seed, epoch, self.cluster.rank), ctx=self._ctx)

    def sum_over_workers(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the workers: pushed to the server, which adds the workers'
        pushes, and pulled back.  A length seen for the first time gets its own key (its
        ``init`` is a barrier of all workers, who all call this at the same point)."""
        size = len(values)
        if size not in self._sum_keys:
            self._sum_keys[size] = self._first_sum_key + len(self._sum_keys)
            self._kv.init(self._sum_keys[size], mx.nd.zeros(size))
        self._kv.push(self._sum_keys[size], mx.nd.array(values))
        total = mx.nd.zeros(size)
        self._kv.pull(self._sum_keys[size], out=total)
        return total.asnumpy().tolist()

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One step on this worker's shard of the global batch; the gradient is the sum of
        every worker's ``Σ weight·loss / n``."""
        n = len(y)
        x, y, weight = self.train_shard(x, y)
        x, y, target = self._batch(x, y)
        weight = mx.nd.array(weight, ctx=self._ctx)
        with mx.autograd.record(train_mode=True):
            logits = self.model(x)
            losses = self._loss(logits, target) * weight
            loss = losses.sum() / n
        loss.backward()
        self._trainer.set_learning_rate(lr)
        self._trainer.step(1)
        right = float((weight.asnumpy() * (logits.argmax(axis=1).asnumpy().astype(np.int64) == y)).sum())
        loss_sum, correct = self.sum_over_workers([float(losses.sum().asscalar()), right])
        return loss_sum / n, round(correct)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """This worker's shard in evaluation mode; (summed loss, correct) over all workers."""
        return evaluate_shard(super().evaluate, self.sum_over_workers, x, y, self.cluster)
