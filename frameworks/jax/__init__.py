"""The JAX/Flax backend: ``NiN`` and ``nin_block`` in ``flax.linen`` (channels-last), the
adapter functions (whose model is an ``adapter.FlaxNiN``) and ``Trainer`` of the backend
contract (``nin.frameworks.CONTRACT``, frameworks/README.md).  Imported only when asked for:
``nin.get_backend("jax")``."""

from __future__ import annotations

from typing import Any

from nin.frameworks import CONTRACT, contract_attribute

__all__ = list(CONTRACT)


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
