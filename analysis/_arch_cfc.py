"""Architecture family "cfc": the ``ncps`` package's CfC on irregularly sampled series.

The paper's row: a CfC (closed-form continuous-time) recurrent network on
PhysioNet (in-hospital mortality), AUROC 0.832 with LottaLoRA at r = 1 against
0.836 fully trained. Here the CfC is ``ncps.torch.CfC`` itself, fully connected
(``units`` an int, no wiring), followed by a linear head on its last output.

The built-in data (generated with numpy from ``seed``, nothing downloaded) is a
binary classification of irregularly sampled series, in the spirit of
PhysioNet's mortality task (a hidden deterioration under nuisance dynamics).
Each series is a damped oscillation ``A·exp(-d·t)·cos(ω·t + φ)`` (ω a little
higher in class 1, the ranges overlapping) plus, in class 1, a hidden event: at
a random time one channel jumps up and another down, and the jump fades at a
fixed rate per unit of *time* (a third of class 0 has a smaller event). It is
observed at random times (exponential gaps) through four noisy channels (the
signal, its derivative, its square and one channel of pure noise), each value
missing with a probability drawn per series. The time gaps are passed to the
CfC as its ``timespans`` (and as an input). The classes overlap: full training
reaches an AUROC of about 0.8-0.9, not 1.

Missing values (NaN in the file) are handled by a mask channel per feature: the
network reads, for each of the F features, the standardised value (0 where it
is missing) and 1/0 for observed/missing, plus the time gap, so 2·F + 1 inputs.

A user's ``.npz`` (PhysioNet-like) holds ``X`` (n, T, F) float, NaN for a
missing value (a whole missing step is allowed); ``times`` (n, T) float,
non-decreasing along each series (hours, minutes: any unit, gaps are divided by
the training median); ``y`` (n,) binary 0/1; optionally ``X_test``,
``times_test``, ``y_test``. Without a test split 20 % of the series are held
out (by ``seed``); the validation split is 15 % of the rest. Every series has the
same T steps: pad shorter ones at the *start* with all-NaN rows at their first
time (gap 0, every mask 0), so that the last step, which the head reads, is a
real observation.

Two findings about ``ncps`` 1.0.1's fully connected CfC (``mode="default"``):

* every weight it holds is an ``nn.Linear`` (``rnn_cell.backbone.0``, ``ff1``,
  ``ff2``, ``time_a``, ``time_b``; ``fc`` when ``proj_size`` is set), so
  ``dr.adapt`` covers it all. It holds no other parameter: the sparsity mask
  exists only in wired mode (``WiredCfCCell``), ``w_tau`` and ``A`` only in
  ``mode="pure"``, the LSTM cell only with ``mixed_memory=True``;
* ``CfC.forward`` takes ``timespans[:, t].squeeze()``: a (batch, T) tensor gives
  a (batch,) vector that broadcasts against (batch, units) along the *units*
  axis (an error, or silently wrong when batch == units). The model here passes
  the gaps expanded to (batch, T, units), which is correct for every batch size.

Adapted: the five ``nn.Linear`` layers of the cell, at α = r (``alpha=None``;
the paper states no α for its CfC). Trained fully: the head only (the CfC has no
norms). The gap analysis trains, in turn, the backbone, the two candidate heads
``ff1``/``ff2`` and the two time gates ``time_a``/``time_b`` fully.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.data_files import read_npz
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

common = load_helper("_arch_common", Path(__file__).parent)

NAME = "cfc"
TITLE = "CfC (ncps) on irregularly sampled series"
PAPER = common.PaperRow(benchmark="CfC on PhysioNet, AUROC", lora=0.832, full=0.836, rank=1)
RANKS = (1, 8)
REQUIRES = ("ncps",)
METRIC = common.Metric(name="AUROC", higher_is_better=True)
HYPER = {
    "full": common.Hyper(epochs=3, batch_size=64, lr_full=3e-3, lr_lora=1e-2),
    "quick": common.Hyper(epochs=2, batch_size=64, lr_full=3e-3, lr_lora=1e-2),
}
ADAPT: dict[str, Any] = {"train": ["head"]}
GROUPS = {
    "backbone": ["rnn.rnn_cell.backbone"],
    "ff1_ff2": ["rnn.rnn_cell.ff1", "rnn.rnn_cell.ff2"],
    "time_a_time_b": ["rnn.rnn_cell.time_a", "rnn.rnn_cell.time_b"],
}
DATA_KEYS = ("X (n, T, F) float, NaN = missing; times (n, T) non-decreasing; y (n,) 0/1; "
             "optional X_test, times_test, y_test")

UNITS = 32
BACKBONE_UNITS = 64
#: Generated data: (series in train/val/test, steps per series) per size.
SIZES = {"full": ((3200, 800, 1600), 24), "quick": ((384, 256, 384), 16)}
FEATURES = 4


class CfCClassifier(nn.Module):
    """``ncps.torch.CfC`` (fully connected) and a linear head on its last output.

    ``forward(x, gaps)``: ``x`` (batch, T, inputs), ``gaps`` (batch, T) → logits (batch,).
    """

    def __init__(self, inputs: int, units: int = UNITS, backbone_units: int = BACKBONE_UNITS):
        super().__init__()
        from ncps.torch import CfC

        self.units = units
        self.rnn = CfC(inputs, units, backbone_units=backbone_units, backbone_layers=1,
                       return_sequences=False, batch_first=True)
        self.head = nn.Linear(units, 1)

    def forward(self, x: Tensor, gaps: Tensor) -> Tensor:
        timespans = gaps.unsqueeze(-1).expand(-1, -1, self.units)
        last, _ = self.rnn(x, timespans=timespans)
        return self.head(last).squeeze(-1)


def generate(count: int, steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``count`` series of ``steps`` irregular observations: ``X`` (NaN: missing), ``times``, ``y``.

    Each series is a damped oscillation (its frequency a little higher in class 1,
    the ranges overlapping) plus, in class 1, a hidden event: at a random time the
    first channel jumps up and the third down by a random height, and the jump
    fades at rate 0.25 per unit time. A third of class 0 has a smaller event. The
    channels are the signal, its derivative, its square (each with the event as
    said) and pure noise; noise N(0, 0.35²); each value is missing with a
    probability drawn per series from U(0.1, 0.5); the gaps between observations
    are exponential (mean 0.6).

    Parameters
    ----------
    count, steps : int
    rng : numpy.random.Generator

    Returns
    -------
    dict
        ``X`` (count, steps, 4) float32, ``times`` (count, steps) float32, ``y`` (count,) int64.
    """
    y = rng.permutation(np.arange(count) % 2)
    positive = y[:, None] == 1
    omega = np.where(y == 1, rng.uniform(1.0, 1.6, count), rng.uniform(0.8, 1.4, count))
    decay = rng.uniform(0.02, 0.12, count)
    amplitude = rng.uniform(0.5, 1.5, count)
    phase = rng.uniform(0.0, 2.0 * np.pi, count)
    gaps = rng.exponential(0.6, (count, steps))
    times = np.cumsum(gaps, axis=1) - gaps[:, :1] + rng.uniform(0.0, 1.0, (count, 1))
    onset = rng.uniform(0.2, 0.9, (count, 1)) * times[:, -1:]
    small = rng.uniform(0.0, 0.3, (count, 1)) * (rng.random((count, 1)) < 0.3)
    height = np.where(positive, rng.uniform(0.3, 0.9, (count, 1)), small)
    event = height * (times >= onset) * np.exp(-0.25 * np.clip(times - onset, 0.0, None))
    w, d, a, p = (v[:, None] for v in (omega, decay, amplitude, phase))
    envelope = a * np.exp(-d * times)
    signal = envelope * np.cos(w * times + p)
    slope = -envelope * (w * np.sin(w * times + p) + d * np.cos(w * times + p))
    channels = np.stack([signal + event, slope, signal ** 2 - event, np.zeros_like(signal)],
                        axis=-1)
    X = channels + rng.normal(0.0, 0.35, channels.shape)
    missing = rng.random(channels.shape) < rng.uniform(0.1, 0.5, (count, 1, 1))
    X[missing] = np.nan
    return {"X": X.astype(np.float32), "times": times.astype(np.float32),
            "y": y.astype(np.int64)}


