"""The one data normaliser: user arrays in, batched tensors out, and back.

Every path (``run``, ``step``, closed-form ``fit``, gradient ``fit``, ``predict``,
``evaluate`` and the analysis functions) reads data through this module, so the
same arrays mean the same thing everywhere.

Inputs, as numpy arrays or torch tensors:

* ``(T, F)``: one series of T steps and F features. For a model without state
  the T steps are T independent samples: the same array means the same thing;
* ``(B, T, F)``: a batch of B series of equal length;
* a list of ``(T_i, F)``: a ragged batch, padded at the end and masked;
* ``(F,)`` or ``(B, F)``: one time step, for :meth:`~deepreservoir.Model.step`.

Values must be real and finite; they are cast to the model's dtype and moved to
its device, and results come back in the input's layout and type (numpy in,
numpy out; torch in, torch out).

Targets (:func:`as_targets`) are read against the inputs' layout:

===========================  ==================================  =====================
inputs                       per-step targets                    per-sequence targets
===========================  ==================================  =====================
``(T, F)``                   ``(T, O)``, or labels ``(T,)``      —
``(B, T, F)``                ``(B, T, O)``, or labels ``(B, T)``  ``(B, O)``, labels ``(B,)``
list of ``(T_i, F)``         list of ``(T_i, O)`` / ``(T_i,)``   ``(B, O)``, labels ``(B,)``
===========================  ==================================  =====================

A per-sequence target is compared with the output at each sequence's last
valid step. That needs a model whose output there can depend on the earlier
steps (:meth:`~deepreservoir.graph.Graph.has_time_structure`): for a model
without time structure (no stateful node, delay or feedback), per-sequence
targets for series longer than one step are refused, since the other steps
would be ignored. Real-valued targets may hold NaN: a step (or sequence) with
any NaN target is left out of training, as reservoirpy does; ±Inf is an error.
Targets must be real numbers or integer labels: text, object and complex arrays
are refused, never cast.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from deepreservoir.errors import DataError

__all__ = ["SequenceBatch", "Targets", "as_batch", "as_step", "as_targets", "check_finite"]


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
        """B, the number of series."""
        return int(self.values.shape[0])

    @property
    def steps(self) -> int:
        """T, the padded length."""
        return int(self.values.shape[1])

    @property
    def features(self) -> int:
        """F, the number of features."""
        return int(self.values.shape[2])

    def valid_mask(self) -> Tensor:
        """Boolean mask of shape (B, T): True on real (non-padding) steps."""
        if self.lengths is None:
            return torch.ones(self.batch_size, self.steps, dtype=torch.bool,
                              device=self.values.device)
        time = torch.arange(self.steps, device=self.values.device)
        return time[None, :] < self.lengths[:, None].to(self.values.device)

    def last_index(self) -> Tensor:
        """Index of each sequence's last valid step, shape (B,)."""
        if self.lengths is None:
            return torch.full((self.batch_size,), self.steps - 1, dtype=torch.int64)
        return self.lengths - 1

    def lengths_text(self) -> str:
        """The series lengths, for messages."""
        return str(self.steps) if self.lengths is None else str(self.lengths.tolist())

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
        return _to_backend(pieces, self.backend)


def _to_backend(pieces, backend: str):
    if backend == "torch":
        return pieces
    if isinstance(pieces, list):
        return [p.cpu().numpy() for p in pieces]
    return pieces.cpu().numpy()


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)}"
    return f"a {type(value).__name__}"


def _from_numpy(value: np.ndarray) -> Tensor:
    """A tensor of a numeric array: native byte order; long double read as 64-bit (the
    values are cast to the model's dtype, at most float64, anyway)."""
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    widest = 16 if value.dtype.kind == "c" else 8
    if value.dtype.kind in "fc" and value.dtype.itemsize > widest:
        value = value.astype(np.complex128 if value.dtype.kind == "c" else np.float64)
    return torch.from_numpy(np.ascontiguousarray(value))


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
        return _from_numpy(value), "numpy"
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


def _ragged(data: list | tuple, name: str, dtype, device) -> tuple[SequenceBatch, list]:
    if len(data) == 0:
        raise DataError(f"The '{name}' argument is an empty list; it needs at least one series.")
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
            f"All series in '{name}' must have the same number of features. Got {sorted(widths)}."
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
    return SequenceBatch(padded, length_tensor, "ragged", backend), tensors


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
        batch, originals = _ragged(data, name, dtype, device)
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


