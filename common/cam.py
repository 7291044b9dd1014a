"""Class activation maps of a Network in Network: the maths, on NumPy arrays.

Source: Zhou, Khosla, Lapedriza, Oliva, Torralba, "Learning Deep Features for Discriminative
Localization", CVPR 2016, arXiv:1512.04150.  A NiN needs no extra weights for them: its last
mlpconv block outputs one map per class and global average pooling turns each map into that
class's score (the paper's "confidence maps", Lin et al. 2014 §3.2), so the map *is* the class
activation map and its mean is the logit.  A spec that ends in a fully connected head
(``nin_d2l_fc``) has no such maps.

Capture goes through a backend's ``intermediates`` (or the NumPy oracle for ``"numpy"``); a
framework is never imported here.  ``nin.drawing`` draws what this module computes and
``nin.visualize`` does both for the ``nin visualize`` command.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .loaders import resize
from .spec import GlobalAvgPool, NiNBlock, NiNSpec
from .weights import Weights

# -- capture ---------------------------------------------------------------------------------


def capture(backend: str, spec: NiNSpec, weights: Weights, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits ``(N, K)`` and every layer's output ``{name: NCHW / NCDHW array}``, float32.

    ``backend`` is ``"numpy"`` (the NumPy oracle, no framework) or a backend name
    (``nin.list_backends()``), which builds the model and loads ``weights`` into it."""
    if backend == "numpy":
        from .reference import forward

        logits, acts = forward(spec, weights, x)
    else:
        from . import get_backend

        adapter = get_backend(backend)
        model = adapter.build(spec)
        adapter.load_state(model, weights)
        logits, acts = adapter.forward(model, x), adapter.intermediates(model, x)
    return np.asarray(logits, np.float32), {name: np.asarray(a, np.float32) for name, a in acts.items()}


def block_outputs(spec: NiNSpec) -> dict[str, str]:
    """``{block name: the layer that is its output}``, e.g. ``{"block0": "block0.conv2"}``."""
    return {
        name: f"{name}.conv{len(layer.convs) - 1}" for name, layer in spec.named_layers() if isinstance(layer, NiNBlock)
    }


# -- class activation maps -------------------------------------------------------------------


def class_map_problem(spec: NiNSpec) -> str | None:
    """Why ``spec`` has no class activation maps, or None when it has them."""
    if isinstance(spec.layers[-1], GlobalAvgPool) and isinstance(spec.layers[-2], NiNBlock):
        return None
    if not isinstance(spec.layers[-1], GlobalAvgPool):
        return (
            f"{spec.name} ends in a fully connected head, which mixes every position of every channel "
            f"into each class score, so it has no per-class map to show; class activation maps need "
            f"NiN's classifier block followed by global average pooling (e.g. nin_d2l)"
        )
    return (
        f"{spec.name} does not pool its last NiN block straight into class scores (a pooling or dropout "
        f"layer sits between them), so that block's maps are not class activation maps"
    )


def class_maps(spec: NiNSpec, acts: dict[str, np.ndarray]) -> np.ndarray:
    """The class activation maps ``(N, K, *spatial)``: the last block's output, whose spatial
    mean is the logits.  Raises ``SpecError`` for specs that have none (``class_map_problem``)."""
    problem = class_map_problem(spec)
    if problem:
        raise SpecError(problem)
    return acts[list(block_outputs(spec).values())[-1]]


@dataclass(frozen=True)
class ClassActivation:
    """One example's class activation maps at the input's size."""

    maps: np.ndarray  # (K, *input spatial), enlarged bilinearly / trilinearly
    scores: np.ndarray  # (K,) logits: the mean of each map before upsampling
    probabilities: np.ndarray  # (K,) softmax of the scores

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.scores))

    @property
    def peak(self) -> float:
        """The top of the shared colour scale: the largest value of any class's map (1 when
        every map is 0)."""
        return float(self.maps.max()) or 1.0

    def heat(self, k: int) -> np.ndarray:
        """Class ``k``'s map on the shared scale, in [0, 1]."""
        return np.clip(self.maps[k] / self.peak, 0, 1)

    def ranked(self, limit: int | None = None) -> list[int]:
        """Class indices, highest score first."""
        return [int(k) for k in np.argsort(-self.scores, kind="stable")[:limit]]


def class_activation(spec: NiNSpec, x: np.ndarray, logits: np.ndarray, acts: dict[str, np.ndarray]) -> ClassActivation:
    """The first example's class maps, enlarged to its input size by ``nin.loaders.resize``
    (bilinear / trilinear, pixel centres at i + 0.5, edges clamped)."""
    maps = class_maps(spec, acts)[0]
    scores = np.asarray(logits[0], dtype=np.float64)
    p = np.exp(scores - scores.max())
    return ClassActivation(resize(maps[None], x.shape[2:])[0], scores, p / p.sum())