def _fail(path: str, key: str, got: str, expected: str) -> NoReturn:
    raise DataError(f"The array {key!r} of the data file {path!r} must be {expected}. "
                    f"Got {got}.")


def _check_split(arrays: dict[str, np.ndarray], path: str, suffix: str,
                 features: int | None) -> dict[str, np.ndarray]:
    names = {k: k + suffix for k in ("X", "times", "y")}
    for key in names.values():
        if key not in arrays:
            raise DataError(f"The data file {path!r} has no {key!r} array; it holds "
                            f"{sorted(arrays) or 'nothing'}. Expected {DATA_KEYS}.")
    X, times, y = (arrays[names[k]] for k in ("X", "times", "y"))
    if X.dtype.kind not in "biuf" or X.ndim != 3 or min(X.shape) < 1:
        _fail(path, names["X"], f"shape {X.shape} and dtype {X.dtype}",
              "a real array of shape (series, steps, features)")
    if features is not None and X.shape[2] != features:
        _fail(path, names["X"], f"{X.shape[2]} features", f"the {features} features of 'X'")
    if np.isinf(X).any():
        _fail(path, names["X"], "inf values", "finite or NaN (missing)")
    if times.dtype.kind not in "biuf" or times.shape != X.shape[:2]:
        _fail(path, names["times"], f"shape {times.shape} and dtype {times.dtype}",
              f"a real array of shape {X.shape[:2]} (series, steps) like 'X'")
    if not np.isfinite(times).all():
        _fail(path, names["times"], f"{int((~np.isfinite(times)).sum())} NaN/inf value(s)",
              "finite")
    if (np.diff(times, axis=1) < 0).any():
        row = int(np.argwhere(np.diff(times, axis=1) < 0)[0, 0])
        _fail(path, names["times"], f"decreasing times in series {row}",
              "non-decreasing along each series")
    if y.shape != (X.shape[0],) or y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        _fail(path, names["y"], f"shape {y.shape}, dtype {y.dtype}, values "
              f"{np.unique(y)[:5].tolist() if y.dtype.kind in 'biuf' else '?'}",
              f"binary labels 0/1 of shape ({X.shape[0]},)")
    return {"X": X.astype(np.float32), "times": times.astype(np.float32),
            "y": y.astype(np.int64)}