def as_step(x: object, *, name: str = "x", dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu",
            features: int | None = None) -> tuple[Tensor, bool, str]:
    """Validate one time step: ``(F,)`` or ``(B, F)``.

    Returns
    -------
    values : Tensor, shape (B, F)
    single : bool
        Whether the input was 1-D (give the result back as ``(O,)``).
    backend : {"numpy", "torch"}
    """
    if isinstance(x, (list, tuple)) or getattr(x, "ndim", None) not in (1, 2):
        got = (f"{x.ndim} dimension(s)" if isinstance(getattr(x, "ndim", None), int)
               else _describe(x))
        raise DataError(
            f"The '{name}' argument of step must be a 1-D (F,) or 2-D (B, F) array. Got {got}."
        )
    single = x.ndim == 1
    largest = float(np.abs(x).max(initial=0.0)) if (
        isinstance(x, np.ndarray) and x.dtype.kind == "f") else math.nan
    if math.isfinite(largest):
        # The common case, checked by one numpy reduction (NaN or inf makes the
        # largest magnitude non-finite): microseconds. Narrowing (float64 data, a
        # float32 model) overflows only beyond the model dtype's largest value.
        tensor, backend = torch.from_numpy(x[None] if single else x), "numpy"
        finite = largest <= torch.finfo(dtype).max
        same = tensor.dtype == dtype and str(device) == "cpu"
    else:
        tensor, backend = _to_tensor(x, name)
        _check_float(tensor, name)
        finite = same = False
        if single:
            tensor = tensor.unsqueeze(0)
    values = tensor if same else tensor.to(device=device, dtype=dtype)
    if not finite and not bool(torch.isfinite(values).all()):
        check_finite(tensor, name)
        check_finite(values, f"{name} (after conversion to {dtype})")
    if features is not None and values.shape[-1] != features:
        raise DataError(
            f"The '{name}' argument of step must have {features} features (last axis). "
            f"Got {values.shape[-1]}."
        )
    return values, single, backend


# ------------------------------------------------------------------- targets
@dataclass
class Targets:
    """Targets read against a :class:`SequenceBatch` of inputs.

    Attributes
    ----------
    values : Tensor
        Per step: ``(B, T, O)`` real values or ``(B, T)`` int64 labels; per
        sequence: ``(B, O)`` or ``(B,)``. Entries left out (NaN) hold 0.
    mask : Tensor of bool
        ``(B, T)`` per step, ``(B,)`` per sequence: True where the target counts
        (a valid, non-padding step whose target has no NaN).
    per_step : bool
    labels : bool
        Whether ``values`` are integer class labels.
    """

    values: Tensor
    mask: Tensor
    per_step: bool
    labels: bool

    @property
    def features(self) -> int | None:
        """O for real-valued targets; ``None`` for labels."""
        return None if self.labels else int(self.values.shape[-1])

    def n_classes(self) -> int:
        """``max label + 1`` over the counted entries (labels only)."""
        counted = self.values[self.mask]
        return int(counted.max()) + 1 if counted.numel() else 0


def _target_tensor(value: object, name: str) -> Tensor:
    """Targets as a tensor: real numbers or integer labels, never a lossy cast."""
    if isinstance(value, np.ndarray):
        dtype = value.dtype
        if dtype.kind in "US":
            raise DataError(
                f"The targets '{name}' must be numbers: real values, or integer class labels "
                f"for cross-entropy. Got dtype {dtype} (text); encode class names as integers "
                f"first, e.g. classes, y = np.unique(y, return_inverse=True).")
        if dtype.kind == "O":
            raise DataError(
                f"The targets '{name}' must be numbers: real values, or integer class labels. "
                f"Got an array of dtype object; convert it, e.g. y.astype(np.float32).")
        if dtype.kind not in "biufc":
            raise DataError(
                f"The targets '{name}' must be numbers: real values, or integer class labels. "
                f"Got dtype {dtype}.")
        tensor = _from_numpy(value)
    elif isinstance(value, Tensor):
        tensor, dtype = value, value.dtype
    else:
        raise DataError(
            f"The targets '{name}' must be a numpy array, a torch tensor, or a list of them. "
            f"Got {_describe(value)}.")
    if tensor.dtype.is_complex:
        raise DataError(
            f"The targets '{name}' must be real. Got dtype {dtype}; the imaginary part would "
            f"be lost. Give the real and imaginary parts as separate outputs, e.g. "
            f"np.concatenate([y.real, y.imag], axis=-1).")
    return tensor


def _series_list(Y: list | tuple, name: str) -> list[Tensor]:
    tensors = [_target_tensor(item, f"{name}[{i}]") for i, item in enumerate(Y)]
    for i, tensor in enumerate(tensors):
        if tensor.ndim not in (1, 2):
            raise DataError(
                f"Each series in '{name}' must be (T_i, O) or labels (T_i,). Got "
                f"{_describe(tensor)} at position {i}.")
    return tensors


