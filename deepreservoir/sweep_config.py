"""A sweep's configuration: the grid (:class:`SweepConfig`) and the training options
(:class:`TrainConfig`), read and checked from TOML (:func:`load_config`).

Every bad key, type or value is a :class:`~deepreservoir.errors.DataError` naming
the file and the key. :mod:`deepreservoir.sweep` runs the grid.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deepreservoir.errors import DataError

__all__ = ["DATASETS", "SweepConfig", "TrainConfig", "load_config", "parse_config", "read_toml"]

#: Built-in data sets a sweep can use (besides a user's ``.npz`` file).
DATASETS = ("mnist1d", "digits")


@dataclass(frozen=True)
class TrainConfig:
    """Training options of one run (the paper's MNIST recipe by default, lr excepted).

    Attributes
    ----------
    epochs, batch_size, weight_decay, dropout, validation_split
        As in :func:`deepreservoir.training.fit` and :func:`deepreservoir.scaffold_mlp`.
    lr : float
        Learning rate of LottaLoRA runs.
    full_lr : float
        Learning rate of fully trained runs.
    alpha : float or None
        LoRA α (``None``: α = r, scale 1).
    rslora : bool
        Scale α/√r instead of α/r.
    scale : {"fan_in", "sigma0.1", "he"} or float
        The scaffold's scale (:data:`deepreservoir.SCAFFOLD_SCALES`).
    b_init : {"zeros", "kaiming"}
        How the adapters' ``B`` starts.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-2
    full_lr: float = 3e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1
    validation_split: float = 0.1
    alpha: float | None = None
    rslora: bool = False
    scale: str | float = "fan_in"
    b_init: str = "zeros"


@dataclass(frozen=True)
class SweepConfig:
    """A grid of runs, as read from TOML.

    Attributes
    ----------
    dataset : {"mnist1d", "digits"} or path
        A built-in set or a user's ``.npz`` file (``X``, ``y``, optionally
        ``X_test``, ``y_test``); a relative path in a TOML file is relative to that file.
    num_samples : int or None
        Samples generated (mnist1d) or kept for training (digits); None: all.
    ranks, seeds, families, presets
        The grid axes.
    full : bool
        Also train the fully trained baseline per preset and seed.
    train : TrainConfig
    """

    dataset: str = "mnist1d"
    num_samples: int | None = None
    ranks: tuple[int, ...] = (1, 4, 16)
    seeds: tuple[int, ...] = (0,)
    families: tuple[str, ...] = ("normal",)
    presets: tuple[str, ...] = ("medium",)
    full: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)

    def fingerprint(self) -> str:
        """Hash of what changes a cell's result (data and training options, not the axes)."""
        from deepreservoir.data_files import file_digest, is_data_file

        data = {"dataset": self.dataset, "num_samples": self.num_samples,
                "train": asdict(self.train)}
        if is_data_file(self.dataset) and Path(self.dataset).is_file():
            data["data_sha256"] = file_digest(self.dataset)
        payload = json.dumps(data, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def cells(self) -> list[tuple[str, str, int, int]]:
        """Every ``(preset, family, rank, seed)`` to train; full training has family "full"."""
        grid = [(p, f, r, s) for p in self.presets for f in self.families for r in self.ranks
                for s in self.seeds]
        if self.full:
            grid += [(p, "full", 0, s) for p in self.presets for s in self.seeds]
        return grid


def _bad(where: str, key: str, value: Any, expected: str) -> DataError:
    return DataError(f"{where}: '{key}' must be {expected}. Got {value!r}.")


def _int_list(where: str, key: str, value: Any, low: int) -> tuple[int, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low
                       for v in value)):
        raise _bad(where, key, value, f"a non-empty list of ints >= {low}")
    if len(set(value)) != len(value):
        raise _bad(where, key, value, "a list without repeats")
    return tuple(value)


