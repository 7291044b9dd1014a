"""Data-parallel training with JAX's own engine: ``jax.distributed.initialize`` joins the
processes (CPU collectives through gloo), a one-axis ``jax.sharding.Mesh`` spans every
process's devices, and one ``jax.jit`` step runs on global arrays: the parameters and the
optimizer state replicated, the batch sharded along the mesh.  XLA partitions the step and
inserts the all-reduce of the gradients itself.  The update is ``train.coupled_sgd``:

    mesh = Mesh(jax.devices(), ("data",))                         # + jax.distributed.initialize
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), x_r)
    params, opt_state, ... = jax.jit(step)(params, opt_state, x, ...)  # params: NamedSharding(mesh, P())

Dropout draws one mask for the global batch from a replicated key, ``(seed, epoch)`` split
per step as in one process, so each worker's rows get their own part of it.  On GPUs the
mesh holds the CUDA devices of every process (``device="gpu"``); the code is the same.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import nin
from nin.distributed import Cluster, DataParallel, DistributedError, end_on_sigterm, local_shard
from nin.train import Recipe, spec_for

from . import train
from .adapter import apply_logits, build, from_native
from .model import NiN


def initialize(cluster: Cluster) -> None:
    """Join the job at the coordinator (rank 0 serves it), within the timeout."""
    if cluster.device == "cpu":
        jax.config.update("jax_platforms", "cpu")
        try:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        except (AttributeError, KeyError, ValueError):  # a JAX whose CPU collectives need no choosing
            pass
    try:
        jax.distributed.initialize(
            cluster.coordinator,
            num_processes=cluster.world_size,
            process_id=cluster.rank,
            initialization_timeout=int(cluster.timeout_s),
        )
    except Exception as e:  # XlaRuntimeError / RuntimeError, whose type varies by version
        raise DistributedError(
            f"rank {cluster.rank} could not join the job at {cluster.coordinator} within {cluster.timeout_s:.0f} s "
            f"({str(e).splitlines()[0]}); check that every worker was started with the same coordinator"
        ) from None
    end_on_sigterm()  # jax.distributed.initialize's preemption sync manager took SIGTERM over


def shutdown() -> None:
    jax.distributed.shutdown()


def _local(tree):
    """A host copy of a replicated global tree (this process's replica)."""
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


class Trainer(DataParallel, train.Trainer):
    """The ``nin.train.Trainer`` contract over a job: ``step`` and ``evaluate`` take global
    batches; the parameters and the momentum are global arrays, replicated over the mesh."""

    def __init__(self, spec: nin.NiNSpec, recipe: Recipe, cluster: Cluster):
        super().__init__(build(spec_for(recipe, spec), recipe.seed, device=cluster.device, init=recipe.init), recipe)
        self.cluster = cluster
        self.mesh = Mesh(np.array(jax.devices()), ("data",))
        self._replicated, self._sharded = NamedSharding(self.mesh, P()), NamedSharding(self.mesh, P("data"))
        self._key = jax.random.key(0)
        self._globalize()

    def _global(self, value, sharding: NamedSharding) -> jax.Array:
        return jax.make_array_from_process_local_data(sharding, np.asarray(value))

    def _globalize(self) -> None:
        """Parameters and optimizer state as replicated global arrays."""
        self.model.params = jax.tree.map(lambda a: self._global(a, self._replicated), self.model.params)
        self._opt_state = jax.tree.map(lambda a: self._global(a, self._replicated), self._opt_state)

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        self._key = self.model.key

    def sum_over_workers(self, values: Sequence[float]) -> list[float]:
        """``values`` gathered from every process (``multihost_utils.process_allgather``, a
        jitted all-gather over the mesh) and summed; float32, as JAX computes by default."""
        return multihost_utils.process_allgather(np.asarray(values, np.float32)).sum(axis=0).tolist()

    def _global_batch(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray):
        x = nin.check_input(self.spec, x)
        y = nin.check_labels(self.spec, y, len(x)).astype(np.int32)
        return (self._global(a, self._sharded) for a in (x, y, weight))

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One step on the global batch, sharded over the mesh; (its mean loss, correct)."""
        n = np.float32(len(y))
        x, labels, weight = self._global_batch(*self.train_shard(x, y))
        self._key, dropout_key = jax.random.split(self._key)
        scalars = [self._global(v, self._replicated) for v in (n, np.float32(lr), jax.random.key_data(dropout_key))]
        self.model.params, self._opt_state, loss, correct = _train_step(
            self.model.module,
            self.recipe.momentum,
            self.recipe.weight_decay,
            self.model.params,
            self._opt_state,
            x,
            labels,
            weight,
            *scalars,
        )
        return float(np.asarray(loss.addressable_data(0))), round(float(np.asarray(correct.addressable_data(0))))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode on the sharded batch; (summed loss, correct) over all workers."""
        x, labels, weight = self._global_batch(*local_shard(x, y, self.cluster.rank, self.cluster.world_size))
        loss_sum, correct = _local(_evaluate(self.model.module, self.model.params, x, labels, weight))
        return float(loss_sum), round(float(correct))

    def export_state(self) -> dict[str, nin.weights.Weights]:
        momentum = from_native(self.model, _local(optax.tree_utils.tree_get(self._opt_state, "trace")))
        return {"weights": from_native(self.model, _local(self.model.params)), "momentum": momentum}

    def load_state(self, state: dict[str, nin.weights.Weights]) -> None:
        super().load_state(state)
        self._globalize()


@functools.partial(
    jax.jit, static_argnames=("module", "momentum", "weight_decay"), donate_argnames=("params", "opt_state")
)
def _train_step(module: NiN, momentum: float, weight_decay: float, params, opt_state, x, labels, weight, n, lr, key):
    """``Σ weight·loss / n`` over the global batch, its gradient (XLA all-reduces it over the
    mesh), one ``coupled_sgd`` update; the new state, the mean loss and the correct count."""
    key = jax.random.wrap_key_data(key)

    def loss_fn(params):
        logits = apply_logits(module, params, x, key, train=True)
        return (optax.softmax_cross_entropy_with_integer_labels(logits, labels) * weight).sum() / n, logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = train.coupled_sgd(lr, momentum, weight_decay).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, _correct(logits, labels, weight)


@functools.partial(jax.jit, static_argnames=("module",))
def _evaluate(module: NiN, params, x, labels, weight):
    logits = apply_logits(module, params, x, None, train=False)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels) * weight
    return losses.sum(), _correct(logits, labels, weight)


def _correct(logits: jax.Array, labels: jax.Array, weight: jax.Array) -> jax.Array:
    return ((logits.argmax(axis=1) == labels) * weight).sum()
