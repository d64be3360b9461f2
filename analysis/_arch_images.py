"""The images that the ``cnn`` and ``vit`` families of the ``architectures`` study share.

Not a study (the leading underscore); loaded by path with
``load_helper("_arch_images", folder)``.

Local data (no download): scikit-learn's 8×8 digits (1,797 images, 10 classes),
each upsampled bilinearly to a random size of 11–14 pixels, placed at a random
position of a 16×16 canvas, scaled by a random contrast in [0.6, 1] and covered
with Gaussian noise (σ = 0.1) and two random bright specks; the pixels are then
standardised with the training images' mean and standard deviation. The random
size and place make the task need translation-tolerant spatial features, and
keep full training below 100 %. Every draw comes from
``numpy.random.default_rng(seed)``, so a seed gives the same images on every
run. The digits are split 1,217 / 180 / 400 (train / validation / test),
each training digit drawn three times (3,651 training images, each copy with its
own size, place, contrast and noise); the quick size splits 320 / 64 / 200
digits, one copy each.

A user's file (``data=PATH``): a ``.npz`` archive with

* ``X``: images, ``(n, H, W, C)`` (channels last, the layout of CIFAR-10's
  arrays; integers in 0…255, e.g. uint8) or ``(n, C, H, W)`` (channels first,
  e.g. float), or ``(n, H, W)`` for one channel. The channel axis is the one of
  axes 1 and 3 that is at most 4 while the other is larger; when both or
  neither are, integer arrays are read channels last and float arrays channels
  first. Integer images are divided by 255; every channel is then standardised
  with the training images' mean and standard deviation.
* ``y``: integer class labels 0…K−1, shape ``(n,)``.
* optionally ``X_test`` and ``y_test`` in the same layout (both or neither);
  without them a seeded 20 % of ``X`` is the test split. A seeded 10 % of the
  training images is the validation split. In quick mode at most 320 training,
  64 validation and 200 test images are kept (a seeded draw).

Each split of the task is a pair ``(images float32 (n, C, H, W), labels int64 (n,))``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.data_files import MAX_CLASSES
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

common = load_helper("_arch_common", Path(__file__).parent)

__all__ = ["DATA_KEYS", "batches", "classification_loss", "digit_images", "evaluate",
           "image_file", "load_task", "sample"]

DATA_KEYS = ("X (n, H, W, C) integers 0-255 or (n, C, H, W) float, or (n, H, W); "
             "y (n,) integer labels 0..K-1; optional X_test, y_test")

#: Side of the generated images, and the sizes a digit is upsampled to before placing it.
CANVAS = 16
DIGIT_SIZES = (11, 12, 13, 14)
NOISE = 0.1
SPECKS = 2
#: Perturbed copies of each training digit (each its own size, place, contrast and
#: noise), full and quick sizes.
TRAIN_COPIES = {False: 3, True: 1}
#: Digits per split: full and quick sizes of the generated data.
SPLITS = {False: {"train": 1217, "val": 180, "test": 400},
          True: {"train": 320, "val": 64, "test": 200}}
#: Most images per split that quick mode keeps of a user's file.
QUICK_CAP = {"train": 320, "val": 64, "test": 200}


def _perturbed(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """8×8 digits in [0, 1] → randomly sized, shifted, dimmed and noisy 16×16 images."""
    count = len(digits)
    sizes = rng.choice(DIGIT_SIZES, size=count)
    offsets = rng.integers(0, CANVAS - sizes[:, None] + 1, size=(count, 2))
    contrast = rng.uniform(0.6, 1.0, size=count).astype(np.float32)
    noise = rng.normal(0.0, NOISE, size=(count, CANVAS, CANVAS)).astype(np.float32)
    specks = rng.integers(0, CANVAS, size=(count, SPECKS, 2))
    images = np.zeros((count, CANVAS, CANVAS), dtype=np.float32)
    small = torch.as_tensor(digits, dtype=torch.float32).reshape(count, 1, 8, 8)
    for size in DIGIT_SIZES:
        chosen = np.flatnonzero(sizes == size)
        if not len(chosen):
            continue
        grown = nn.functional.interpolate(small[chosen], size=(size, size), mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
        for row, index in enumerate(chosen):
            top, left = offsets[index]
            images[index, top:top + size, left:left + size] = grown[row]
    images *= contrast[:, None, None]
    rows = np.repeat(np.arange(count), SPECKS)
    images[rows, specks[..., 0].ravel(), specks[..., 1].ravel()] = 1.0
    return images + noise


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: pixels (1797, 64) in 0…16 and labels (1797,).

    Read from the csv file that scikit-learn ships, without importing scikit-learn
    (its import takes seconds); through ``sklearn.datasets.load_digits`` when the
    file is not where it is expected.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
            if path.is_file():
                table = np.loadtxt(path, delimiter=",", dtype=np.float64)
                return _frozen(table[:, :-1], table[:, -1].astype(np.int64))
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is in the demo extra
        raise DataError("The cnn and vit families need scikit-learn for their local images: "
                        "pip install scikit-learn (or pass a .npz file as data).") from None
    bunch = load_digits()
    return _frozen(bunch.data, bunch.target.astype(np.int64))


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Read-only copies: :func:`_digits` hands the same arrays to every caller."""
    copies = tuple(np.array(a) for a in arrays)
    for array in copies:
        array.setflags(write=False)
    return copies


