"""Find, load and run the paper-reproduction studies of the top-level ``analysis/`` folder.

A *study* is a file ``analysis/<name>.py`` (files whose name starts with ``_``
are helpers, not studies). It defines

* ``TITLE: str`` — a one-line title;
* ``PAPER: str`` — one line naming the table or figure of the paper it reproduces;
* ``run(out_dir, *, quick=False, seed=0, progress=True, data=None, recipe="default")
  -> dict`` (``data``: a user's ``.npz`` file in place of the study's built-in
  data; ``recipe``: ``"default"`` or ``"paper"``; a study that has no use for one
  of them may leave it out, and is then refused it by name), which writes
  ``<out_dir>/<name>.nc`` (an xarray Dataset whose attrs record the
  configuration and the run time in seconds), ``<out_dir>/<name>.png`` and
  ``<out_dir>/<name>.md`` (the paper's number and ours side by side), and
  returns ``{"dataset": Dataset, "summary": str, "claims": {name: bool},
  "files": [paths]}``;
* optionally ``DATA_KIND = "series"``: its ``data`` is one time series (``X``, ``y``
  per step, :func:`~deepreservoir.data_files.load_series_npz`) rather than a
  classification set (:func:`~deepreservoir.data_files.load_npz`).

The studies' sources live in the repository's top-level ``analysis/`` folder
and ship with the package as ``deepreservoir._studies`` (a mapping in
``pyproject.toml``), so ``deepreservoir reproduce`` works after a plain
``pip install`` from any folder. They are loaded by path with :mod:`importlib`,
and a study imports its helpers with :func:`load_helper`.

The folder is, in order: an explicit ``studies_dir``, ``$DEEPRESERVOIR_STUDIES``,
or the studies shipped with the package. A folder that merely happens to be
called ``./analysis`` in the current directory is never imported unless named
(running arbitrary code found there would be a surprise).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepreservoir.errors import DataError, ParameterError

__all__ = [
    "ENV_VARIABLE",
    "RECIPES",
    "StudyResult",
    "available_studies",
    "check_result",
    "find_studies_dir",
    "load_helper",
    "load_study",
    "run_study",
    "shipped_studies_dir",
]

#: Environment variable naming the studies folder.
ENV_VARIABLE = "DEEPRESERVOIR_STUDIES"

#: The training recipes a study may offer (``--recipe``).
RECIPES = ("default", "paper")

#: What ``run()`` must return (key → type).
StudyResult = dict[str, Any]

_MODULE_PREFIX = "deepreservoir_studies."


def _candidates(studies_dir: str | os.PathLike | None) -> list[tuple[str, Path]]:
    found = []
    if studies_dir is not None:
        found.append(("--studies-dir", Path(studies_dir)))
    env = os.environ.get(ENV_VARIABLE)
    if env:
        found.append((f"${ENV_VARIABLE}", Path(env)))
    found.append(("the studies shipped with deepreservoir", shipped_studies_dir()))
    return found


def shipped_studies_dir() -> Path:
    """The folder of the studies installed with the package (``deepreservoir._studies``)."""
    spec = importlib.util.find_spec("deepreservoir._studies")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent / "_studies"  # pragma: no cover - broken install


def find_studies_dir(studies_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the studies.

    Parameters
    ----------
    studies_dir : path, optional
        An explicit folder; it must exist (no fallback when it is given).

    Returns
    -------
    Path
        The first existing folder among ``studies_dir``, ``$DEEPRESERVOIR_STUDIES``
        and the studies shipped with the package.

    Raises
    ------
    DataError
        No such folder exists.
    """
    candidates = _candidates(studies_dir)
    if studies_dir is not None:
        path = candidates[0][1]
        if not path.is_dir():
            what = "is a file" if path.exists() else "does not exist"
            raise DataError(f"The studies folder {str(path)!r} (--studies-dir) {what}; "
                            f"expected a folder.")
        return path
    for label, path in candidates:
        if path.is_dir():
            return path
        if label == f"${ENV_VARIABLE}" and path.exists():
            raise DataError(f"${ENV_VARIABLE} points to {str(path)!r}, which is a file; "
                            f"expected a folder of studies.")
    tried = ", ".join(f"{label} ({path})" for label, path in candidates)
    raise DataError(
        f"No studies folder found; tried {tried}. Pass --studies-dir or set {ENV_VARIABLE}.")