def _pad(tensors: list[Tensor], reference: SequenceBatch, name: str) -> Tensor:
    lengths = [int(t.shape[0]) for t in tensors]
    expected = ([reference.steps] * reference.batch_size if reference.lengths is None
                else reference.lengths.tolist())
    if lengths != expected:
        raise DataError(
            f"The targets '{name}' must match the inputs step for step: X has "
            f"{reference.batch_size} series of {reference.lengths_text()} steps but {name} "
            f"has {len(lengths)} of {lengths}.")
    tail = tensors[0].shape[1:]
    if any(t.shape[1:] != tail for t in tensors):
        outputs = [int(t.shape[1]) if t.ndim == 2 else "labels" for t in tensors]
        raise DataError(f"All series in '{name}' must have the same number of outputs. Got "
                        f"{outputs} (by series).")
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    if dtype.is_floating_point:
        dtype = torch.promote_types(dtype, torch.float64)
    padded = torch.zeros(len(tensors), reference.steps, *tail, dtype=dtype)
    for i, tensor in enumerate(tensors):
        padded[i, : lengths[i]] = tensor
    return padded


def _shape_targets(Y: object, reference: SequenceBatch, name: str) -> tuple[Tensor, bool]:
    """``(tensor, per_step)`` with the batch axis first, before dtype handling."""
    B, T = reference.batch_size, reference.steps
    if isinstance(Y, (list, tuple)):
        if len(Y) and all(np.ndim(item) == 0 for item in Y):
            return _target_tensor(np.asarray(Y), name), False  # per-sequence, as a list
        if len(Y) != B:
            raise DataError(
                f"The targets '{name}' must have one series per input series ({B}). "
                f"Got a list of {len(Y)}.")
        return _pad(_series_list(Y, name), reference, name), True
    tensor = _target_tensor(Y, name)
    if reference.layout == "single":
        if tensor.ndim in (1, 2) and tensor.shape[0] == T:
            return tensor.unsqueeze(0), True
        raise DataError(
            f"The targets '{name}' must have one entry per step of the input series: shape "
            f"({T}, O) or labels ({T},) for inputs of shape ({T}, {reference.features}). "
            f"Got shape {tuple(tensor.shape)}.")
    if tensor.ndim >= 1 and tensor.shape[0] != B:
        raise DataError(
            f"The targets '{name}' must have one entry per input series ({B}): shape "
            f"({B}, T, O), labels ({B}, T), or per sequence ({B}, O) / labels ({B},). Got "
            f"shape {tuple(tensor.shape)}.")
    if tensor.ndim == 3:
        if reference.lengths is not None or tensor.shape[1] != T:
            raise DataError(
                f"The targets '{name}' must match the inputs step for step: X has {B} series "
                f"of {reference.lengths_text()} steps. Got shape {tuple(tensor.shape)}.")
        return tensor, True
    if tensor.ndim in (1, 2):
        return tensor, False
    raise DataError(
        f"The targets '{name}' must be 1-D, 2-D or 3-D. Got shape {tuple(tensor.shape)}.")


def as_targets(Y: object, reference: SequenceBatch, *, labels: bool = False, name: str = "Y",
               dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
               allow_labels_per_step: bool = True, time_structure: bool = True) -> Targets:
    """Read targets against the inputs they belong to (see the module docstring).

    Parameters
    ----------
    Y : array, Tensor or list
    reference : SequenceBatch
        The inputs, as :func:`as_batch` returned them.
    labels : bool
        Integer class labels (cross-entropy) instead of real values.
    name : str
        Argument name for messages.
    dtype, device
        Of real-valued targets (labels are int64).
    allow_labels_per_step : bool
        Whether ``(B, T)`` integer labels with a 3-D input are per-step labels.
    time_structure : bool
        Whether the model's output at a step can depend on earlier steps
        (:meth:`~deepreservoir.graph.Graph.has_time_structure`). Without it,
        per-sequence targets for series longer than one step are refused: they
        would be compared with each series' last step and the others ignored.

    Raises
    ------
    DataError
        A shape that matches neither reading, text, object or complex values,
        ±Inf, non-integer or negative labels, per-sequence targets for a model
        without time structure, or no target left after NaN entries are dropped.
    """
    if Y is None:
        raise DataError(f"The targets '{name}' are missing (None); fit() needs targets.")
    tensor, per_step = _shape_targets(Y, reference, name)
    if labels:
        result = _label_targets(tensor, per_step, reference, name, allow_labels_per_step)
    else:
        result = _real_targets(tensor, per_step, reference, name, dtype, device)
    if not (time_structure or result.per_step or reference.steps == 1):
        B, T = reference.batch_size, reference.steps
        per_step_shape = f"labels ({B}, {T})" if labels else f"({B}, {T}, O)"
        raise DataError(
            f"The targets '{name}' hold one entry per series (shape {tuple(tensor.shape)}) "
            f"for {B} series of {reference.lengths_text()} steps, but the model has no time "
            f"structure (no stateful node, delay or feedback): its output at a step depends "
            f"on that step alone, so only each series' last step would be trained on and the "
            f"other steps ignored. Give per-step targets {per_step_shape}, one step per "
            f"sample ({B}, 1, F) or (N, F), or a model with state (e.g. a Reservoir).")
    return result