def _read_file(path: Any, seed: int) -> dict[str, dict[str, np.ndarray]]:
    shown = str(path)
    arrays = read_npz(path, "data file", DATA_KEYS)
    train = _check_split(arrays, shown, "", None)
    tests = [k for k in ("X_test", "times_test", "y_test") if k in arrays]
    rng = np.random.default_rng(seed)
    if tests:
        if len(tests) != 3:
            raise DataError(f"The data file {shown!r} must hold all of X_test, times_test and "
                            f"y_test or none. Got only {tests}.")
        test = _check_split(arrays, shown, "_test", train["X"].shape[2])
    else:
        order = rng.permutation(len(train["y"]))
        cut = round(0.2 * len(order))
        test = {k: v[order[:cut]] for k, v in train.items()}
        train = {k: v[order[cut:]] for k, v in train.items()}
    order = rng.permutation(len(train["y"]))
    cut = round(0.15 * len(order))
    splits = {"train": {k: v[order[cut:]] for k, v in train.items()},
              "val": {k: v[order[:cut]] for k, v in train.items()}, "test": test}
    for split, arrays_ in splits.items():
        if len(arrays_["y"]) < 2 or len(np.unique(arrays_["y"])) < 2:
            raise DataError(f"The data file {shown!r}: the {split} split must hold both "
                            f"classes. Got {len(arrays_['y'])} series, labels "
                            f"{np.unique(arrays_['y']).tolist()}.")
    return splits


