"""Data-parallel training with TensorFlow's own engine: ``tf.distribute.MultiWorkerMirroredStrategy``
(collective ring all-reduce on the CPU, NCCL on GPUs), configured by ``TF_CONFIG``.  The model
and the single-process ``Trainer``'s optimizer (``train.CoupledSGD``, PyTorch's update) are built
inside ``strategy.scope()``, so their variables are mirrored; each step runs
``strategy.run`` on this worker's shard, and the Keras optimizer all-reduces (sums) the
gradients through the strategy before its update:

    strategy = tf.distribute.MultiWorkerMirroredStrategy()         # TF_CONFIG: workers, index
    with strategy.scope(): model, optimizer = build(...), CoupledSGD(...)
    strategy.run(step, (x_r, y_r, w_r))  # loss = Σ w·loss / n; grads + λ·w / N; optimizer.apply

The strategy must exist before any other TensorFlow operation.  The local launcher writes
``TF_CONFIG`` from the addresses it picked (``NIN_PEERS``); on several hosts set ``TF_CONFIG``
on each (docs/distributed.md).  Weight decay is added as ``λ·w / N`` on each of the ``N``
workers, so the summed gradient carries ``λ·w`` once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

import nin
from nin.distributed import Cluster, DataParallel, DistributedError, end_on_sigterm, local_shard
from nin.train import Recipe, derive_seed, spec_for

from . import train
from .adapter import build, native_input, native_labels

_state: dict = {"strategy": None}


def initialize(cluster: Cluster) -> None:
    """Write ``TF_CONFIG`` (unless set) and create the strategy, which joins the workers."""
    if "TF_CONFIG" not in os.environ:
        if len(cluster.peers) != cluster.world_size:
            raise DistributedError(
                f"TensorFlow workers connect to each other: set TF_CONFIG on every host "
                f'(e.g. {{"cluster": {{"worker": ["host0:port", "host1:port"]}}, "task": {{"type": "worker", '
                f'"index": {cluster.rank}}}}}), or use --workers N on one host'
            )
        config = {"cluster": {"worker": list(cluster.peers)}, "task": {"type": "worker", "index": cluster.rank}}
        os.environ["TF_CONFIG"] = json.dumps(config)
    implementation = tf.distribute.experimental.CommunicationImplementation
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=implementation.NCCL if cluster.device == "gpu" else implementation.RING,
        timeout_seconds=cluster.timeout_s,
    )
    _state["strategy"] = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    end_on_sigterm()  # the strategy's coordination service took SIGTERM over


def shutdown() -> None:
    _state["strategy"] = None


class Trainer(DataParallel, train.Trainer):
    """The ``nin.train.Trainer`` contract over a job: ``step`` and ``evaluate`` take global
    batches; the weights and momentum slots are mirrored variables."""

    def __init__(self, spec: nin.NiNSpec, recipe: Recipe, cluster: Cluster):
        self.strategy, self.cluster = _state["strategy"], cluster
        if self.strategy is None:
            raise DistributedError("call nin.frameworks.tensorflow.distributed.initialize(cluster) first")
        with self.strategy.scope():
            model = build(spec_for(recipe, spec), recipe.seed, device=cluster.device, init=recipe.init)
            super().__init__(model, recipe)
        self._step_fn = tf.function(self._replicated_step)
        self._evaluate_fn = tf.function(self._replicated_evaluate)
        self._sum_fn = tf.function(lambda values: self._reduce([self.strategy.run(tf.identity, args=(values,))])[0])

    def begin_epoch(self, epoch: int) -> None:
        """Dropout masks differ between workers: seeded from ``(seed, epoch, rank)``."""
        for k, generator in enumerate(self._seed_generators):
            generator.state.assign(np.array([derive_seed(self.recipe.seed, epoch, self.cluster.rank, k), 0], np.int64))

    def sum_over_workers(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the workers by the strategy's all-reduce (``strategy.reduce``), in float64."""
        return self._sum_fn(tf.constant(values, tf.float64)).numpy().tolist()

    def _native(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray):
        x = native_input(self.model, x)
        return tf.constant(x), tf.constant(native_labels(self.model, y, len(x))), tf.constant(weight)

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One step on this worker's shard of the global batch; (the global mean loss, correct)."""
        n = len(y)
        shard = self._native(*self.train_shard(x, y))
        loss_sum, correct = self._step_fn(*shard, tf.constant(np.float32(n)), tf.constant(np.float32(lr)))
        return float(loss_sum) / n, round(float(correct))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode on this worker's shard; (summed loss, correct) over all workers."""
        shard = self._native(*local_shard(x, y, self.cluster.rank, self.cluster.world_size))
        loss_sum, correct = self._evaluate_fn(*shard)
        return float(loss_sum), round(float(correct))

    def _replicated_step(self, x, labels, weight, n, lr):
        self.optimizer.learning_rate.assign(lr)
        decay = self.recipe.weight_decay / self.cluster.world_size
        model, optimizer, variables = self.model, self.optimizer, self._variables

        def replica_step(x, labels, weight):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits) * weight
                loss = tf.reduce_sum(losses) / n
            grads = tape.gradient(loss, variables)
            optimizer.apply([g + decay * w.value for g, w in zip(grads, variables, strict=True)], variables)
            return tf.reduce_sum(losses), _correct(logits, labels, weight)

        return self._reduce(self.strategy.run(replica_step, args=(x, labels, weight)))

    def _replicated_evaluate(self, x, labels, weight):
        model = self.model

        def replica_evaluate(x, labels, weight):
            logits = model(x, training=False)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits) * weight
            return tf.reduce_sum(losses), _correct(logits, labels, weight)

        return self._reduce(self.strategy.run(replica_evaluate, args=(x, labels, weight)))

    def _reduce(self, values):
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in values]


def _correct(logits, labels, weight):
    return tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == labels, tf.float32) * weight)
