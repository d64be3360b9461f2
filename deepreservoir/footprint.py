"""How much a model trains, keeps frozen, and stores: parameter counts and bytes.

A LottaLoRA model stores only what cannot be regenerated from its seed:
adapters, gates, heads and closed-form readouts. :func:`footprint` counts that
against the dense checkpoint of the same network (every weight stored), and
:func:`paper_param_count` is the LottaLoRA paper's closed formula for an MLP.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepreservoir.lora import LowRankAdapter

__all__ = ["Footprint", "dense_param_count", "footprint", "paper_param_count",
           "training_step_peak"]


def paper_param_count(d_in: int, hidden: Sequence[int], classes: int, r: int,
                      beta: bool = True) -> int:
    """Trainable parameters of a LottaLoRA MLP, by the paper's formula.

    ``Σ_l r·(d_in,l + d_out,l)`` over the adapted hidden layers, one β per adapted
    matrix, and a fully trained head ``d_last·classes + classes``. Hidden biases
    are not trained.

    Examples
    --------
    >>> paper_param_count(784, (512, 256, 128, 64), 10, r=8)
    21774
    """
    dims = [int(d_in), *map(int, hidden)]
    adapters = sum(r * (a + b) for a, b in itertools.pairwise(dims))
    betas = len(hidden) if (beta and r > 0) else 0
    return adapters + betas + dims[-1] * classes + classes


def dense_param_count(d_in: int, hidden: Sequence[int], classes: int) -> int:
    """Parameters of the same MLP fully trained (weights and biases everywhere).

    Examples
    --------
    >>> dense_param_count(784, (512, 256, 128, 64), 10)
    575050
    """
    dims = [int(d_in), *map(int, hidden), int(classes)]
    return sum(a * b + b for a, b in itertools.pairwise(dims))


@dataclass
class Footprint:
    """Parameter counts and bytes of a model.

    Attributes
    ----------
    trainable : int
        Elements of parameters that require gradients.
    frozen : int
        Elements regenerated from the seed (non-persistent buffers) or frozen parameters.
    stored : int
        Elements the artifact stores (the persistent ``state_dict``).
    stored_bytes : int
        Bytes of those tensors (or of the artifact on disk, when measured).
    dense_bytes : int
        Bytes of a dense checkpoint of the same network: every weight stored
        merged (``β·W_seed + scale·B·A`` as one matrix), biases and heads included.
    dense : int
        Elements of that dense checkpoint.
    per_node : dict
        ``{node: {"trainable": n, "frozen": n, "stored": n}}``.
    """

    trainable: int
    frozen: int
    stored: int
    stored_bytes: int
    dense_bytes: int
    dense: int = 0
    per_node: dict[str, dict[str, int]] = field(default_factory=dict)
    measured: bool = False

    @property
    def total(self) -> int:
        """Elements held in memory: frozen plus stored."""
        return self.frozen + self.stored

    @property
    def trainable_fraction(self) -> float:
        """Trainable elements over the elements of the dense network."""
        return self.trainable / self.dense if self.dense else 0.0

    @property
    def bytes_ratio(self) -> float:
        """Stored bytes over dense-checkpoint bytes."""
        return self.stored_bytes / self.dense_bytes if self.dense_bytes else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the figures."""
        return {"trainable": self.trainable, "frozen": self.frozen, "stored": self.stored,
                "total": self.total, "dense": self.dense,
                "trainable_fraction": self.trainable_fraction,
                "stored_bytes": self.stored_bytes, "dense_bytes": self.dense_bytes,
                "bytes_ratio": self.bytes_ratio, "measured": self.measured}

    def __str__(self) -> str:
        lines = [f"{'node':<20}{'trainable':>12}{'frozen':>12}{'stored':>12}"]
        for name, row in self.per_node.items():
            lines.append(f"{name:<20}{row['trainable']:>12,}{row['frozen']:>12,}"
                         f"{row['stored']:>12,}")
        lines.append(f"{'total':<20}{self.trainable:>12,}{self.frozen:>12,}{self.stored:>12,}")
        how = "on disk" if self.measured else "estimated"
        lines.append(f"trainable: {self.trainable:,} of {self.dense:,} in the dense network "
                     f"({100 * self.trainable_fraction:.2f} %)")
        lines.append(f"bytes ({how}): {self.stored_bytes:,} vs dense {self.dense_bytes:,} "
                     f"({100 * self.bytes_ratio:.2f} %)")
        return "\n".join(lines)