def _tensors(arrays: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray,
             gap_scale: float) -> dict[str, Tensor]:
    X = arrays["X"]
    observed = np.isfinite(X)
    values = np.where(observed, (X - mean) / std, 0.0)
    gaps = np.diff(arrays["times"], axis=1, prepend=arrays["times"][:, :1]) / gap_scale
    inputs = np.concatenate([values, observed, np.log1p(gaps)[..., None]], axis=-1)
    return {"x": torch.as_tensor(inputs, dtype=torch.float32),
            "gaps": torch.as_tensor(gaps, dtype=torch.float32),
            "y": torch.as_tensor(arrays["y"], dtype=torch.float32)}


def load_task(*, quick: bool, seed: int, data: Any = None) -> common.Task:
    """The family's data: generated from ``seed``, or a user's ``.npz`` (``DATA_KEYS``).

    Returns
    -------
    Task
        Each split a dict of tensors ``x`` (n, T, 2·F + 1), ``gaps`` (n, T) and ``y`` (n,).
    """
    if data is None:
        (n_train, n_val, n_test), steps = SIZES["quick" if quick else "full"]
        rng = np.random.default_rng([seed, 15])
        raw = {name: generate(n, steps, rng) for name, n in
               (("train", n_train), ("val", n_val), ("test", n_test))}
        source = (f"generated: {n_train}/{n_val}/{n_test} damped oscillations, {steps} "
                  f"irregular steps, {FEATURES} channels with missing values, seed {seed}")
    else:
        raw = _read_file(data, seed)
        source = f"file: {Path(data).name}"
    train = raw["train"]
    with warnings.catch_warnings():  # a feature never observed: mean 0, scale 1
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(train["X"], axis=(0, 1))
        std = np.nanstd(train["X"], axis=(0, 1))
    mean, std = np.nan_to_num(mean), np.where(np.isfinite(std) & (std > 0), std, 1.0)
    gaps = np.diff(train["times"], axis=1)
    gap_scale = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 1.0
    splits = {name: _tensors(arrays, mean, std, gap_scale) for name, arrays in raw.items()}
    steps, features = train["X"].shape[1:]
    info = {"steps": steps, "features": features, "inputs": 2 * features + 1,
            "sizes": {k: len(v["y"]) for k, v in splits.items()},
            "positive_share": float(train["y"].mean()),
            "missing_share": float(np.isnan(train["X"]).mean()), "gap_scale": gap_scale}
    return common.Task(name=NAME, splits=splits, source=source, info=info)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained CfC classifier, initialised from ``seed``."""
    torch.manual_seed(seed)
    return CfCClassifier(task.info["inputs"])


def batches(task: common.Task, split: str, batch_size: int,
            generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """``(x, gaps, y)`` batches; shuffled with ``generator`` for ``"train"``."""
    data = task.splits[split]
    count = len(data["y"])
    order = (torch.randperm(count, generator=generator) if split == "train"
             else torch.arange(count))
    for start in range(0, count, batch_size):
        index = order[start:start + batch_size]
        yield data["x"][index], data["gaps"][index], data["y"][index]


def loss(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Binary cross-entropy of the logits."""
    x, gaps, y = batch
    return nn.functional.binary_cross_entropy_with_logits(model(x, gaps), y)


def evaluate(model: nn.Module, task: common.Task, split: str) -> float:
    """AUROC of the logits on ``split``."""
    scores = [model(x, gaps) for x, gaps, _ in batches(task, split, 512, torch.Generator())]
    return common.auroc(torch.cat(scores).numpy(), task.splits[split]["y"].numpy())


def sample(task: common.Task) -> tuple[Tensor, Tensor]:
    """Four test series: ``(x, gaps)``."""
    data = task.splits["test"]
    return data["x"][:4], data["gaps"][:4]