def _real_targets(tensor: Tensor, per_step: bool, reference: SequenceBatch, name: str,
                  dtype: torch.dtype, device: torch.device | str) -> Targets:
    B = reference.batch_size
    if tensor.dtype == torch.bool:
        tensor = tensor.to(torch.float64)
    values = tensor.to(torch.float64) if not tensor.is_floating_point() else tensor
    if per_step and values.ndim == 2:
        values = values.unsqueeze(-1)  # (B, T) → one output per step
    if not per_step and values.ndim == 1:
        values = values.unsqueeze(-1)  # (B,) → one output per sequence
    if bool(torch.isinf(values).any()):
        first = tuple(int(i) for i in torch.nonzero(torch.isinf(values))[0].tolist())
        raise DataError(
            f"The targets '{name}' must be finite or NaN (NaN steps are left out). Got "
            f"{int(torch.isinf(values).sum())} Inf values (the first at index {first}).")
    nan = torch.isnan(values).any(-1)
    mask = reference.valid_mask().cpu() if per_step else torch.ones(B, dtype=torch.bool)
    mask = mask & ~nan
    if not bool(mask.any()):
        raise DataError(f"The targets '{name}' hold no usable entry: every one is NaN.")
    values = torch.nan_to_num(values, nan=0.0).to(device=device, dtype=dtype)
    return Targets(values, mask.to(device), per_step, False)


def _label_targets(tensor: Tensor, per_step: bool, reference: SequenceBatch, name: str,
                   allow_labels_per_step: bool) -> Targets:
    B = reference.batch_size
    if tensor.is_floating_point():
        finite = torch.isfinite(tensor) | torch.isnan(tensor)
        whole = torch.where(torch.isnan(tensor), torch.zeros_like(tensor), tensor)
        if not bool(finite.all()) or not bool(torch.all(whole == torch.round(whole))):
            raise DataError(
                f"The targets '{name}' for classification must be integer class labels. Got "
                f"non-integer values of dtype {tensor.dtype}.")
        nan = torch.isnan(tensor)
        tensor = whole
    elif tensor.dtype == torch.bool:
        raise DataError(
            f"The targets '{name}' for classification must be integer class labels. Got dtype "
            f"{tensor.dtype}.")
    else:
        nan = torch.zeros(tensor.shape, dtype=torch.bool)
    if per_step and tensor.ndim == 3 and tensor.shape[-1] == 1:
        tensor, nan = tensor[..., 0], nan[..., 0]
    if not per_step and tensor.ndim == 2 and allow_labels_per_step \
            and reference.layout == "batch" and tensor.shape[1] == reference.steps:
        per_step = True  # (B, T) labels with (B, T, F) inputs
    expected = (B, reference.steps) if per_step else (B,)
    if tuple(tensor.shape) != expected:
        single = reference.layout == "single"  # shapes as the user gave them
        per_seq = "" if single else f" or per sequence ({B},)"
        raise DataError(
            f"The targets '{name}' for classification must be class labels of shape "
            f"{expected[1:] if single else expected}{per_seq}. Got shape "
            f"{tuple(tensor.shape)[1:] if single else tuple(tensor.shape)}.")
    labels = tensor.to(torch.int64)
    mask = (reference.valid_mask().cpu() if per_step else torch.ones(B, dtype=torch.bool)) & ~nan
    if not bool(mask.any()):
        raise DataError(f"The targets '{name}' hold no usable label: every one is NaN.")
    counted = labels[mask]
    if int(counted.min()) < 0:
        bad = int(counted.min())
        where = tuple(int(i) for i in torch.nonzero((labels == bad) & mask)[0].tolist())
        raise DataError(
            f"Class labels in '{name}' must be >= 0. Got {bad} at index {where}.")
    labels = torch.where(mask, labels, torch.zeros_like(labels))
    device = reference.values.device
    return Targets(labels.to(device), mask.to(device), per_step, True)
