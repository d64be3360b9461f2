"""Graph helpers that the ``gcn`` and ``gin`` families of the ``architectures`` study share.

Not a study (the leading underscore); loaded by path with
``load_helper("_arch_graphs", folder)``.

* :func:`undirected_edges`: a networkx graph as a PyTorch Geometric ``edge_index``
  (both directions of every edge);
* :func:`read_archive`, :func:`fail` and the array checks: a user's ``.npz`` file
  read and checked, every problem a :class:`~deepreservoir.errors.DataError`
  that names the file, the key, what it holds and what was expected;
* :func:`seeded_split` and :func:`standardised`: splits and feature scaling.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepreservoir.errors import DataError

__all__ = ["binary_labels", "bool_masks", "class_labels", "edge_array", "fail",
           "feature_matrix", "index_splits", "read_archive", "seeded_split", "standardised",
           "undirected_edges"]


def undirected_edges(graph, offset: int = 0) -> np.ndarray:
    """Both directions of every edge of a networkx graph with nodes ``0…n−1``.

    Parameters
    ----------
    graph : networkx.Graph
    offset : int
        Added to every node number (graphs concatenated one after another).

    Returns
    -------
    ndarray
        ``(2, 2·E)`` int64, sorted by source node, then target node.
    """
    pairs = np.asarray(list(graph.edges()), dtype=np.int64).reshape(-1, 2)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]  # no self-loops: GCNConv and GINConv add x itself
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = both[np.lexsort((both[:, 1], both[:, 0]))]
    return np.ascontiguousarray(both.T) + offset


def fail(path: str, key: str, received: str, expected: str) -> DataError:
    """The error for one bad array of a user's file."""
    return DataError(f"The array {key!r} of the data file {path!r} {received}; expected "
                     f"{expected}.")