def _str_list(where: str, key: str, value: Any, allowed: Iterable[str]) -> tuple[str, ...]:
    allowed = list(allowed)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _bad(where, key, value, "a non-empty list of strings")
    for v in value:
        if v not in allowed:
            raise _bad(where, key, v, f"one of {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise _bad(where, key, value, "a list without repeats")
    return tuple(value)


def _train_config(where: str, table: Any) -> TrainConfig:
    if not isinstance(table, dict):
        raise _bad(where, "train", table, "a table")
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise DataError(f"{where}: unknown key(s) in [train]: {', '.join(unknown)}. "
                        f"Known: {', '.join(known)}.")
    values = {}
    for key, value in table.items():
        if key in ("epochs", "batch_size"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            expected = "an int >= 1"
        elif key in ("lr", "full_lr"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            expected = "a number > 0"
        elif key == "weight_decay":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            expected = "a number >= 0"
        elif key in ("dropout", "validation_split"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
            expected = "a number in [0, 1)"
        elif key == "alpha":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            expected = "a number > 0 (leave it out for α = r)"
        elif key == "scale":
            from deepreservoir.nodes import SCAFFOLD_SCALES

            ok = value in SCAFFOLD_SCALES or (isinstance(value, (int, float))
                                              and not isinstance(value, bool) and value > 0)
            expected = f"one of {', '.join(SCAFFOLD_SCALES)} or a number > 0 (an absolute σ)"
        elif key == "b_init":
            ok = value in ("zeros", "kaiming")
            expected = "'zeros' or 'kaiming'"
        else:  # rslora
            ok = isinstance(value, bool)
            expected = "true or false"
        if not ok:
            raise _bad(where, f"train.{key}", value, expected)
        numeric = ("lr", "full_lr", "weight_decay", "dropout", "validation_split", "alpha")
        values[key] = float(value) if key in numeric or (
            key == "scale" and not isinstance(value, str)) else value
    return TrainConfig(**values)


def parse_config(document: Mapping[str, Any], where: str = "config",
                 base: Path | None = None) -> SweepConfig:
    """Validate a parsed TOML document (see :func:`load_config`).

    ``base``: the folder relative data-file paths are resolved against (the TOML's folder).
    """
    from deepreservoir.data_files import is_data_file
    from deepreservoir.families import FAMILIES
    from deepreservoir.nodes import PRESETS

    allowed_top = {"sweep", "train"}
    unknown = sorted(set(document) - allowed_top)
    if unknown:
        raise DataError(f"{where}: unknown table(s) {', '.join(unknown)}; expected [sweep] and "
                        f"optionally [train].")
    if "sweep" not in document or not isinstance(document["sweep"], dict):
        raise DataError(f"{where}: missing the [sweep] table.")
    sweep = document["sweep"]
    known = {"dataset", "num_samples", "ranks", "seeds", "families", "presets", "full"}
    unknown = sorted(set(sweep) - known)
    if unknown:
        raise DataError(f"{where}: unknown key(s) in [sweep]: {', '.join(unknown)}. "
                        f"Known: {', '.join(sorted(known))}.")
    values: dict[str, Any] = {}
    if "dataset" in sweep:
        dataset = sweep["dataset"]
        if is_data_file(dataset):
            path = Path(dataset).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            if not path.is_file():
                raise _bad(where, "sweep.dataset", dataset,
                           f"an existing .npz file (looked for {str(path)!r})")
            dataset = str(path)
        elif dataset not in DATASETS:
            raise _bad(where, "sweep.dataset", dataset,
                       f"one of {', '.join(DATASETS)} or a path to a .npz file")
        values["dataset"] = dataset
    if "num_samples" in sweep:
        n = sweep["num_samples"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 20:
            raise _bad(where, "sweep.num_samples", n, "an int >= 20")
        values["num_samples"] = n
    if "ranks" in sweep:
        values["ranks"] = _int_list(where, "sweep.ranks", sweep["ranks"], 1)
    if "seeds" in sweep:
        values["seeds"] = _int_list(where, "sweep.seeds", sweep["seeds"], 0)
    if "families" in sweep:
        values["families"] = _str_list(where, "sweep.families", sweep["families"],
                                       sorted(FAMILIES))
    if "presets" in sweep:
        values["presets"] = _str_list(where, "sweep.presets", sweep["presets"], list(PRESETS))
    if "full" in sweep:
        if not isinstance(sweep["full"], bool):
            raise _bad(where, "sweep.full", sweep["full"], "true or false")
        values["full"] = sweep["full"]
    values["train"] = _train_config(where, document.get("train", {}))
    config = SweepConfig(**values)
    for preset in config.presets:
        narrowest = min((_input_width(config.dataset), *PRESETS[preset]))
        too_big = [r for r in config.ranks if r > narrowest]
        if too_big:
            raise DataError(f"{where}: rank(s) {too_big} exceed the narrowest layer ({narrowest}) "
                            f"of preset {preset!r}; the rank must be <= min(d_in, d_out).")
    return config


def _input_width(dataset: str) -> int:
    from deepreservoir.data_files import is_data_file, load_npz

    if is_data_file(dataset):
        return int(load_npz(dataset)["x_train"].shape[1])
    return {"mnist1d": 40, "digits": 64}[dataset]


def read_toml(path: str | os.PathLike, what: str = "sweep config") -> dict[str, Any]:
    """The parsed TOML document at ``path``.

    Raises
    ------
    DataError
        The file is missing, is a directory, is unreadable or is not valid TOML;
        ``what`` names it in the message.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    path = Path(path)
    if not path.is_file():
        state = ("is a directory" if path.is_dir() else "is not a regular file" if path.exists()
                 else "does not exist")
        raise DataError(f"The {what} {str(path)!r} {state}; expected a TOML file.")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"The {what} {str(path)!r} is not valid TOML: {error}.") from None
    except OSError as error:
        raise DataError(f"The {what} {str(path)!r} could not be read "
                        f"({error.strerror or error}); expected a readable TOML file.") from None


def load_config(path: str | os.PathLike) -> SweepConfig:
    """Read and validate a sweep's TOML file (the LottaLoRA grid, table ``[sweep]``).

    Raises
    ------
    DataError
        The file is missing, is a directory, is not valid TOML, or has an unknown or bad key.
    """
    document = read_toml(path)
    return parse_config(document, where=str(path), base=Path(path).parent)
