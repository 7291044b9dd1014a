"""The model: a spec and its canonical weights, which ``nin.reference`` computes with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import nin


@dataclass
class NiN:
    """A NiN as its spec and canonical float32 weights; ``rng`` draws its dropout masks."""

    spec: nin.NiNSpec
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


def nin_block(in_channels: int, block: nin.NiNBlock) -> dict[str, tuple[int, ...]]:
    """The canonical weight shapes of one mlpconv block (``convK.weight``, ``convK.bias``)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for k, conv in enumerate(block.convs):
        shapes[f"conv{k}.weight"] = (conv.out_channels, in_channels, *conv.kernel)
        shapes[f"conv{k}.bias"] = (conv.out_channels,)
        in_channels = conv.out_channels
    return shapes