def digit_images(*, seed: int, quick: bool) -> dict[str, tuple[Tensor, Tensor]]:
    """The generated splits: scikit-learn's digits, perturbed as the module docstring says.

    Parameters
    ----------
    seed : int
        Seed of the split of the 1,797 digits and of every perturbation.
    quick : bool
        The quick sizes (320 / 64 / 200 images) instead of the full ones (3 × 1,217 / 180 /
        400).

    Returns
    -------
    dict
        ``{"train" | "val" | "test": (images (n, 1, 16, 16) float32, labels (n,) int64)}``.
    """
    pixels, targets = _digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(targets))
    parts, start = {}, 0
    for split, count in SPLITS[bool(quick)].items():
        chosen = order[start:start + count]
        start += count
        if split == "train":
            chosen = np.tile(chosen, TRAIN_COPIES[bool(quick)])
        parts[split] = (_perturbed(pixels[chosen] / 16.0, rng), targets[chosen])
    mean, std = parts["train"][0].mean(), parts["train"][0].std()
    return {split: (torch.as_tensor((x[:, None] - mean) / std), torch.as_tensor(y))
            for split, (x, y) in parts.items()}


def _fail(path: str, key: str, received: str, expected: str) -> DataError:
    return DataError(f"The array {key!r} of the data file {path!r} {received}; expected "
                     f"{expected}.")


def _images(array: np.ndarray, key: str, path: str) -> np.ndarray:
    """One image array as float32 (n, C, H, W), integers divided by 255."""
    expected = "(n, H, W, C) integers 0-255, (n, C, H, W) float or (n, H, W) images"
    if array.dtype.kind not in "biuf":
        raise _fail(path, key, f"has dtype {array.dtype}", "real numbers: " + expected)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        first, last = array.shape[1], array.shape[3]
        if last <= 4 < first:
            channels_last = True
        elif first <= 4 < last:
            channels_last = False
        else:
            channels_last = array.dtype.kind != "f"
        if channels_last:
            array = array.transpose(0, 3, 1, 2)
    else:
        raise _fail(path, key, f"has shape {array.shape}", expected)
    if array.shape[0] < 1 or min(array.shape[2:]) < 4:
        raise _fail(path, key, f"has shape {array.shape} (as (n, C, H, W))",
                    "at least one image of at least 4×4 pixels")
    values = array.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        first_bad = tuple(int(i) for i in np.argwhere(bad)[0])
        raise _fail(path, key, f"holds {int(bad.sum())} NaN/inf value(s), the first at "
                    f"index {first_bad} (as (n, C, H, W))", "finite pixel values")
    if array.dtype.kind in "biu":
        values /= 255.0
    return np.ascontiguousarray(values)


def _labels(array: np.ndarray, key: str, path: str, count: int) -> np.ndarray:
    expected = f"integer class labels 0..K-1 of shape ({count},), one per image"
    if array.ndim != 1 or len(array) != count:
        raise _fail(path, key, f"has shape {array.shape}", expected)
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and np.array_equal(array, np.round(array))):
            raise _fail(path, key, "holds non-integer or non-finite floats", expected)
    elif array.dtype.kind not in "biu":
        raise _fail(path, key, f"has dtype {array.dtype}", expected)
    labels = array.astype(np.int64)
    if labels.min() < 0 or labels.max() >= MAX_CLASSES:
        raise _fail(path, key, f"holds labels from {labels.min()} to {labels.max()}",
                    f"labels in 0..{MAX_CLASSES - 1}")
    return labels


