"""Training samples and the samplers that cut them into batches.

:func:`prepare_samples` reads data through :mod:`deepreservoir.data`, like every
other path, and arranges it for gradient training:

* a model **without time structure** (no stateful node, no delay, no feedback)
  given per-step targets treats every step as an independent sample: the steps
  of all series (after ``warmup``) become rows ``(N, 1, F)``, shuffled freely;
* otherwise each **series** is a sample ``(N, T, F)`` trained by backpropagation
  through time, with per-step targets (masked) or one target per series,
  compared with the output at its last valid step.

Class labels are ``0, ..., K-1``: ``K`` is the output node's declared size when it
has one (a label ``>= K`` is refused), else ``max label + 1``, refused above
:data:`MAX_INFERRED_CLASSES` so that a stray label cannot build a huge head.
A sampler yields the batches of one epoch. :class:`ShuffledSampler` shuffles
with a generator seeded from ``(seed, epoch)``; :class:`LoaderSampler` takes
the batches of a torch ``DataLoader`` as they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepreservoir.data import SequenceBatch, Targets, as_batch, as_targets, check_finite
from deepreservoir.errors import DataError, ParameterError, format_value
from deepreservoir.executor import external_features
from deepreservoir.training.options import derive_seed, is_int

__all__ = ["MAX_INFERRED_CLASSES", "LoaderSampler", "Samples", "ShuffledSampler",
           "check_binary_targets", "check_labels", "label_groups", "prepare_samples",
           "targets_are_labels"]

#: The most classes ``fit`` infers from the labels (``max label + 1``) when the
#: output node does not declare its size; declare it (e.g. ``LoRAReadout(K)``)
#: for more.
MAX_INFERRED_CLASSES = 100_000


@dataclass
class Samples:
    """Samples in executor layout.

    Attributes
    ----------
    x : Tensor, shape (N, T, F)
    lengths : Tensor (N,) or None
    y : Tensor
        Per step: ``(N, T, O)`` or labels ``(N, T)``; per sample ``(N, O)`` or ``(N,)``.
    mask : Tensor of bool, ``(N, T)`` per step (``(N,)`` per sample)
    per_step : bool
    labels : bool
    group : int or None
        The scaffold seed a batch belongs to (seed-gated labels), else None.
    """

    x: Tensor
    lengths: Tensor | None
    y: Tensor
    mask: Tensor
    per_step: bool
    labels: bool
    group: int | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: Tensor | slice, group: int | None = None) -> Samples:
        """The samples at ``index``: a 1-D int tensor (on the samples' device or the CPU)
        or a slice (a view, no copy)."""
        lengths = None
        if self.lengths is not None:
            lengths = self.lengths[index if isinstance(index, slice)
                                   or self.lengths.device == index.device
                                   or index.device.type == "cpu" else index.cpu()]
        return Samples(self.x[index], lengths, self.y[index], self.mask[index], self.per_step,
                       self.labels, group)

    def __getitem__(self, index: slice) -> Samples:
        """``samples[a:b]``: the samples of a slice, as views."""
        return self.subset(index, self.group)

    def to(self, device: torch.device) -> Samples:
        """The samples (lengths included) on ``device``; ``self`` when they are there."""
        device = torch.device(device)
        if all(t is None or _on(t, device) for t in (self.x, self.lengths, self.y, self.mask)):
            return self
        return replace(self, x=self.x.to(device), y=self.y.to(device),
                       mask=self.mask.to(device),
                       lengths=None if self.lengths is None else self.lengths.to(device))

    def n_classes(self) -> int:
        """``max label + 1`` over the counted labels."""
        counted = self.y[self.mask] if self.per_step else self.y
        return int(counted.max()) + 1 if counted.numel() else 0

    def select(self, out: Tensor, warmup: int) -> tuple[Tensor, Tensor]:
        """Outputs and targets where the loss looks, flattened to rows.

        ``out`` is the model's output ``(N, T, O)``: per step, the counted steps
        at or after ``warmup``; per sample, each sample's last valid step.
        """
        if self.per_step:
            steps = out.shape[1]
            keep = self.mask.to(out.device)
            if warmup:
                time = torch.arange(steps, device=out.device)
                keep = keep & (time[None, :] >= warmup)
            return out[keep], self.y.to(out.device)[keep]
        if self.lengths is None:
            last = out[:, -1]
        else:
            last = out[torch.arange(out.shape[0]), self.lengths.to(out.device) - 1]
        return last, self.y.to(out.device)


def _on(tensor: Tensor, device: torch.device) -> bool:
    """Whether ``tensor`` is on ``device`` (``cuda`` means the current CUDA device)."""
    if tensor.device.type != device.type:
        return False
    return device.index is None or tensor.device.index == device.index


def targets_are_labels(loss: Any, y: Any) -> bool:
    """Whether targets are class labels: cross-entropy, or a callable loss with integer targets."""
    if isinstance(loss, str):
        return loss == "cross_entropy"
    if isinstance(y, (list, tuple)) and y:
        y = y[0]
    dtype = getattr(y, "dtype", None)
    if dtype is None:
        dtype = np.asarray(y).dtype
    if isinstance(dtype, torch.dtype):
        return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
    return bool(np.issubdtype(dtype, np.integer))


def _declared_classes(model: Any) -> int | None:
    names = getattr(model, "output_names", ())
    if len(names) != 1:
        return None
    dim = getattr(model.nodes[names[0]], "output_dim", None)
    return None if dim is None else int(dim)


def check_labels(targets: Targets, classes: int | None, name: str, single: bool = False) -> int:
    """Check labels against ``classes`` (or the inference cap); return ``max label + 1``.

    Parameters
    ----------
    targets : Targets
        Labels as :func:`deepreservoir.data.as_targets` read them.
    classes : int or None
        The output node's declared size; ``None``: inferred, at most
        :data:`MAX_INFERRED_CLASSES`.
    name : str
        The argument, for messages.
    single : bool
        The inputs were one series ``(T, F)``: indices are given as ``(t,)``.

    Raises
    ------
    DataError
        A label ``>= classes``, or an inferred number of classes above the cap.
    """
    counted = targets.values.masked_fill(~targets.mask, 0)
    if counted.numel() == 0:
        return 0
    high = int(counted.max())
    limit = classes if classes is not None else MAX_INFERRED_CLASSES
    if high < limit:
        return high + 1
    where = tuple(int(i) for i in torch.nonzero((counted == high) & targets.mask)[0].tolist())
    if single and targets.per_step:
        where = where[1:]
    if classes is not None:
        raise DataError(
            f"Class labels in '{name}' are out of range: they must be in [0, {classes}) for a "
            f"model with {classes} outputs. Got {high} at index {where}.")
    raise DataError(
        f"Class labels in '{name}' must be 0, ..., K-1 with K at most {MAX_INFERRED_CLASSES} "
        f"when the output node does not declare its size (MAX_INFERRED_CLASSES). Got {high} "
        f"at index {where}, which would build a head of {high + 1} classes. Declare the "
        f"size (e.g. LoRAReadout({high + 1}) or Dense({high + 1})) if that is meant.")


def check_binary_targets(targets: Targets, name: str, single: bool = False) -> None:
    """Refuse ``loss="bce"`` targets outside [0, 1] (probabilities), naming one and its index.

    Parameters
    ----------
    targets : Targets
        Real targets as :func:`deepreservoir.data.as_targets` read them.
    name : str
        The argument, for messages.
    single : bool
        The inputs were one series ``(T, F)``: indices are given without the series axis.

    Raises
    ------
    DataError
        A counted target below 0 or above 1.
    """
    values = targets.values
    mask = targets.mask
    while mask.ndim < values.ndim:
        mask = mask.unsqueeze(-1)
    bad = ((values < 0) | (values > 1)) & mask
    if not bool(bad.any()):
        return
    where = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
    value = float(values[where])
    if single and targets.per_step:
        where = where[1:]
    raise DataError(
        f"The targets '{name}' of loss='bce' must be probabilities in [0, 1]. Got "
        f"{value:g} at index {where}. Scale them, or use loss='mse' for real values or "
        f"loss='cross_entropy' for class labels.")


def _expected_features(model: Any) -> int | None:
    """The external features every input node of a built model expects (None if unknown)."""
    if not all(getattr(node, "built", False) for node in model.nodes.values()):
        return None
    sizes = {external_features(model, name) for name in model.input_names}
    return sizes.pop() if len(sizes) == 1 else None


def prepare_samples(model: Any, X: Any, y: Any, *, labels: bool, warmup: int = 0,
                    dtype: torch.dtype = torch.float32, device: Any = "cpu",
                    names: tuple[str, str] = ("X", "y"), loss: Any = None) -> Samples:
    """Read ``X`` and ``y`` (see :mod:`deepreservoir.data`) and arrange them as samples.

    A built model's inputs must have the features it was built for; with
    ``loss="bce"`` the targets must be in [0, 1].

    Raises
    ------
    DataError
        Data the normaliser refuses (text, object or complex targets among them,
        a feature count the built model does not take), class labels out of range
        (see :func:`check_labels`), or ``"bce"`` targets outside [0, 1].
    """
    batch = as_batch(X, name=names[0], dtype=dtype, device=device,
                     features=_expected_features(model))
    targets = as_targets(y, batch, labels=labels, name=names[1], dtype=dtype, device=device,
                         time_structure=model.has_time_structure())
    if labels:
        check_labels(targets, _declared_classes(model), names[1], batch.layout == "single")
    elif isinstance(loss, str) and loss == "bce":
        check_binary_targets(targets, names[1], batch.layout == "single")
    if not model.has_time_structure() and targets.per_step:
        keep = targets.mask
        if warmup:
            time = torch.arange(batch.steps, device=keep.device)
            keep = keep & (time[None, :] >= warmup)
        if not bool(keep.any()):
            raise DataError(
                f"The 'warmup' parameter ({warmup}) leaves no training step in series of "
                f"{batch.lengths_text()} steps.")
        rows = batch.values[keep].unsqueeze(1)
        values = targets.values[keep]
        mask = torch.ones(rows.shape[0], dtype=torch.bool, device=rows.device)
        return Samples(rows, None, values, mask, False, labels)
    if targets.per_step:
        return Samples(batch.values, batch.lengths, targets.values, targets.mask, True, labels)
    keep = targets.mask
    if bool(keep.all()):
        return Samples(batch.values, batch.lengths, targets.values, keep, False, labels)
    index = torch.nonzero(keep.cpu())[:, 0]
    lengths = None if batch.lengths is None else batch.lengths[index]
    return Samples(batch.values[index.to(batch.values.device)], lengths,
                   targets.values[index.to(keep.device)],
                   torch.ones(len(index), dtype=torch.bool, device=keep.device), False, labels)


class ShuffledSampler:
    """Seeded shuffling: epoch ``e`` draws its order from a generator seeded by ``(seed, e)``.

    Parameters
    ----------
    data : Samples
    batch_size : int
    seed : int
    groups : list of (group, index), optional
        Batches never mix groups (seed-gated labels); the order of the batches
        of all groups is shuffled too.
    """

    def __init__(self, data: Samples, batch_size: int, seed: int,
                 groups: list[tuple[int | None, Tensor]] | None = None) -> None:
        self.data = data
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.groups = groups or [(None, torch.arange(len(data)))]

    def __len__(self) -> int:
        return sum(-(-len(index) // self.batch_size) for _, index in self.groups)

    def batches(self, epoch: int) -> Iterator[Samples]:
        """The batches of epoch ``epoch``.

        The order is drawn on the CPU (the same on every device) and sent to the
        data's device in one copy per epoch; each batch is then cut there.
        """
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        chosen = []
        for group, index in self.groups:
            order = index[torch.randperm(len(index), generator=generator)]
            chosen.extend((group, order[i:i + self.batch_size])
                          for i in range(0, len(order), self.batch_size))
        if len(self.groups) > 1:
            shuffle = torch.randperm(len(chosen), generator=generator).tolist()
            chosen = [chosen[i] for i in shuffle]
        if not chosen:
            return
        sizes = [len(index) for _, index in chosen]
        flat = torch.cat([index for _, index in chosen]).to(self.data.x.device)
        for (group, _), index in zip(chosen, torch.split(flat, sizes), strict=True):
            yield self.data.subset(index, group)


class LoaderSampler:
    """The batches of a torch ``DataLoader`` (or any re-iterable of ``(x, y)`` pairs).

    Each item is read like ``fit``'s own data: ``x`` of shape ``(b, F)`` is b
    samples of one step for a model without time structure, ``(b, T, F)`` b
    series; ``y`` holds their targets.
    """

    def __init__(self, loader: Iterable, model: Any, *, labels: bool, dtype: torch.dtype,
                 device: Any) -> None:
        self.loader = loader
        self.model = model
        self.labels = labels
        self.dtype = dtype
        self.device = device

    def __len__(self) -> int:
        try:
            return len(self.loader)
        except TypeError:
            return 0

    def batches(self, epoch: int) -> Iterator[Samples]:
        """The loader's batches, read as samples."""
        for item in self.loader:
            yield self.read(item)

    def read(self, item: Any) -> Samples:
        """One ``(x, y)`` item as :class:`Samples`."""
        if isinstance(item, Mapping):
            item = (item.get("x", item.get("X")), item.get("y", item.get("Y")))
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(
                f"A sampler batch must be a pair (x, y). Got {type(item).__name__}.")
        x, y = item
        x = torch.as_tensor(x)
        if x.ndim == 2:
            x = x.unsqueeze(1)
        if x.ndim != 3:
            raise DataError(
                f"A sampler batch's x must be (b, F) or (b, T, F). Got shape {tuple(x.shape)}.")
        if not x.is_floating_point():
            raise DataError(f"A sampler batch's x must be floating point. Got {x.dtype}.")
        check_finite(x, "x")
        values = x.to(device=self.device, dtype=self.dtype)
        reference = SequenceBatch(values, None, "batch", "torch")
        targets = as_targets(y, reference, labels=self.labels, name="y", dtype=self.dtype,
                             device=self.device,
                             time_structure=self.model.has_time_structure())
        if self.labels:
            check_labels(targets, _declared_classes(self.model), "y")
        if targets.per_step and not self.model.has_time_structure() and values.shape[1] == 1:
            return Samples(values, None, targets.values[:, 0], targets.mask[:, 0], False,
                           self.labels)
        return Samples(values, None, targets.values, targets.mask, targets.per_step,
                       self.labels)


def label_groups(data: Samples, seed_labels: Mapping[int, Iterable[int]], name: str = "y"
                 ) -> list[tuple[int, Tensor]]:
    """Sample indices per scaffold seed, from ``{seed: labels}``; a label has one seed.

    Every label of ``data`` must belong to a seed: a sample whose label has none
    would be silently left out of training (or validation).

    Parameters
    ----------
    data : Samples
        Labelled samples.
    seed_labels : dict {seed: labels}
    name : str
        The targets, for messages (``"y"``, ``"validation_data[1]"``).

    Raises
    ------
    ParameterError
        A malformed dict, a label given to two seeds, or labels of ``data`` that no
        seed owns (named, with how many samples carry them).
    """
    if not isinstance(seed_labels, Mapping) or not seed_labels:
        raise ParameterError(
            f"The 'seed_labels' parameter of fit must be a non-empty dict {{seed: labels}}. "
            f"Got {format_value(seed_labels)}.")
    groups = []
    owner: dict[int, int] = {}
    targets = (data.y if data.y.ndim == 1 else data.y[:, -1]).cpu()
    for seed, labels in seed_labels.items():
        if not (is_int(seed) and seed >= 0):
            raise ParameterError(
                f"The 'seed_labels' parameter of fit must be a dict {{non-negative int seed: "
                f"labels}}. Got seed {format_value(seed)}.")
        given = labels
        if isinstance(labels, (Tensor, np.ndarray)):
            labels = labels.tolist()
        labels = [None] if isinstance(labels, (str, bytes)) or not isinstance(
            labels, Iterable) else list(labels)
        if not all(is_int(v) and v >= 0 for v in labels):
            raise ParameterError(
                f"The 'seed_labels' parameter of fit must map each seed to a list of "
                f"non-negative int labels. Got {format_value(given)} for seed {seed}.")
        labels = [int(v) for v in labels]
        for label in labels:
            if label in owner:
                raise ParameterError(
                    f"The 'seed_labels' parameter of fit must give each label to one seed. "
                    f"Got label {label} for seeds {owner[label]} and {seed}.")
            owner[label] = int(seed)
        mask = torch.isin(targets, torch.tensor(labels, dtype=targets.dtype))
        groups.append((int(seed), torch.nonzero(mask)[:, 0]))
    present = torch.unique(targets).tolist()
    missing = [int(v) for v in present if int(v) not in owner]
    if missing:
        dropped = int(torch.isin(targets, torch.tensor(missing, dtype=targets.dtype)).sum())
        raise ParameterError(
            f"The 'seed_labels' parameter of fit gives no seed to the labels {missing} of "
            f"'{name}' ({dropped} of {len(targets)} samples), which would be left out. Give "
            f"every label a seed. Got {format_value(dict(seed_labels), 120)}.")
    return groups
