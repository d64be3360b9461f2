"""Every process must hold the same model: fingerprints compared before the first step.

Frozen tensors never cross the wire: each process regenerates its scaffold from
the seed. So before training (and before a closed-form fit reduces its
statistics) every process hashes its frozen tensors, and its trained tensors
(adapters, gates, heads, fitted readouts), exchanges the hashes
(``all_gather_object``: a few bytes per tensor) and compares them with
process 0's. Every process sees every hash, so a mismatch raises the same
error on every process at once, naming the node and the tensor; none waits
for the others in a later collective.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from deepreservoir.errors import ParameterError
from deepreservoir.kinds import FrozenWeights
from deepreservoir.seeding import fingerprint

__all__ = ["check_same_model", "model_fingerprints"]


def _hash(tensor: torch.Tensor) -> str:
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    return fingerprint(tensor.detach().to("cpu", torch.float64).numpy())


def model_fingerprints(model) -> dict[str, dict[str, str]]:
    """Fingerprints of a model's tensors, by node name and tensor name.

    Frozen tensors (:meth:`~deepreservoir.kinds.FrozenWeights.frozen_tensors`)
    are listed as ``"scaffold W_"`` and so on; the node's ``state_dict`` entries
    (trained and fitted tensors) as ``"trained A_"``. An unbuilt node has none.

    Parameters
    ----------
    model : Model

    Returns
    -------
    dict of str to dict of str to str
        ``{node name: {"scaffold W_" or "trained A_": 16 hex digits}}``.
    """
    prints: dict[str, dict[str, str]] = {}
    for name, node in model.nodes.items():
        entry: dict[str, str] = {}
        if getattr(node, "built", False):
            if isinstance(node, FrozenWeights):
                for key, value in node.frozen_fingerprints().items():
                    entry[f"scaffold {key}"] = value
            for key, tensor in node.state_dict().items():
                if isinstance(tensor, torch.Tensor):
                    entry[f"trained {key}"] = _hash(tensor)
        prints[name] = entry
    return prints


def _differences(mine: dict, reference: dict, rank: int) -> list[str]:
    found = []
    for node in sorted(set(mine) | set(reference)):
        if node not in mine or node not in reference:
            where = "process 0" if node not in mine else f"process {rank}"
            found.append(f"node {node!r} exists only on {where}")
            continue
        for key in sorted(set(mine[node]) | set(reference[node])):
            a, b = mine[node].get(key), reference[node].get(key)
            if a != b:
                kind, tensor = key.split(" ", 1)
                found.append(f"node {node!r}, {kind} tensor {tensor!r}: fingerprint "
                             f"{a or 'missing'} on process {rank}, {b or 'missing'} on "
                             f"process 0")
    return found


def check_same_model(model, group: Any = None, extra: dict | None = None) -> None:
    """Refuse to go on unless every process's model equals process 0's (a collective).

    Parameters
    ----------
    model : Model
        Built.
    group : torch.distributed.ProcessGroup, optional
    extra : dict, optional
        More values every process must agree on (e.g. ``{"start epoch": 2}``).

    Raises
    ------
    ParameterError
        On every process, when any process differs: the message names the
        process, the node and the tensor (or the value of ``extra``).
    """
    mine = {"prints": model_fingerprints(model), "extra": dict(extra or {})}
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, mine, group=group)
    reference = gathered[0]
    problems = []
    for rank, other in enumerate(gathered[1:], start=1):
        problems += [f"process {rank}: {d}"
                     for d in _differences(other["prints"], reference["prints"], rank)]
        for key, value in other["extra"].items():
            if value != reference["extra"].get(key):
                problems.append(f"process {rank}: {key} is {value!r}, on process 0 "
                                f"{reference['extra'].get(key)!r}")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more"
                                           if len(problems) > 6 else "")
        raise ParameterError(
            f"dr.distributed.fit refuses to start: the model of every process must equal "
            f"process 0's (scaffolds are regenerated from the seed, never sent), but {shown}. "
            f"Build the same model with the same seeds on every process (and give every "
            f"process the same checkpoint to resume from).")
