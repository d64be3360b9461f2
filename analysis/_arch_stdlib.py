"""The Python standard library's own source files as local text, and token arrays from files.

Not a study (the leading underscore). The text classifier (``_arch_text``) and
the language model (``_arch_lm``) of the ``architectures`` study read the
``.py`` files of the running interpreter's standard library
(``sysconfig.get_paths()["stdlib"]``): they are on every machine, nothing is
downloaded. Every listing is sorted and every choice is drawn by a
:class:`numpy.random.Generator`, so the data are a function of the seed (and
of the Python version, whose standard library they are). Files are read as
UTF-8 with ``errors="replace"`` and handed on as their UTF-8 bytes (a byte
vocabulary of 256).

Test folders inside a package (``unittest/test``, ``idlelib/idle_test``) are
left out, so a package's files are its own code.

This module also checks the integer token arrays of a user's ``.npz`` file
(:func:`token_array`), which both families accept.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepreservoir.data_files import read_npz
from deepreservoir.errors import DataError

__all__ = [
    "BYTES",
    "group_files",
    "python_version",
    "read_archive",
    "read_bytes",
    "snippets",
    "split_by_size",
    "stdlib_dir",
    "token_array",
    "top_level_files",
]

#: Size of the byte vocabulary.
BYTES = 256

_TEST_FOLDERS = ("test", "tests", "idle_test")


def stdlib_dir() -> Path:
    """The folder of the running interpreter's standard library.

    Raises
    ------
    DataError
        When the folder does not exist (an embedded Python without its sources).
    """
    folder = Path(sysconfig.get_paths()["stdlib"])
    if not folder.is_dir():
        raise DataError(f"The Python standard library's folder {str(folder)!r} does not exist; "
                        f"the text families need its .py sources (or a --data file).")
    return folder


def _is_test(path: Path, root: Path) -> bool:
    return any(part in _TEST_FOLDERS for part in path.relative_to(root).parts[:-1])


def group_files(group: str, minimum: int = 2) -> list[Path]:
    """The sorted ``.py`` files of one standard-library package (or the module ``group.py``).

    Parameters
    ----------
    group : str
        A top-level name: ``"email"``, ``"asyncio"``, ``"json"``...
    minimum : int
        Fewest files the group must have (a held-out file needs a training file beside it).

    Raises
    ------
    DataError
        When the group has fewer than ``minimum`` source files here.
    """
    root = stdlib_dir()
    folder = root / group
    if folder.is_dir():
        files = sorted(p for p in folder.rglob("*.py") if not _is_test(p, folder))
    else:
        files = [root / f"{group}.py"] if (root / f"{group}.py").is_file() else []
    if len(files) < minimum:
        raise DataError(f"The standard-library group {group!r} has {len(files)} .py file(s) in "
                        f"{str(root)!r}; expected at least {minimum}.")
    return files


def python_version() -> str:
    """``"3.11"``: whose standard library the data come from."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def top_level_files() -> list[Path]:
    """The sorted ``.py`` modules directly in the standard library's folder (no packages)."""
    return sorted(stdlib_dir().glob("*.py"))


def read_bytes(path: str | os.PathLike) -> np.ndarray:
    """A source file's text (UTF-8, ``errors="replace"``) as its UTF-8 bytes, ``uint8``."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def split_by_size(texts: Sequence[np.ndarray], rng: np.random.Generator,
                  sizes: Sequence[int | None]) -> list[list[int]]:
    """Split files into disjoint sets of at least the given byte counts, in a seeded order.

    The files are taken in the order of ``rng.permutation``; each set takes files
    until it holds ``sizes[k]`` bytes (``None``: all the files that are left).
    Every set but a trailing ``None`` gets at least one file, and at least one file
    is left for a trailing ``None``.

    Returns
    -------
    list of list of int
        The indices of ``texts`` in each set, sorted.
    """
    order = [int(i) for i in rng.permutation(len(texts))]
    sets: list[list[int]] = []
    for position, size in enumerate(sizes):
        later = len(sizes) - position - 1
        if size is None:
            chosen, order = order, []
        else:
            chosen, held = [], 0
            while order and (held < size or not chosen) and len(order) > later:
                index = order.pop(0)
                chosen.append(index)
                held += len(texts[index])
        sets.append(sorted(chosen))
    return sets


def snippets(texts: Sequence[np.ndarray], count: int, length: int,
             rng: np.random.Generator) -> np.ndarray:
    """``count`` windows of ``length`` bytes at random places of the files, shape (count, length).

    A file is drawn with probability proportional to its number of windows (files
    shorter than ``length`` are never drawn), then a start uniformly within it.

    Raises
    ------
    DataError
        When no file is as long as ``length``.
    """
    windows = np.array([max(len(t) - length + 1, 0) for t in texts], dtype=np.float64)
    if windows.sum() == 0:
        raise DataError(f"No source file holds a snippet of {length} bytes.")
    files = rng.choice(len(texts), size=count, p=windows / windows.sum())
    out = np.empty((count, length), dtype=np.uint8)
    for row, index in enumerate(files):
        start = int(rng.integers(0, int(windows[index])))
        out[row] = texts[index][start:start + length]
    return out


def read_archive(path: str | os.PathLike, expected: str) -> dict[str, np.ndarray]:
    """The arrays of a user's ``.npz`` file, or a :class:`DataError` naming it and ``expected``."""
    return read_npz(path, "data file", expected)


def token_array(arrays: dict[str, np.ndarray], key: str, path: str | os.PathLike, *,
                ndim: int, vocab: int, minimum: int = 1) -> np.ndarray:
    """The integer token array ``key`` of a user's file, checked, as ``int64``.

    Parameters
    ----------
    arrays : dict
        The file's arrays (:func:`read_archive`).
    key : str
        The array's name.
    path : path
        The file (named in errors).
    ndim : int
        2 for ``(samples, length)`` snippets, 1 for one ``(T,)`` stream.
    vocab : int
        Tokens must lie in ``0…vocab−1``.
    minimum : int
        Fewest entries along the first axis.

    Raises
    ------
    DataError
        Missing key, wrong shape, non-integer or non-finite values, or tokens out of range.
    """
    shown = str(path)
    if key not in arrays:
        raise DataError(f"The data file {shown!r} has no {key!r} array; it holds "
                        f"{sorted(arrays) or 'nothing'}.")
    array = np.asarray(arrays[key])
    shape = "(samples, length)" if ndim == 2 else "(T,)"
    if array.ndim != ndim or array.shape[0] < minimum or array.size == 0:
        raise DataError(f"The array {key!r} of the data file {shown!r} must have shape {shape} "
                        f"with at least {minimum} entries along the first axis. Got shape "
                        f"{array.shape}.")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise DataError(f"The array {key!r} of the data file {shown!r} must hold integer "
                            f"tokens. Got {bad} NaN/inf value(s).")
        if not np.array_equal(array, np.round(array)):
            raise DataError(f"The array {key!r} of the data file {shown!r} must hold integer "
                            f"tokens. Got non-integer floats.")
    elif array.dtype.kind not in "biu":
        raise DataError(f"The array {key!r} of the data file {shown!r} must hold integer "
                        f"tokens. Got dtype {array.dtype}.")
    tokens = array.astype(np.int64)
    if tokens.min() < 0 or tokens.max() >= vocab:
        raise DataError(f"The array {key!r} of the data file {shown!r} must hold tokens in "
                        f"0…{vocab - 1}. Got the range {tokens.min()}…{tokens.max()}.")
    return tokens
