"""The TensorFlow/Keras 3 backend: ``NiN`` and ``nin_block`` (channels-last Keras code), the
adapter functions, which convert layouts, and ``Trainer`` of the backend contract
(``nin.frameworks.CONTRACT``, frameworks/README.md)."""

from __future__ import annotations

import os
from typing import Any

from nin.frameworks import CONTRACT, contract_attribute

__all__ = list(CONTRACT)

# A host setting (frameworks/README.md, "Host settings"), made here because TensorFlow reads it
# when it loads its C++ runtime: this package is imported before any of its modules imports
# TensorFlow.  It silences TensorFlow's C++ log lines below FATAL; a value already set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def __getattr__(name: str) -> Any:
    return contract_attribute(__name__, name)


def __dir__() -> list[str]:
    return __all__
