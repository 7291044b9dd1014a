"""Deprecated: ``nin.trained`` is now ``nin.pretrained_weights`` (the weights that ship, and
where a command's weights come from).  Kept for one release."""

from __future__ import annotations

from .deprecated import moved
from .pretrained_weights import PRETRAINED, pretrained, pretrained_info, pretrained_models, resolve_weights

moved("nin.trained", "nin.pretrained_weights")
__all__ = ["PRETRAINED", "pretrained", "pretrained_info", "pretrained_models", "resolve_weights"]
