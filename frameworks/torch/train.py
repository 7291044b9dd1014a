"""Training NiN with PyTorch's own tools: ``torch.optim.SGD`` on the channels-last model, under
``torch.autocast`` to bfloat16 when the model was built with ``precision="bf16"`` (the
parameters, their gradients and the update stay float32).

``torch.optim.SGD(momentum=μ, weight_decay=λ)`` is the suite's update as written
(frameworks/README.md): ``b ← μ·b + (g + λ·w)``, ``w ← w − lr·b`` — PyTorch's convention is
the contract's, so its momentum buffers export as they are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import nin
from nin.train import Recipe, derive_seed

from .adapter import (
    compute_scope,
    export_state,
    from_native,
    load_state,
    native_input,
    native_labels,
    native_parameters,
    to_native,
)
from .model import NiN


class Trainer:
    """The ``nin.train.Trainer`` contract for a PyTorch ``NiN``."""

    def __init__(self, model: NiN, recipe: Recipe):
        self.model, self.spec, self.recipe = model, model.spec, recipe
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
        self._device = next(model.parameters()).device

    def begin_epoch(self, epoch: int) -> None:
        """Dropout draws from torch's global generator: reseed it per epoch so a resumed run
        draws the same masks as one that never stopped."""
        torch.manual_seed(derive_seed(self.recipe.seed, epoch))

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> tuple[float, int]:
        """One SGD step in training mode: (mean loss before the update, correct predictions)."""
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, len(inputs))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        with compute_scope(self.model):  # float32 parameters; a bf16 model's logits cast back for the loss
            logits = self.model(inputs)
            loss = F.cross_entropy(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.model.eval()
        return loss.item(), int((logits.argmax(dim=1) == labels).sum())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """Evaluation mode: (summed loss, correct predictions)."""
        inputs = native_input(self.model, x)
        labels = native_labels(self.model, y, len(inputs))
        self.model.eval()
        with torch.inference_mode(), compute_scope(self.model):
            logits = self.model(inputs)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        return loss.item(), int((logits.argmax(dim=1) == labels).sum())

    def export_state(self) -> dict[str, nin.weights.Weights]:
        buffers = {}
        for name, param in native_parameters(self.model).items():
            buffer = self.optimizer.state.get(param, {}).get("momentum_buffer")
            buffers[name] = buffer if buffer is not None else torch.zeros_like(param)
        return {"weights": export_state(self.model), "momentum": from_native(self.model, buffers)}

    def load_state(self, state: dict[str, nin.weights.Weights]) -> None:
        load_state(self.model, state["weights"])
        momentum = to_native(self.model, nin.validate_weights(self.spec, state["momentum"]))
        for name, param in native_parameters(self.model).items():
            self.optimizer.state[param]["momentum_buffer"] = torch.empty_like(param).copy_(momentum[name])
