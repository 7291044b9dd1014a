"""Deprecated: ``nin.data`` is now ``nin.loaders`` (the data sets' loaders; ``nin.datasets``
holds the ``Dataset`` type and ``batches``).  Kept for one release."""

from __future__ import annotations

from .deprecated import moved
from .loaders import *  # noqa: F403
from .loaders import __all__  # noqa: F401

moved("nin.data", "nin.loaders")