def available_studies(studies_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the studies in the folder (``*.py`` not starting with ``_``), sorted."""
    folder = find_studies_dir(studies_dir)
    return sorted(p.stem for p in folder.glob("*.py")
                  if not p.name.startswith("_") and p.stem.isidentifier())


def _load(path: Path, name: str) -> types.ModuleType:
    module_name = _MODULE_PREFIX + name
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd files
        raise DataError(f"Cannot load {str(path)!r} as a Python module.")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    # Registered before executing, so dataclasses and pickling can find the module.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous
        raise
    return module


def load_helper(name: str, studies_dir: str | os.PathLike | None = None) -> types.ModuleType:
    """Load a helper module ``_<name>.py`` (or ``<name>.py``) of the studies folder.

    Examples
    --------
    In a study: ``common = load_helper("_common")``.
    """
    folder = find_studies_dir(studies_dir)
    stem = name if name.startswith("_") else f"_{name}"
    path = folder / f"{stem}.py"
    if not path.is_file():
        raise DataError(f"No helper module {stem!r} in the studies folder {str(folder)!r}.")
    cached = sys.modules.get(_MODULE_PREFIX + stem)
    if cached is not None and Path(getattr(cached, "__file__", "")) == path:
        return cached
    return _load(path, stem)


def load_study(name: str, studies_dir: str | os.PathLike | None = None) -> types.ModuleType:
    """Load the study ``<name>.py`` and check that it defines ``TITLE``, ``PAPER`` and ``run``.

    Raises
    ------
    ParameterError
        No study of that name (the message lists the available ones).
    DataError
        The file does not follow the study contract.
    """
    folder = find_studies_dir(studies_dir)
    names = available_studies(folder)
    if not isinstance(name, str) or name not in names:
        raise ParameterError(
            f"Unknown study {name!r}. Available in {str(folder)!r}: "
            f"{', '.join(names) if names else '(none)'}.")
    module = _load(folder / f"{name}.py", name)
    for attribute, kind in (("TITLE", str), ("PAPER", str)):
        if not isinstance(getattr(module, attribute, None), kind):
            raise DataError(f"The study {name!r} must define {attribute} as a string.")
    if not callable(getattr(module, "run", None)):
        raise DataError(f"The study {name!r} must define run(out_dir, *, quick, seed, progress).")
    return module


def check_result(name: str, result: Any, out_dir: Path) -> StudyResult:
    """Check a study's return value and files against the contract; return it.

    Raises
    ------
    DataError
        A key is missing or has the wrong type, or a promised file was not written.
    """
    import xarray as xr

    if not isinstance(result, Mapping):
        raise DataError(f"The study {name!r} must return a dict. Got {type(result).__name__}.")
    expected = {"dataset": xr.Dataset, "summary": str, "claims": Mapping, "files": list}
    for key, kind in expected.items():
        if not isinstance(result.get(key), kind):
            raise DataError(
                f"The study {name!r} must return {key!r} as {kind.__name__}. "
                f"Got {type(result.get(key)).__name__}.")
    for claim, value in result["claims"].items():
        if not isinstance(value, bool):
            raise DataError(
                f"The study {name!r} must give each claim as a bool. Got {claim}={value!r}.")
    for suffix in ("nc", "png", "md"):
        path = Path(out_dir) / f"{name}.{suffix}"
        if not path.is_file():
            raise DataError(f"The study {name!r} did not write {str(path)!r}.")
    return dict(result)


def run_study(name: str, out_dir: str | os.PathLike, *, quick: bool = False, seed: int = 0,
              progress: bool = True, studies_dir: str | os.PathLike | None = None,
              data: str | os.PathLike | None = None, recipe: str = "default") -> StudyResult:
    """Load and run one study, then check its result.

    Parameters
    ----------
    name, out_dir, quick, seed, progress, studies_dir
        The study, where its files go, and how it runs.
    data : path, optional
        A user's ``.npz`` file (``X``, ``y``, optionally ``X_test``, ``y_test``)
        in place of the study's built-in data.
    recipe : {"default", "paper"}
        The training recipe of the MLP studies (see ``analysis/_common.py``).

    Returns
    -------
    dict
        The study's result, plus ``"seconds"`` (wall time of ``run``).

    Raises
    ------
    ParameterError
        ``data`` or ``recipe`` is given to a study that does not take it, or
        ``recipe`` is unknown.
    DataError
        ``data`` is not a readable ``.npz`` file with ``X`` and ``y``.
    """
    import inspect

    from deepreservoir.data_files import load_npz, load_series_npz

    if recipe not in RECIPES:
        raise ParameterError(f"The 'recipe' parameter of run_study must be one of "
                             f"{', '.join(map(repr, RECIPES))}. Got {recipe!r}.")
    module = load_study(name, studies_dir)
    accepted = inspect.signature(module.run).parameters
    extra: dict[str, Any] = {}
    for option, value, default, flag in (("data", data, None, "--data"),
                                         ("recipe", recipe, "default", "--recipe")):
        if value == default:
            continue
        if option not in accepted:
            raise ParameterError(
                f"The study {name!r} does not take the '{option}' parameter ({flag}); "
                f"it runs on its own set-up. Got {value!r}.")
        extra[option] = value
    if data is not None:  # refuse a bad file before any training
        series = getattr(module, "DATA_KIND", "classification") == "series"
        (load_series_npz if series else load_npz)(data)
        extra["data"] = str(data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    result = module.run(out, quick=bool(quick), seed=int(seed), progress=bool(progress),
                        **extra)
    seconds = time.perf_counter() - began
    checked = check_result(name, result, out)
    checked["seconds"] = seconds
    return checked