def _adapter_ids(module: torch.nn.Module) -> set[int]:
    """Ids of adapter factors and gates: a dense checkpoint merges them away."""
    return {id(t) for child in module.modules() if isinstance(child, LowRankAdapter)
            for t in child.adapter_tensors()}


def _module_counts(module: torch.nn.Module) -> tuple[int, int, int, int, int, int]:
    trainable = frozen = stored = stored_bytes = dense_bytes = dense = 0
    persistent = module.state_dict(keep_vars=True)
    persistent_ids = {id(t) for t in persistent.values()}
    adapters = _adapter_ids(module)
    seen: set[int] = set()
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if id(tensor) in seen or name.endswith("_probe"):
            continue
        seen.add(id(tensor))
        size = tensor.numel() * tensor.element_size()
        if id(tensor) not in adapters:
            dense_bytes += size
            dense += tensor.numel()
        if isinstance(tensor, torch.nn.Parameter) and tensor.requires_grad:
            trainable += tensor.numel()
        if id(tensor) in persistent_ids:
            stored += tensor.numel()
            stored_bytes += size
        else:
            frozen += tensor.numel()
    for child in module.modules():  # virtual weights: regenerated, never held
        virtual = child.virtual_weight() if isinstance(child, LowRankAdapter) else None
        if virtual is not None and getattr(child, "W_", None) is None:
            frozen += virtual.numel()
            dense += virtual.numel()
            dense_bytes += int(virtual.memory()["dense_bytes"])
    return trainable, frozen, stored, stored_bytes, dense_bytes, dense


def footprint(model: torch.nn.Module, path: str | Path | None = None) -> Footprint:
    """Count what a model trains, regenerates and stores.

    Parameters
    ----------
    model : Model or torch.nn.Module
        A built model (run or fit it once first).
    path : str or Path, optional
        A saved artifact of this model; its size on disk replaces the estimate
        of ``stored_bytes``.

    Returns
    -------
    Footprint
    """
    per_node: dict[str, dict[str, int]] = {}
    nodes = getattr(model, "nodes", None)
    if isinstance(nodes, torch.nn.ModuleDict):
        for name, node in nodes.items():
            t, f, s, _, _, _ = _module_counts(node)
            per_node[name] = {"trainable": t, "frozen": f, "stored": s}
    trainable, frozen, stored, stored_bytes, dense_bytes, dense = _module_counts(model)
    measured = False
    if path is not None:
        target = Path(path)
        files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
        stored_bytes = sum(p.stat().st_size for p in files)
        measured = True
    return Footprint(trainable, frozen, stored, stored_bytes, dense_bytes, dense, per_node,
                     measured)


def training_step_peak(run: Any, live_bytes: Callable[[Any], int]) -> dict[str, int]:
    """Live tensor bytes before and at the peak of one training step, on the CPU.

    Two warm-up steps fill the optimizer state; then the gradients are set to
    None, ``live_bytes(run)`` gives the baseline (the model, the optimizer state
    and the batch), and one more step runs under :mod:`torch.profiler` with
    ``profile_memory=True``. Its CPU allocation and free events are replayed in
    order: the peak is the baseline plus the largest running sum, i.e. the most
    bytes the step held at once beyond what lives between steps (activations,
    gradients, temporaries such as regenerated weight tiles).

    Parameters
    ----------
    run : object
        Has ``step()`` (one training step: forward, backward, optimizer step) and
        ``optimizer`` (a torch optimizer; its ``zero_grad(set_to_none=True)`` is
        called before the baseline).
    live_bytes : callable
        ``live_bytes(run) -> int``: bytes of the tensors that live between steps
        (count each storage once).

    Returns
    -------
    dict
        ``{"baseline": bytes, "peak": bytes}``.

    Examples
    --------
    >>> import torch
    >>> class Run:
    ...     def __init__(self):
    ...         self.weight = torch.nn.Parameter(torch.zeros(4))
    ...         self.optimizer = torch.optim.SGD([self.weight], lr=0.1)
    ...     def step(self):
    ...         scratch = torch.ones(1000)       # 4,000 bytes held during the step
    ...         self.weight.grad = torch.ones(4)
    ...         self.optimizer.step()
    >>> peak = training_step_peak(Run(), lambda run: 16)
    >>> peak["baseline"], peak["peak"] >= 16 + 4000
    (16, True)
    """
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        run.step()
    run.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    baseline = int(live_bytes(run))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        run.step()
    events = [event for event in profiler.profiler.kineto_results.events()
              if event.name() == "[memory]"
              and event.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda event: event.start_ns())
    running = extra = 0
    for event in events:
        running += event.nbytes()
        extra = max(extra, running)
    return {"baseline": baseline, "peak": baseline + extra}
