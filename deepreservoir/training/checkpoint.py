"""Checkpoints of gradient training, written atomically and resumed bit for bit.

Layout of a checkpoint directory::

    LATEST                  the name of the newest complete checkpoint
    epoch-00003/
        model/              the model as an artifact (deepreservoir.io)
        optimizer.safetensors
        trainer.json        epoch, options, history, gates, scaffold generations

A checkpoint is assembled in a hidden staging directory
(``.epoch-00003.tmp-<pid>``) and renamed into place, then ``LATEST`` is replaced
atomically (through ``.LATEST.tmp-<pid>``); older checkpoints are removed last.
A run killed at any point leaves the previous checkpoint intact; its staging
leftovers are removed when a later run starts or finishes, only those whose
writer (the pid in the name) no longer runs, never a live run's.

The directory is checked before the first epoch: it is created if missing, and
a path that is a file, or a folder this process cannot write, is refused at
once rather than after an epoch of work. A checkpoint is written only for a
good state (finite parameters and outputs, see
:mod:`deepreservoir.training.trainer`). Nodes are found
by their names, which depend only on the model's structure (see
:class:`~deepreservoir.nodes.Node`), so a rebuilt model resumes whatever else
the process built before.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from torch import Tensor

from deepreservoir import io
from deepreservoir._processes import pid_alive
from deepreservoir.errors import ArtifactError, ParameterError, format_value
from deepreservoir.kinds import Scaffolded
from deepreservoir.training.callbacks import Callback
from deepreservoir.training.options import is_int

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "latest"]

CHECKPOINT_VERSION = 1

#: Staging names: ``.epoch-00003.tmp-<pid>``, ``.LATEST.tmp-<pid>``, ``.write-test.tmp-<pid>``.
_STAGING = re.compile(r"^\.(epoch-\d+|LATEST|write-test)\.tmp-(\d+)$")


def remove_stale_staging(directory: Path) -> list[Path]:
    """Remove the staging leftovers of ``directory`` whose writer no longer runs.

    A leftover is a hidden ``.epoch-NNNNN.tmp-<pid>`` folder or
    ``.LATEST.tmp-<pid>`` (``.write-test.tmp-<pid>``) file; its writer is the pid
    in its name. A leftover of this process counts as stale too: call this only
    when none of its writes is under way. Another live process's are kept
    (on Windows, where liveness cannot be checked safely, every other pid
    counts as live).

    Parameters
    ----------
    directory : Path

    Returns
    -------
    list of Path
        What was removed.
    """
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _STAGING.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(2))
        if pid != os.getpid() and pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


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

    Only good states are written (:meth:`Trainer.state_problem
    <deepreservoir.training.Trainer.state_problem>` is checked again, in case a
    callback listed before this one changed the state).

    Parameters
    ----------
    directory : path
    every : int >= 1
    resume : bool
        Continue from the newest checkpoint in ``directory`` if there is one.

    Raises
    ------
    ParameterError
        ``directory`` is not a path or ``every`` not an int >= 1; at the start
        of training (:meth:`check_directory`), a directory that is a file or
        cannot be created or written.
    """

    #: How messages name the directory (``fit`` says its ``checkpoint`` parameter).
    parameter = "The 'directory' parameter of Checkpoint"

    def __init__(self, directory: str | os.PathLike, every: int = 1,
                 resume: bool = False) -> None:
        if not isinstance(directory, (str, os.PathLike)) or str(directory) == "":
            raise ParameterError(f"{self.parameter} must be a path to a folder. Got "
                                 f"{format_value(directory)}.")
        if not (is_int(every) and every >= 1):
            raise ParameterError(f"The 'every' parameter of Checkpoint must be an int >= 1. "
                                 f"Got {format_value(every)}.")
        self.directory = Path(directory)
        self.every = int(every)
        self.resume = bool(resume)

    def kept(self) -> Path | None:
        """The newest checkpoint on disk."""
        return latest(self.directory)

    def check_directory(self) -> None:
        """Create the directory if missing and make sure this process can write in it.

        Stale staging leftovers (see :func:`remove_stale_staging`) are removed.

        Raises
        ------
        ParameterError
            The path is a file (or another non-folder), or the folder cannot be
            created or written; the message names the path and why.
        """
        path = self.directory
        if path.exists() and not path.is_dir():
            raise ParameterError(
                f"{self.parameter} must be a folder for checkpoints. Got {str(path)!r}, which "
                f"is a file. Give a folder (it is created if missing).")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ParameterError(
                f"{self.parameter} must be a folder this process can create. Got "
                f"{str(path)!r}, which cannot be created: {error.strerror or error}.") from None
        remove_stale_staging(path)
        probe = path / f".write-test.tmp-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise ParameterError(
                f"{self.parameter} must be a folder this process can write. Got "
                f"{str(path)!r}, a folder it cannot write in: {error.strerror or error}."
            ) from None

    def on_fit_begin(self, trainer):
        self.check_directory()
        if self.resume and latest(self.directory) is not None:
            self._load(trainer)

    def on_epoch_end(self, trainer, epoch, logs):
        done = epoch + 1
        if done % self.every == 0 or done == trainer.config.epochs:
            problem = trainer.state_problem()
            if problem is not None:  # a callback before this one broke the checked state
                trainer.fail(f"The checkpoint of epoch {done} was not written: after the "
                             f"callbacks before Checkpoint, {problem}")
            self._write(trainer, done)
        return None

    def on_fit_end(self, trainer):
        remove_stale_staging(self.directory)

    # --------------------------------------------------------------- writing
    def _write(self, trainer, epoch: int) -> None:
        try:
            self._write_files(trainer, epoch)
        except OSError as error:
            kept = self.kept()
            raise ArtifactError(
                f"The checkpoint of epoch {epoch} could not be written in {self.directory}: "
                f"{error}. The model in memory holds that epoch's state (save it with "
                f"model.save); " + (f"the previous checkpoint ({kept.name}) is intact."
                                    if kept is not None else "no checkpoint was kept.")
            ) from None
        finally:
            remove_stale_staging(self.directory)

    def _write_files(self, trainer, epoch: int) -> None:
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
        if len(state["param_groups"]) == 1 < len(trainer.optimizer.param_groups):
            state = _split_single_group(state, trainer)
        trainer.optimizer.load_state_dict(state)
        trainer.history = list(meta["history"])
        trainer.gates = list(meta.get("gates", [{} for _ in trainer.history]))
        trainer.start_epoch = int(meta["epoch"])


def _split_single_group(state: dict, trainer) -> dict:
    """An optimizer state from before β got its own group (one group over ``trainer.params``),
    renumbered onto today's groups (decayed parameters, then the gates without decay)."""
    position = {id(p): i for i, p in enumerate(trainer.params)}
    order = [position[id(p)] for group in trainer.optimizer.param_groups
             for p in group["params"]]
    saved = state["param_groups"][0]
    groups, start = [], 0
    for group in trainer.optimizer.param_groups:
        count = len(group["params"])
        groups.append({**saved, "weight_decay": group["weight_decay"],
                       "params": list(range(start, start + count))})
        start += count
    renumbered = {new: state["state"][old] for new, old in enumerate(order)
                  if old in state["state"]}
    return {"param_groups": groups, "state": renumbered}


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
