"""The errors the suite raises on purpose.  Each message says what was given, what was
expected, and what to do, so a user never has to read a framework traceback."""

from __future__ import annotations


class NinError(Exception):
    """Base class of every error raised by nin-suite on purpose."""


class SpecError(NinError, ValueError):
    """An impossible network: non-positive sizes, a kernel larger than its padded input..."""


class InputError(NinError, ValueError):
    """An input array that does not fit the spec (rank, channels, size, dtype, NaN)."""


class WeightsError(NinError, ValueError):
    """Canonical weights that do not match the spec: missing, unexpected or mis-shaped."""


class UnknownNameError(NinError, ValueError):
    """An unknown model, backend or option; the message lists the known ones."""


class BackendUnavailable(NinError, ImportError):
    """A backend whose framework is not installed; the message names the extra to install."""


class DataError(NinError, ValueError):
    """A dataset file that is missing, truncated or malformed."""


class MissingExtra(NinError, ImportError):
    """An optional library (pictures, video, progress) that is not installed; the message names
    the extra to install."""


class OutputError(NinError, ValueError):
    """An output path a command cannot write: a missing folder, a file where a folder must be,
    a folder without write permission."""
