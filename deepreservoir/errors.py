"""Exception types and the one error format used everywhere.

Every message names the parameter, the value received and what was expected,
in the form ``The 'sr' parameter of Reservoir must be > 0. Got -1.``
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "DataError",
    "DeepReservoirError",
    "GraphError",
    "NonFiniteError",
    "NotFittedError",
    "ParameterError",
    "TrainingError",
    "format_value",
]


class DeepReservoirError(Exception):
    """Base class of every error raised by deepreservoir."""


class ParameterError(DeepReservoirError, ValueError):
    """A hyperparameter is out of its valid range or of the wrong type."""


class DataError(DeepReservoirError, ValueError):
    """Input or target data has a wrong shape, dtype, or non-finite values."""


class NonFiniteError(DataError):
    """A node produced NaN or inf while the model ran (the message names the node and step)."""


class GraphError(DeepReservoirError, ValueError):
    """A model graph is malformed: a delay-0 cycle, a dimension mismatch, a bad operand."""


class NotFittedError(DeepReservoirError, RuntimeError):
    """A trainable node was used before it was fitted, or fitted without data."""


class ArtifactError(DeepReservoirError, ValueError):
    """A saved model file is missing, truncated, tampered with, or of an unknown format."""


class TrainingError(DeepReservoirError, RuntimeError):
    """Training could not go on (e.g. the loss became NaN)."""


def format_value(value: object, limit: int = 60) -> str:
    """Return a short printable form of ``value`` for error messages."""
    shape = getattr(value, "shape", None)
    ndim = getattr(value, "ndim", 0)
    if shape is not None and isinstance(ndim, int) and ndim > 0:
        dtype = getattr(value, "dtype", "?")
        return f"an array of shape {tuple(shape)} and dtype {dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
