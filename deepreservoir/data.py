"""Turning user data into batched tensors, and results back into the user's format.

Accepted layouts, as numpy arrays or torch tensors:

* ``(T, F)``: one series of T steps and F features (or T samples of a
  feedforward model);
* ``(B, T, F)``: a batch of B series of equal length;
* a list of ``(T_i, F)``: a ragged batch, padded at the end and masked.

Values must be real floating point and finite. They are cast to the model's
dtype and moved to its device; the result comes back in the input's layout and
type (numpy in, numpy out; torch in, torch out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from deepreservoir.errors import DataError

__all__ = ["SequenceBatch", "as_batch", "check_finite"]


@dataclass
class SequenceBatch:
    """Data in executor layout, with what is needed to give it back.

    Attributes
    ----------
    values : Tensor, shape (B, T, F)
        Padded with zeros after each sequence's end when ragged.
    lengths : Tensor of int64, shape (B,), or None
        Valid length of each sequence; ``None`` when all have length T.
    layout : {"single", "batch", "ragged"}
    backend : {"numpy", "torch"}
    """

    values: Tensor
    lengths: Tensor | None
    layout: str
    backend: str

    @property
    def batch_size(self) -> int:
        return int(self.values.shape[0])

    @property
    def steps(self) -> int:
        return int(self.values.shape[1])

    @property
    def features(self) -> int:
        return int(self.values.shape[2])

    def valid_mask(self) -> Tensor:
        """Boolean mask of shape (B, T): True on real (non-padding) steps."""
        time = torch.arange(self.steps, device=self.values.device)
        if self.lengths is None:
            return torch.ones(self.batch_size, self.steps, dtype=torch.bool,
                              device=self.values.device)
        return time[None, :] < self.lengths[:, None].to(self.values.device)

    def restore(self, output: Tensor):
        """Return ``output`` of shape (B, T, O) in this batch's layout and type."""
        output = output.detach()
        if self.layout == "single":
            pieces: Tensor | list[Tensor] = output[0]
        elif self.layout == "batch":
            pieces = output
        elif self.lengths is None:
            pieces = list(output)
        else:
            pieces = [output[b, : int(n)] for b, n in enumerate(self.lengths.tolist())]
        if self.backend == "torch":
            return pieces
        if isinstance(pieces, list):
            return [p.cpu().numpy() for p in pieces]
        return pieces.cpu().numpy()


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)}"
    return f"a {type(value).__name__}"


def _to_tensor(value: object, name: str) -> tuple[Tensor, str]:
    if isinstance(value, Tensor):
        return value, "torch"
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise DataError(f"The '{name}' argument must hold numbers. Got an object array.")
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
            raise DataError(
                f"The '{name}' argument must have a floating-point dtype. Got dtype {value.dtype}."
            )
        return torch.from_numpy(np.ascontiguousarray(value)), "numpy"
    raise DataError(
        f"The '{name}' argument must be a numpy array, a torch tensor, or a list of 2-D "
        f"arrays. Got {_describe(value)}."
    )


def check_finite(values: Tensor, name: str) -> None:
    """Raise :class:`DataError` if ``values`` holds NaN or Inf, saying where."""
    finite = torch.isfinite(values)
    if bool(finite.all()):
        return
    n_nan = int(torch.isnan(values).sum())
    n_inf = int(torch.isinf(values).sum())
    first = tuple(int(i) for i in torch.nonzero(~finite)[0].tolist())
    raise DataError(
        f"The '{name}' argument must be finite. Got {n_nan} NaN and {n_inf} Inf values "
        f"(the first at index {first})."
    )


def _check_float(tensor: Tensor, name: str) -> None:
    if tensor.dtype.is_complex:
        raise DataError(
            f"The '{name}' argument must have a real floating-point dtype. Got {tensor.dtype}."
        )
    if not tensor.dtype.is_floating_point:
        raise DataError(
            f"The '{name}' argument must have a floating-point dtype. Got {tensor.dtype}; "
            f"convert it explicitly, e.g. x.astype(np.float32)."
        )


def as_batch(data: object, *, name: str = "X", dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu", features: int | None = None) -> SequenceBatch:
    """Validate user data and convert it to a :class:`SequenceBatch`.

    Parameters
    ----------
    data : ndarray, Tensor or list of 2-D arrays
        ``(T, F)``, ``(B, T, F)`` or a list of ``(T_i, F)``.
    name : str
        Argument name for error messages.
    dtype : torch.dtype
        Target floating dtype.
    device : torch.device or str
    features : int, optional
        Expected F; a mismatch is an error.

    Raises
    ------
    DataError
        Wrong number of dimensions, empty series, non-float dtype, NaN or Inf,
        mismatched features.
    """
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise DataError(
                f"The '{name}' argument is an empty list; it needs at least one series."
            )
        pieces = [_to_tensor(item, f"{name}[{i}]") for i, item in enumerate(data)]
        backend = pieces[0][1]
        tensors = []
        for i, (tensor, _) in enumerate(pieces):
            if tensor.ndim != 2:
                raise DataError(
                    f"Each series in '{name}' must be a 2-D array (T, F). "
                    f"Got {_describe(tensor)} at position {i}."
                )
            tensors.append(tensor)
        widths = {int(t.shape[1]) for t in tensors}
        if len(widths) > 1:
            raise DataError(
                f"All series in '{name}' must have the same number of features. "
                f"Got {sorted(widths)}."
            )
        lengths = [int(t.shape[0]) for t in tensors]
        for i, n in enumerate(lengths):
            if n == 0:
                raise DataError(f"The series '{name}[{i}]' is empty (T = 0); it needs >= 1 step.")
        for i, tensor in enumerate(tensors):
            _check_float(tensor, f"{name}[{i}]")
        padded = torch.zeros(len(tensors), max(lengths), tensors[0].shape[1], dtype=dtype,
                             device=device)
        for i, tensor in enumerate(tensors):
            padded[i, : lengths[i]] = tensor.to(device=device, dtype=dtype)
        ragged = len(set(lengths)) > 1
        length_tensor = torch.tensor(lengths, dtype=torch.int64) if ragged else None
        batch = SequenceBatch(padded, length_tensor, "ragged", backend)
        originals = tensors
    else:
        tensor, backend = _to_tensor(data, name)
        if tensor.ndim not in (2, 3):
            raise DataError(
                f"The '{name}' argument must be 2-D (T, F), 3-D (B, T, F) or a list of 2-D "
                f"arrays. Got {_describe(tensor)} with {tensor.ndim} dimension(s)."
            )
        if tensor.shape[-2] == 0 or (tensor.ndim == 3 and tensor.shape[0] == 0):
            raise DataError(
                f"The '{name}' argument is empty: shape {tuple(tensor.shape)}; "
                f"a series needs >= 1 step."
            )
        _check_float(tensor, name)
        layout = "single" if tensor.ndim == 2 else "batch"
        originals = [tensor]
        values = tensor.to(device=device, dtype=dtype)
        if values.ndim == 2:
            values = values.unsqueeze(0)
        batch = SequenceBatch(values, None, layout, backend)
    for original in originals:
        check_finite(original, name)
    check_finite(batch.values, f"{name} (after conversion to {dtype})")
    if features is not None and batch.features != features:
        raise DataError(
            f"The '{name}' argument must have {features} features (last axis). "
            f"Got {batch.features}."
        )
    return batch
