"""Ship an adapted torch module: :func:`save_adapted` and :func:`load_adapted`.

An adapted module's artifact is one ``.safetensors`` file: the tensors of its
``state_dict()`` (adapters, gates, the ``train`` tensors, and anything frozen
with its own values: norms' statistics, ``unsupported="freeze"`` weights) and,
in the file's metadata, the arguments ``adapt`` was called with, the module's
class, a fingerprint of every frozen scaffold weight, the generator and the
package version. The scaffold itself is not in the file: :func:`load_adapted`
takes a freshly built instance of the same architecture, applies the recorded
``adapt`` (which regenerates every frozen weight from the seed), checks the
fingerprints and loads the tensors, so the loaded module computes the saved
one's outputs bit for bit.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepreservoir._version import __version__
from deepreservoir.adapt import CONFIG_ATTRIBUTE, adapt, adapt_config, adapted_layers
from deepreservoir.errors import ArtifactError, ParameterError, format_value
from deepreservoir.seeding import GENERATOR, GENERATOR_VERSION

__all__ = ["FORMAT", "FORMAT_VERSION", "frozen_fingerprints", "load_adapted", "save_adapted"]

#: The ``format`` entry of an adapted module's metadata.
FORMAT = "deepreservoir.adapted"
#: Its version; a file of a newer version is refused.
FORMAT_VERSION = 1


def _class_name(module: nn.Module) -> str:
    return f"{type(module).__module__}.{type(module).__qualname__}"


def frozen_fingerprints(module: nn.Module) -> dict[str, str]:
    """A content hash of every adapted layer's frozen weight, by module path.

    A virtual weight is hashed tile by tile, never materialised; a layer with
    no scaffold (a zero family) maps to ``"none"``.
    """
    prints = {}
    for name, layer in adapted_layers(module).items():
        weight = layer.frozen_weight()
        prints[name] = "none" if weight is None else weight.fingerprint()
    return prints


def save_adapted(module: nn.Module, path: str | os.PathLike, *,
                 overwrite: bool = True) -> Path:
    """Write an adapted module's trained tensors and its ``adapt`` arguments to one file.

    Parameters
    ----------
    module : nn.Module
        A module returned by :func:`~deepreservoir.adapt` (trained or not).
    path : str or PathLike
        The ``.safetensors`` file to write (written to a temporary name, then
        moved in place: an interrupted save leaves any previous file intact).
    overwrite : bool
        Replace an existing file (default); ``False`` refuses.

    Returns
    -------
    Path
        The file written. Its size is the artifact's size.

    Raises
    ------
    ParameterError
        When ``module`` was not adapted, a parameter is not finite (buffers,
        such as a causal mask of -inf, may be), or the file exists and
        ``overwrite`` is False.
    """
    from safetensors.torch import save_file

    config = adapt_config(module)
    target = Path(path)
    if target.exists() and not overwrite:
        raise ParameterError(f"The 'path' parameter of save_adapted names a file that exists: "
                             f"{str(target)!r}; pass overwrite=True to replace it.")
    parameters = dict(module.named_parameters())
    tensors = {}
    for name, tensor in module.state_dict().items():
        if name in parameters and not bool(torch.isfinite(tensor).all()):
            raise ParameterError(
                f"The 'module' parameter of save_adapted has a parameter '{name}' that is not "
                f"finite (NaN or Inf). Expected finite values: the training diverged.")
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
                "module": _class_name(module), "adapt": json.dumps(config, sort_keys=True),
                "fingerprints": json.dumps(frozen_fingerprints(module), sort_keys=True),
                "generator": f"{GENERATOR} {GENERATOR_VERSION}",
                "deepreservoir": __version__}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        save_file(tensors, str(staging), metadata=metadata)
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.is_file():
        raise ArtifactError(f"The 'path' parameter of load_adapted names no file: "
                            f"{str(path)!r}. Expected a file written by save_adapted.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own error types on bad bytes
        raise ArtifactError(
            f"The file {str(path)!r} is not a readable safetensors file ({error}). "
            f"Expected a file written by save_adapted; it may be truncated or "
            f"corrupted.") from None
    if metadata.get("format") != FORMAT:
        raise ArtifactError(
            f"The file {str(path)!r} is not an adapted-module file: its metadata 'format' is "
            f"{metadata.get('format')!r}, expected {FORMAT!r} (written by save_adapted).")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        version = -1
    if not 1 <= version <= FORMAT_VERSION:
        raise ArtifactError(
            f"The file {str(path)!r} has format_version "
            f"{metadata.get('format_version')!r}; this deepreservoir ({__version__}) reads "
            f"versions 1 to {FORMAT_VERSION}.")
    return tensors, metadata


def _json(metadata: dict[str, str], key: str, path: Path) -> Any:
    try:
        return json.loads(metadata[key])
    except (KeyError, ValueError):
        raise ArtifactError(f"The file {str(path)!r} has no valid '{key}' entry in its "
                            f"metadata; it is corrupted.") from None


def _check_tensors(module: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    expected = module.state_dict()
    parameters = dict(module.named_parameters())  # buffers may hold Inf (a causal mask)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ArtifactError(
            f"The file {str(path)!r} does not fit the module: missing tensors "
            f"{missing[:8]}, unexpected tensors {unexpected[:8]}. Expected the state dict of "
            f"the adapted {type(module).__name__}: build the same architecture as was saved.")
    for name, tensor in tensors.items():
        own = expected[name]
        if tuple(own.shape) != tuple(tensor.shape) or own.dtype != tensor.dtype:
            raise ArtifactError(
                f"The file {str(path)!r} holds '{name}' with shape {tuple(tensor.shape)} and "
                f"dtype {tensor.dtype}; the module expects {tuple(own.shape)} and {own.dtype}.")
        if name in parameters and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ArtifactError(f"The file {str(path)!r} holds '{name}' with {bad} NaN or Inf "
                                f"values; it is corrupted.")


def _check_metadata(config: Any, fingerprints: Any, path: Path) -> None:
    known = set(inspect.signature(adapt).parameters) - {"module"}
    if not isinstance(config, dict) or not set(config) <= known or not {"r", "seed"} <= set(
            config):
        raise ArtifactError(
            f"The file {str(path)!r} has an 'adapt' entry that is not a set of dr.adapt "
            f"arguments (got {format_value(config)}; expected a dict with 'r' and 'seed' and "
            f"keys among {sorted(known)}). It is corrupted or written by a newer version.")
    if not isinstance(fingerprints, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fingerprints.items()):
        raise ArtifactError(f"The file {str(path)!r} has a 'fingerprints' entry that is not a "
                            f"mapping of layer paths to hashes; it is corrupted.")


def load_adapted(module: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Rebuild a saved adapted module on a fresh instance of its architecture.

    Parameters
    ----------
    module : nn.Module
        A newly built, not yet adapted instance of the saved module's class
        (its own initial weights do not matter: every adapted weight is drawn
        from the seed again, and every stored tensor is loaded).
    path : str or PathLike
        A file written by :func:`save_adapted`.

    Returns
    -------
    nn.Module
        A copy of ``module`` (which is left as it was), adapted with the saved
        arguments and holding the saved tensors: its outputs equal the saved
        module's bit for bit (same device and dtype).

    Raises
    ------
    ParameterError
        When ``module`` is not an ``nn.Module``, is already adapted, or is of
        another class than the saved one.
    ArtifactError
        When the file is missing, not readable, not written by
        :func:`save_adapted`, holds NaN or Inf, does not fit the module, or its
        scaffold fingerprints differ from the regenerated ones.
    """
    if not isinstance(module, nn.Module):
        raise ParameterError(f"The 'module' parameter of load_adapted must be a torch "
                             f"nn.Module. Got {format_value(module)}.")
    if getattr(module, CONFIG_ATTRIBUTE, None) is not None:
        raise ParameterError(
            f"The 'module' parameter of load_adapted must be a freshly built, not yet adapted "
            f"{type(module).__name__}. Got one that dr.adapt already changed.")
    target = Path(path)
    tensors, metadata = _read(target)
    saved_class = metadata.get("module")
    if not saved_class:
        raise ArtifactError(f"The file {str(target)!r} has no 'module' entry in its metadata; "
                            f"it is corrupted.")
    if saved_class != _class_name(module):
        raise ParameterError(
            f"The 'module' parameter of load_adapted must be a {saved_class} (the saved "
            f"module's class). Got a {_class_name(module)}.")
    config = _json(metadata, "adapt", target)
    fingerprints = _json(metadata, "fingerprints", target)
    _check_metadata(config, fingerprints, target)
    module = copy.deepcopy(module)  # the caller's instance stays untouched if a check fails
    try:
        adapt(module, **config)
    except ParameterError as error:
        raise ArtifactError(f"The file {str(target)!r} does not fit the module: "
                            f"dr.adapt with its saved arguments failed: {error}") from None
    _check_tensors(module, tensors, target)
    regenerated = frozen_fingerprints(module)
    changed = [name for name in sorted(set(regenerated) | set(fingerprints))
               if regenerated.get(name) != fingerprints.get(name)]
    if changed:
        raise ArtifactError(
            f"The file {str(target)!r} was trained on other frozen weights than the ones "
            f"regenerated now for {changed[:8]} (fingerprints "
            f"{[fingerprints.get(n) for n in changed[:3]]} saved, "
            f"{[regenerated.get(n) for n in changed[:3]]} now): the architecture's layer "
            f"sizes, the seed, the weight family or the generator differ.")
    device = next((t.device for t in module.state_dict().values()), torch.device("cpu"))
    module.load_state_dict({k: v.to(device) for k, v in tensors.items()}, strict=True)
    return module
