"""Explicit readout weights in reservoirpy's layout, checked once for every readout node."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepreservoir.constraints import is_array_like
from deepreservoir.errors import ParameterError, format_value

__all__ = ["agreed_output_dim", "explicit_readout"]


def _explicit(value: Any, label: str, owner: str, ndim: tuple[int, ...]) -> np.ndarray | None:
    if value is None:
        return None
    if not (is_array_like(value) or isinstance(value, (list, tuple))):
        raise ParameterError(
            f"The '{label}' parameter of {owner} must be None or an array. "
            f"Got {format_value(value)}.")
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            value = value.detach().cpu().numpy()
        else:
            value = value.detach().cpu().double().numpy()
    if np.iscomplexobj(value):
        raise ParameterError(
            f"The '{label}' parameter of {owner} must hold real numbers. Got complex values "
            f"({format_value(value)}).")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(
            f"The '{label}' parameter of {owner} must hold real numbers. "
            f"Got {format_value(value)}.") from None
    if array.ndim not in ndim:
        raise ParameterError(
            f"The '{label}' parameter of {owner} must have {' or '.join(map(str, ndim))} "
            f"dimensions. Got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ParameterError(
            f"The '{label}' parameter of {owner} must be finite. Got "
            f"{int(np.isnan(array).sum())} NaN and {int(np.isinf(array).sum())} Inf values.")
    return array


def explicit_readout(Wout: Any, bias: Any, owner: str,
                     input_dim: int | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``Wout`` (input_dim, output_dim) and ``bias`` (output_dim,) as float64 arrays, checked.

    ``bias`` may also be given as (output_dim, 1) or (1, output_dim), as reservoirpy allows.
    """
    Wout = _explicit(Wout, "Wout", owner, (2,))
    bias = _explicit(bias, "bias", owner, (1, 2))
    if bias is not None:
        if bias.ndim == 2 and 1 not in bias.shape:
            raise ParameterError(
                f"The 'bias' parameter of {owner} must have shape (output_dim,). "
                f"Got {bias.shape}.")
        bias = bias.reshape(-1)
    if Wout is not None and input_dim is not None and Wout.shape[0] != input_dim:
        raise ParameterError(
            f"The 'Wout' parameter of {owner} has shape {Wout.shape}, in reservoirpy's "
            f"(input_dim, output_dim) layout, but input_dim={input_dim}.")
    return Wout, bias


def agreed_output_dim(owner: str, **sizes: int | None) -> int | None:
    """The one output size the given sizes agree on (``None`` if none is given)."""
    known = {k: v for k, v in sizes.items() if v is not None}
    if len(set(known.values())) > 1:
        raise ParameterError(
            f"The output sizes given to {owner} disagree: "
            + ", ".join(f"{k} gives {v}" for k, v in known.items()) + ".")
    return next(iter(known.values()), None)