def read_archive(path: str | os.PathLike, required: Sequence[str], keys: str
                 ) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file, after checking that the ``required`` keys are there.

    Raises
    ------
    DataError
        When the file is missing or unreadable, or a required key is missing
        (``keys``, the documented contents, is quoted in the message).
    """
    shown = str(path)
    if not Path(path).is_file():
        raise DataError(f"The data file {shown!r} does not exist; expected a .npz archive "
                        f"with {keys}.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, AttributeError, EOFError) as error:
        raise DataError(f"The data file {shown!r} could not be read as a .npz archive "
                        f"({error}); expected {keys}.") from None
    for key in required:
        if key not in arrays:
            raise DataError(f"The data file {shown!r} has no array {key!r} (it holds "
                            f"{sorted(arrays)}); expected {keys}.")
    return arrays


def _integers(array: np.ndarray, key: str, path: str, expected: str) -> np.ndarray:
    """``array`` as int64; floats must hold whole numbers."""
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and np.array_equal(array, np.round(array))):
            raise fail(path, key, "holds non-integer or non-finite floats", expected)
    elif array.dtype.kind not in "biu":
        raise fail(path, key, f"has dtype {array.dtype}", expected)
    return array.astype(np.int64)


def feature_matrix(array: np.ndarray, key: str, path: str, rows: int | None = None
                   ) -> np.ndarray:
    """Node features as float32 ``(rows, F)``; a 1-D array is one feature per node."""
    expected = ("real node features of shape (nodes, F)" if rows is None
                else f"real node features of shape ({rows}, F)")
    if array.dtype.kind not in "biuf":
        raise fail(path, key, f"has dtype {array.dtype}", expected)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1 or (
            rows is not None and array.shape[0] != rows):
        raise fail(path, key, f"has shape {array.shape}", expected)
    values = array.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise fail(path, key, f"holds {int(bad.sum())} NaN/inf value(s), the first at index "
                   f"{first}", "finite " + expected)
    return values


def class_labels(array: np.ndarray, key: str, path: str, count: int) -> np.ndarray:
    """Integer class labels ``0…K−1`` of shape ``(count,)`` with at least two classes."""
    expected = f"integer class labels 0..K-1 (K >= 2) of shape ({count},)"
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != count:
        raise fail(path, key, f"has shape {array.shape}", expected)
    labels = _integers(array, key, path, expected)
    if labels.min() < 0:
        raise fail(path, key, f"holds the label {labels.min()}", expected)
    if len(np.unique(labels)) < 2:
        raise fail(path, key, f"holds one class only ({labels[0]})", expected)
    return labels


def binary_labels(array: np.ndarray, key: str, path: str, count: int) -> np.ndarray:
    """Labels 0 / 1 of shape ``(count,)`` (or ``(count, 1)``), both present."""
    expected = f"binary labels 0/1 of shape ({count},) or ({count}, 1), both classes present"
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != count:
        raise fail(path, key, f"has shape {array.shape}", expected)
    labels = _integers(array, key, path, expected)
    values = np.unique(labels)
    if not set(values.tolist()) <= {0, 1}:
        raise fail(path, key, f"holds the values {values[:6].tolist()}", expected)
    if len(values) < 2:
        raise fail(path, key, f"holds the class {values[0]} only", expected)
    return labels


def edge_array(array: np.ndarray, key: str, path: str, nodes: int) -> np.ndarray:
    """``edge_index`` as int64 ``(2, E)`` with every node number in ``[0, nodes)``."""
    expected = f"integer node pairs of shape (2, E), each in [0, {nodes})"
    if array.ndim != 2 or array.shape[0] != 2:
        raise fail(path, key, f"has shape {array.shape}", expected)
    edges = _integers(array, key, path, expected)
    if edges.size and (edges.min() < 0 or edges.max() >= nodes):
        worst = int(edges.min()) if edges.min() < 0 else int(edges.max())
        raise fail(path, key, f"holds the node number {worst}", expected)
    return np.ascontiguousarray(edges)


def bool_masks(arrays: dict[str, np.ndarray], keys: Sequence[str], path: str, count: int
               ) -> dict[str, np.ndarray] | None:
    """The optional split masks (all of ``keys`` or none) as index arrays, or None.

    Every mask must be boolean (or 0/1) of shape ``(count,)`` and select at least
    one element; the train and test masks must not overlap.
    """
    present = [key for key in keys if key in arrays]
    if not present:
        return None
    if len(present) != len(keys):
        missing = [key for key in keys if key not in arrays]
        raise DataError(f"The data file {path!r} has {present} but not {missing}; expected "
                        f"all of {list(keys)} or none (then a seeded split is drawn).")
    indices = {}
    for key in keys:
        mask = arrays[key]
        expected = f"a boolean mask of shape ({count},) selecting at least one node"
        if mask.shape != (count,):
            raise fail(path, key, f"has shape {mask.shape}", expected)
        if mask.dtype != np.bool_:
            mask = _integers(mask, key, path, expected)
            if not set(np.unique(mask).tolist()) <= {0, 1}:
                raise fail(path, key, "holds values other than 0 and 1", expected)
        chosen = np.flatnonzero(mask)
        if not len(chosen):
            raise fail(path, key, "selects nothing", expected)
        indices[key] = chosen
    train, test = keys[0], keys[-1]
    overlap = np.intersect1d(indices[train], indices[test])
    if len(overlap):
        raise fail(path, test, f"shares {len(overlap)} node(s) with {train!r}, the first "
                   f"{int(overlap[0])}", f"a mask disjoint from {train!r}")
    return indices


def index_splits(arrays: dict[str, np.ndarray], keys: Sequence[str], path: str, count: int
                 ) -> dict[str, np.ndarray] | None:
    """The optional split index arrays (all of ``keys`` or none), or None.

    Every array holds distinct integers in ``[0, count)``, at least one; the
    train and test indices must not overlap.
    """
    present = [key for key in keys if key in arrays]
    if not present:
        return None
    if len(present) != len(keys):
        missing = [key for key in keys if key not in arrays]
        raise DataError(f"The data file {path!r} has {present} but not {missing}; expected "
                        f"all of {list(keys)} or none (then a seeded split is drawn).")
    indices = {}
    for key in keys:
        expected = f"distinct integer indices in [0, {count}), at least one, shape (n,)"
        array = arrays[key]
        if array.ndim != 1 or not len(array):
            raise fail(path, key, f"has shape {array.shape}", expected)
        chosen = _integers(array, key, path, expected)
        if chosen.min() < 0 or chosen.max() >= count:
            worst = int(chosen.min()) if chosen.min() < 0 else int(chosen.max())
            raise fail(path, key, f"holds the index {worst}", expected)
        if len(np.unique(chosen)) != len(chosen):
            raise fail(path, key, "repeats an index", expected)
        indices[key] = chosen
    train, test = keys[0], keys[-1]
    overlap = np.intersect1d(indices[train], indices[test])
    if len(overlap):
        raise fail(path, test, f"shares {len(overlap)} index(es) with {train!r}, the first "
                   f"{int(overlap[0])}", f"indices disjoint from {train!r}")
    return indices


def seeded_split(count: int, rng: np.random.Generator,
                 fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
                 ) -> dict[str, np.ndarray]:
    """A random train / val / test split of ``count`` items (sorted index arrays).

    Every split gets at least one item.

    Raises
    ------
    DataError
        Fewer than three items.
    """
    if count < 3:
        raise DataError(f"A seeded train / val / test split needs at least 3 items; got "
                        f"{count}.")
    order = rng.permutation(count)
    n_val = max(1, round(fractions[1] * count))
    n_test = max(1, round(fractions[2] * count))
    n_train = count - n_val - n_test
    if n_train < 1:
        n_train, n_test = 1, count - n_val - 1
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
             "test": order[n_train + n_val:]}
    return {split: np.sort(index) for split, index in parts.items()}


def standardised(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Columns centred and scaled by the mean and standard deviation over ``rows``.

    Columns that are constant over ``rows`` are left as they are (a constant
    input feature, e.g. all ones, stays informative to a sum aggregation).
    """
    mean = features[rows].mean(axis=0)
    std = features[rows].std(axis=0)
    varying = std > 1e-8
    out = features.copy()
    out[:, varying] = (features[:, varying] - mean[varying]) / std[varying]
    return out.astype(np.float32)
