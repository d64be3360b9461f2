"""Checkpoints of gradient training, written atomically and resumed bit for bit.

Layout of a checkpoint directory::

    LATEST                  the name of the newest complete checkpoint
    epoch-00003/
        model/              the model as an artifact (deepreservoir.io)
        optimizer.safetensors
        trainer.json        epoch, options, history, gates, scaffold generations

A checkpoint is assembled in a hidden staging directory and renamed into place,
then ``LATEST`` is replaced atomically; older checkpoints are removed last. A
run killed at any point leaves the previous checkpoint intact. Nodes are found
by their names, which depend only on the model's structure (see
:class:`~deepreservoir.nodes.Node`), so a rebuilt model resumes whatever else
the process built before.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from torch import Tensor

from deepreservoir import io
from deepreservoir.errors import ArtifactError
from deepreservoir.kinds import Scaffolded
from deepreservoir.training.callbacks import Callback

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "latest"]

CHECKPOINT_VERSION = 1


def latest(directory: Path | None) -> Path | None:
    """The newest complete checkpoint in ``directory``, or ``None``."""
    if directory is None:
        return None
    pointer = directory / "LATEST"
    if not pointer.is_file():
        return None
    target = directory / pointer.read_text().strip()
    return target if target.is_dir() else None


def _generations(model) -> dict[str, int]:
    return {name: node.generation_ for name, node in model.nodes.items()
            if isinstance(node, Scaffolded) and node.built}


def _node(model, name: str, where: Path):
    if name not in model.nodes:
        raise ArtifactError(
            f"The checkpoint {where} refers to node {name!r}, which this model does not have "
            f"(it has {', '.join(model.nodes)}). Resume with the model the checkpoint was "
            f"written for.")
    return model.nodes[name]


class Checkpoint(Callback):
    """Write a checkpoint every ``every`` epochs (and after the last); resume from one.

    Parameters
    ----------
    directory : path
    every : int >= 1
    resume : bool
        Continue from the newest checkpoint in ``directory`` if there is one.
    """

    def __init__(self, directory: str | os.PathLike, every: int = 1,
                 resume: bool = False) -> None:
        self.directory = Path(directory)
        self.every = int(every)
        self.resume = bool(resume)

    def kept(self) -> Path | None:
        """The newest checkpoint on disk."""
        return latest(self.directory)

    def on_fit_begin(self, trainer):
        if self.resume and latest(self.directory) is not None:
            self._load(trainer)

    def on_epoch_end(self, trainer, epoch, logs):
        done = epoch + 1
        if done % self.every == 0 or done == trainer.config.epochs:
            self._write(trainer, done)
        return None

    # --------------------------------------------------------------- writing
    def _write(self, trainer, epoch: int) -> None:
        from safetensors.torch import save_file

        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch:05d}"
        staging = directory / f".{name}.tmp-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        io.save(trainer.model, staging / "model")
        tensors, scalars = _flatten_optimizer(trainer.optimizer.state_dict())
        save_file(tensors, str(staging / "optimizer.safetensors"))
        meta = {"format": "deepreservoir-checkpoint", "version": CHECKPOINT_VERSION,
                "epoch": epoch, "config": trainer.config.fingerprint(),
                "history": trainer.history, "gates": trainer.gates, "optimizer": scalars,
                "generations": _generations(trainer.model)}
        (staging / "trainer.json").write_text(json.dumps(meta, indent=1))
        for file in staging.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
        final = directory / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        pointer = directory / f".LATEST.tmp-{os.getpid()}"
        pointer.write_text(name)
        os.replace(pointer, directory / "LATEST")
        for old in directory.glob("epoch-*"):
            if old.name != name and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    # --------------------------------------------------------------- reading
    def _load(self, trainer) -> None:
        from safetensors.torch import load_file

        folder = latest(self.directory)
        meta_path = folder / "trainer.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as error:
            raise ArtifactError(
                f"The checkpoint file {meta_path} cannot be read: {error}.") from None
        if meta.get("format") != "deepreservoir-checkpoint" or \
                meta.get("version", 0) > CHECKPOINT_VERSION:
            raise ArtifactError(
                f"The checkpoint file {meta_path} is not a deepreservoir checkpoint of version "
                f"<= {CHECKPOINT_VERSION}. Got format {meta.get('format')!r}, version "
                f"{meta.get('version')!r}.")
        stored = meta["config"]
        current = trainer.config.fingerprint()
        changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
        if changed:
            detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}"
                               for k, (a, b) in changed.items())
            raise ArtifactError(
                f"Cannot resume from {folder}: the training options differ ({detail}). Resume "
                f"with the same options, or start afresh with resume=False.")
        model = trainer.model
        for name, generation in meta.get("generations", {}).items():
            node = _node(model, name, folder)
            if node.generation_ != generation:
                node.resample(generation)
        io.load_state_into(model, folder / "model")
        tensors = load_file(str(folder / "optimizer.safetensors"))
        scalars = meta["optimizer"]
        state = {"param_groups": scalars["param_groups"], "state": {}}
        for index, entry in scalars["state"].items():
            state["state"][int(index)] = {
                key: (tensors[f"{index}.{key}"] if value == "tensor" else value)
                for key, value in entry.items()}
        trainer.optimizer.load_state_dict(state)
        trainer.history = list(meta["history"])
        trainer.gates = list(meta.get("gates", [{} for _ in trainer.history]))
        trainer.start_epoch = int(meta["epoch"])


def _flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        entry = {}
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
                entry[key] = "tensor"
            else:
                entry[key] = value
        scalars["state"][str(index)] = entry
    return tensors, scalars
