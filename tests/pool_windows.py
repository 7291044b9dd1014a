"""Which pooling rules a pool meets at an input size, read off the oracle's own window
enumeration (``nin.reference.window_starts``, which shares nothing with ``nin.shapes``).

A helper of the tests (tests/test_pool_geometry.py, tests/test_conformance.py,
tests/test_random_specs.py), not a test module."""

from __future__ import annotations

import nin
from nin import reference


def pool_features(size: tuple[int, ...], pool: nin.MaxPool | nin.AvgPool) -> set[str]:
    """The rules ``pool`` meets on an input of spatial ``size``: its kind, rank and mode, and
    per kind: "padded" (p > 0), "past padding" (a ceil-mode window hanging past input +
    padding; for average pooling, a clipped divisor), "dropped" (ceil mode, where the window
    that would reach the end starts in the right padding and is left out), "wider than input"
    (k > n), "stride > 1", "gaps" (stride > kernel); and "anisotropic" where kernel, stride
    or padding differ between dimensions."""
    kind = "max" if isinstance(pool, nin.MaxPool) else "avg"
    found = {kind, f"{len(size)}-D", "ceil" if pool.ceil_mode else "floor"}
    for n, k, s, p in zip(size, pool.kernel, pool.stride, pool.padding, strict=True):
        last = reference.window_starts(n, k, s, p, pool.ceil_mode)[-1]
        rules = {
            "padded": p > 0,
            "past padding": last + k > n + p,
            "dropped": pool.ceil_mode and last + k < n + p,
            "wider than input": k > n,
            "stride > 1": s > 1,
            "gaps": s > k,
        }
        found |= {f"{kind} {rule}" for rule, met in rules.items() if met}
    if any(len(set(values)) > 1 for values in (pool.kernel, pool.stride, pool.padding)):
        found.add("anisotropic")
    return found


def spec_pool_features(spec: nin.NiNSpec, acts: dict) -> set[str]:
    """``pool_features`` of every pool of ``spec``, each at its own input: the output of the
    layer before it in the oracle's activations ``acts`` (or the spec's input)."""
    found: set[str] = set()
    size = spec.input_size
    layers = dict(spec.named_layers())
    for name, value in acts.items():
        layer = layers.get(name)
        if isinstance(layer, nin.MaxPool | nin.AvgPool):
            found |= pool_features(size, layer)
        if value.ndim > 2:
            size = tuple(value.shape[2:])
    return found