def _draw(count: int, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(count)
    return np.sort(order[:cap]) if cap is not None else np.arange(count)


def image_file(path: str | os.PathLike, *, seed: int, quick: bool
               ) -> dict[str, tuple[Tensor, Tensor]]:
    """A user's ``.npz`` images as the task's splits (layout and keys: the module docstring).

    Raises
    ------
    DataError
        When the file is missing or unreadable, a key is missing, or an array has a
        wrong shape, dtype or a NaN; the message names the file and the key.
    """
    shown = str(path)
    if not Path(path).is_file():
        raise DataError(f"The data file {shown!r} does not exist; expected a .npz archive "
                        f"with {DATA_KEYS}.")
    if not zipfile.is_zipfile(path):
        raise DataError(f"The data file {shown!r} is not a .npz (zip) archive; expected "
                        f"numpy.savez(path, X=..., y=...) with {DATA_KEYS}.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"The data file {shown!r} could not be read as a .npz archive "
                        f"({error}); expected {DATA_KEYS}.") from None
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(f"The data file {shown!r} has no array {key!r} (it holds "
                            f"{sorted(arrays)}); expected {DATA_KEYS}.")
    if ("X_test" in arrays) != ("y_test" in arrays):
        missing = "y_test" if "X_test" in arrays else "X_test"
        raise DataError(f"The data file {shown!r} has no array {missing!r} but has its "
                        f"partner; expected both X_test and y_test, or neither.")
    images = _images(arrays["X"], "X", shown)
    labels = _labels(arrays["y"], "y", shown, len(images))
    rng = np.random.default_rng(seed)
    if "X_test" in arrays:
        test_images = _images(arrays["X_test"], "X_test", shown)
        test_labels = _labels(arrays["y_test"], "y_test", shown, len(test_images))
        if test_images.shape[1:] != images.shape[1:]:
            raise _fail(shown, "X_test", f"has images of shape {test_images.shape[1:]}",
                        f"the shape of X's images, {images.shape[1:]} (as (C, H, W))")
    else:
        order = rng.permutation(len(images))
        cut = max(1, round(0.2 * len(images)))
        if cut >= len(images):
            raise _fail(shown, "X", f"holds {len(images)} image(s)",
                        "at least 3 images when there is no X_test (train, val and test)")
        test_images, test_labels = images[order[:cut]], labels[order[:cut]]
        images, labels = images[order[cut:]], labels[order[cut:]]
    order = rng.permutation(len(images))
    cut = max(1, round(0.1 * len(images)))
    if cut >= len(images):
        raise _fail(shown, "X", f"leaves {len(images)} training image(s)",
                    "at least 2 (a validation image and a training image)")
    parts = {"train": (images[order[cut:]], labels[order[cut:]]),
             "val": (images[order[:cut]], labels[order[:cut]]),
             "test": (test_images, test_labels)}
    mean = parts["train"][0].mean(axis=(0, 2, 3), keepdims=True)
    std = parts["train"][0].std(axis=(0, 2, 3), keepdims=True) + 1e-6
    splits = {}
    for split, (x, y) in parts.items():
        keep = _draw(len(x), QUICK_CAP[split] if quick else None, rng)
        splits[split] = (torch.as_tensor((x[keep] - mean) / std),
                         torch.as_tensor(y[keep]))
    return splits


def load_task(name: str, *, quick: bool, seed: int, data: str | os.PathLike | None
              ) -> common.Task:
    """The generated digits, or a user's ``.npz`` images, as a :class:`Task` of ``name``."""
    if data is None:
        splits = digit_images(seed=seed, quick=quick)
        source = (f"generated: scikit-learn digits, randomly resized to 11-14 px, shifted on "
                  f"a {CANVAS}x{CANVAS} canvas, noise σ = {NOISE} (seed {seed})")
    else:
        splits = image_file(data, seed=seed, quick=quick)
        source = f"file: {Path(data).name}"
    classes = 1 + max(int(y.max()) for _, y in splits.values())
    channels, height, width = splits["train"][0].shape[1:]
    info = {"classes": classes, "channels": int(channels), "height": int(height),
            "width": int(width), **{f"n_{split}": len(y) for split, (_, y) in splits.items()}}
    return common.Task(name=name, splits=splits, source=source, info=info)


def batches(task: common.Task, split: str, batch_size: int, generator: torch.Generator
            ) -> Iterator[tuple[Tensor, Tensor]]:
    """``(images, labels)`` batches of a split; shuffled by ``generator`` for "train"."""
    images, labels = task.splits[split]
    order = (torch.randperm(len(labels), generator=generator) if split == "train"
             else torch.arange(len(labels)))
    for index in order.split(batch_size):
        yield images[index], labels[index]


def classification_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Cross-entropy of the model's logits on one batch."""
    images, labels = batch
    return nn.functional.cross_entropy(model(images), labels)


def evaluate(model: nn.Module, task: common.Task, split: str) -> float:
    """Accuracy (a fraction) on a split, in batches of 512."""
    images, labels = task.splits[split]
    logits = torch.cat([model(chunk) for chunk in images.split(512)])
    return common.accuracy(logits, labels)


def sample(task: common.Task) -> tuple[Tensor]:
    """The first four test images, ``(4, C, H, W)``."""
    return (task.splits["test"][0][:4],)
