"""Architecture family "text": a Transformer classifier of Python standard-library snippets.

Not a study (the leading underscore): one family of the ``architectures``
study; the protocol is in ``_arch_common.py``.

The task. Which standard-library package does a snippet of 128 bytes of
source (quick: 64) come from? Six classes: ``asyncio``, ``email``, ``json``,
``multiprocessing``, ``unittest``, ``xml`` (the running interpreter's own
``.py`` files, ``_arch_stdlib.py``). Each package's files are split by a
seeded permutation: at least 20 % of its bytes in test files, at least 10 %
in validation files, the rest in training files. Snippets are windows at
random places of one file of their split, so the test snippets come from
files the model never saw: it must learn each package's vocabulary and style,
not memorise text. Balanced classes (1,024 / 60 / 200 snippets per
class for training / validation / test; quick 64 / 16 / 32), chance is
16.7 %. ``http`` and ``logging`` were left out: with 3–5 files each, their
held-out files differ too much from their training files (a character-trigram
logistic regression confuses them with ``email`` and ``asyncio``).

The model. Bytes (vocabulary 256) through ``nn.Embedding`` plus a learned
positional embedding, a 2-layer ``nn.TransformerEncoder`` (batch first,
pre-norm, width 64, 4 heads, feed-forward 128, no dropout; quick: width 32),
mean pooling over positions, ``LayerNorm`` and a linear head. ``dr.adapt`` adapts the byte
embedding, the attention blocks and the feed-forward layers; the positional
embedding, the norms and the head train.

Scaling. The paper's IMDB Transformer uses α = 2r (scale 2 at every rank);
``ADAPT`` is a fixed keyword set, so this family uses α = 16 as the paper's
other Transformers do (scale 16 at r = 1, 2 at r = 8: equal to the paper's at
r = 8, the rank of its figure).

A user's ``.npz`` (``--data``): ``tokens`` (n, L) integers below ``vocab``
(an optional scalar array, default 256), ``y`` (n,) integer classes 0…K−1,
optionally ``tokens_test`` (m, L) and ``y_test`` (m,); without them 20 % of the
rows are held out by the seed. 10 % of the training rows validate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

common = load_helper("_arch_common", Path(__file__).parent)
stdlib = load_helper("_arch_stdlib", Path(__file__).parent)

NAME = "text"
TITLE = "Transformer text classifier"
PAPER = common.PaperRow("Transformer on IMDB, %", lora=85.12, full=85.69, rank=8)
RANKS = (1, 8)
REQUIRES: tuple[str, ...] = ()
METRIC = common.Metric("accuracy", higher_is_better=True, percent=True)
HYPER = {
    "full": common.Hyper(epochs=1, batch_size=32, lr_full=3e-3, lr_lora=1e-2),
    "quick": common.Hyper(epochs=1, batch_size=32, lr_full=3e-3, lr_lora=1e-2),
}
ADAPT = {"alpha": 16, "train": ["position", "*norm*", "head"]}
GROUPS = {
    "embedding": ["embed"],
    "attention": ["encoder.layers.*.self_attn"],
    "feed-forward": ["encoder.layers.*.linear1", "encoder.layers.*.linear2"],
}
DATA_KEYS = ("tokens (n, L) int < vocab (optional scalar, default 256), y (n,) int classes; "
             "optional tokens_test (m, L), y_test (m,)")

#: The standard-library packages told apart (the class order).
PACKAGES = ("asyncio", "email", "json", "multiprocessing", "unittest", "xml")
#: Snippets per class: (train, val, test) at full size and quick.
SNIPPETS = {"full": (1024, 60, 200), "quick": (64, 16, 32)}
#: Snippet length in bytes (full, quick).
LENGTH = {"full": 128, "quick": 64}
#: The model's sizes (full, quick): width, heads, layers, feed-forward width.
SIZES = {"full": dict(d_model=64, heads=4, layers=2, feedforward=128),
         "quick": dict(d_model=32, heads=4, layers=2, feedforward=64)}
#: Shares of each package's bytes in test and validation files.
HELD_OUT = (0.2, 0.1)


class TextClassifier(nn.Module):
    """Tokens (batch, length) → class logits: embeddings, encoder, mean pool, norm, head."""

    def __init__(self, vocab: int, length: int, classes: int, *, d_model: int, heads: int,
                 layers: int, feedforward: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(1, length, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens: Tensor) -> Tensor:
        hidden = self.embed(tokens) + self.position[:, :tokens.shape[1]]
        return self.head(self.norm(self.encoder(hidden).mean(1)))


def _generated(quick: bool, seed: int) -> common.Task:
    size = "quick" if quick else "full"
    counts, length = SNIPPETS[size], LENGTH[size]
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list, list]] = {s: ([], []) for s in ("train", "val", "test")}
    names: dict[str, list[str]] = {s: [] for s in splits}
    root = stdlib.stdlib_dir()
    for label, package in enumerate(PACKAGES):
        paths = stdlib.group_files(package, minimum=3)
        texts = [stdlib.read_bytes(p) for p in paths]
        total = sum(len(t) for t in texts)
        test, val, train = stdlib.split_by_size(
            texts, rng, [HELD_OUT[0] * total, HELD_OUT[1] * total, None])
        for split, indices, count in zip(("train", "val", "test"), (train, val, test), counts,
                                         strict=True):
            names[split] += [paths[i].relative_to(root).as_posix() for i in indices]
            chosen = [texts[i] for i in indices]
            splits[split][0].append(stdlib.snippets(chosen, count, length, rng))
            splits[split][1].append(np.full(count, label))
    payload = {split: (torch.as_tensor(np.concatenate(x).astype(np.int64)),
                       torch.as_tensor(np.concatenate(y).astype(np.int64)))
               for split, (x, y) in splits.items()}
    return common.Task(
        NAME, payload,
        f"generated: {length}-byte snippets of {len(PACKAGES)} Python {stdlib.python_version()} "
        f"standard-library packages, test files held out",
        {"vocab": stdlib.BYTES, "length": length, "classes": len(PACKAGES),
         "class_names": list(PACKAGES), "sizes": SIZES[size],
         "samples": {s: len(p[1]) for s, p in payload.items()},
         "files": {s: len(n) for s, n in names.items()}, "file_names": names})


def _labels(arrays: dict, key: str, path: str, rows: int) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"The data file {path!r} has no {key!r} array; it holds "
                        f"{sorted(arrays)}. Expected {DATA_KEYS}.")
    labels = np.asarray(arrays[key])
    if labels.dtype.kind == "f" and (not np.isfinite(labels).all()
                                     or not np.array_equal(labels, np.round(labels))):
        raise DataError(f"The array {key!r} of the data file {path!r} must hold integer class "
                        f"labels 0…K−1. Got NaN/inf or non-integer floats.")
    if labels.dtype.kind not in "biuf":
        raise DataError(f"The array {key!r} of the data file {path!r} must hold integer class "
                        f"labels 0…K−1. Got dtype {labels.dtype}.")
    if labels.shape != (rows,):
        raise DataError(f"The array {key!r} of the data file {path!r} must have shape "
                        f"({rows},), one label per row of tokens. Got shape {labels.shape}.")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"The array {key!r} of the data file {path!r} must hold labels 0…K−1. "
                        f"Got a minimum of {labels.min()}.")
    return labels


def _from_file(path: str, seed: int, quick: bool) -> common.Task:
    arrays = stdlib.read_archive(path, DATA_KEYS)
    vocab = stdlib.BYTES
    if "vocab" in arrays:
        value = np.asarray(arrays["vocab"])
        if value.size != 1 or value.dtype.kind not in "iu" or int(value.reshape(-1)[0]) < 2:
            raise DataError(f"The array 'vocab' of the data file {path!r} must be one integer "
                            f">= 2 (the vocabulary size). Got {value!r}.")
        vocab = int(value.reshape(-1)[0])
    tokens = stdlib.token_array(arrays, "tokens", path, ndim=2, vocab=vocab, minimum=2)
    labels = _labels(arrays, "y", path, len(tokens))
    if ("tokens_test" in arrays) != ("y_test" in arrays):
        only = "tokens_test" if "tokens_test" in arrays else "y_test"
        raise DataError(f"The data file {path!r} must hold both 'tokens_test' and 'y_test' or "
                        f"neither. Got only {only!r}.")
    rng = np.random.default_rng(seed)
    if "tokens_test" in arrays:
        test_tokens = stdlib.token_array(arrays, "tokens_test", path, ndim=2, vocab=vocab)
        if test_tokens.shape[1] != tokens.shape[1]:
            raise DataError(f"The array 'tokens_test' of the data file {path!r} must have the "
                            f"length {tokens.shape[1]} of 'tokens'. Got shape "
                            f"{test_tokens.shape}.")
        test_labels = _labels(arrays, "y_test", path, len(test_tokens))
    else:
        order = rng.permutation(len(tokens))
        cut = max(1, round(0.2 * len(tokens)))
        test_tokens, test_labels = tokens[order[:cut]], labels[order[:cut]]
        tokens, labels = tokens[order[cut:]], labels[order[cut:]]
    order = rng.permutation(len(tokens))
    cut = max(1, round(0.1 * len(tokens))) if len(tokens) > 1 else 0
    val, train = order[:cut], order[cut:]
    classes = int(max(labels.max(), test_labels.max())) + 1
    payload = {"train": (tokens[train], labels[train]), "val": (tokens[val], labels[val]),
               "test": (test_tokens, test_labels)}
    payload = {s: (torch.as_tensor(x), torch.as_tensor(y)) for s, (x, y) in payload.items()}
    return common.Task(
        NAME, payload, f"file: {Path(path).name}",
        {"vocab": vocab, "length": int(tokens.shape[1]), "classes": classes,
         "class_names": [str(c) for c in range(classes)],
         "sizes": SIZES["quick" if quick else "full"],
         "samples": {s: len(p[1]) for s, p in payload.items()}})


def load_task(*, quick: bool, seed: int, data: str | None = None) -> common.Task:
    """The snippets of the standard-library packages, or a user's ``.npz`` (module docstring).

    Raises
    ------
    DataError
        A user's file lacks a key, has a wrong shape or dtype, NaN, or tokens out of range.
    """
    if data is not None:
        return _from_file(str(data), seed, quick)
    return _generated(quick, seed)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained classifier for ``task``, initialised from ``seed``."""
    info = task.info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TextClassifier(info["vocab"], info["length"], info["classes"], **info["sizes"])


def batches(task: common.Task, split: str, batch_size: int,
            generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """``(tokens, labels)`` batches; shuffled by ``generator`` for "train"."""
    tokens, labels = task.splits[split]
    order = (torch.randperm(len(labels), generator=generator) if split == "train"
             else torch.arange(len(labels)))
    for index in order.split(batch_size):
        yield tokens[index], labels[index]


def loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Cross-entropy of one batch."""
    tokens, labels = batch
    return nn.functional.cross_entropy(model(tokens), labels)


def evaluate(model: nn.Module, task: common.Task, split: str) -> float:
    """Accuracy on ``split`` (a fraction)."""
    labels = task.splits[split][1]
    logits = torch.cat([model(x) for x, _ in batches(task, split, 256, torch.Generator())])
    return common.accuracy(logits, labels)


def sample(task: common.Task) -> tuple[Tensor]:
    """Four test snippets: ``model(*sample(task))`` gives (4, classes) logits."""
    return (task.splits["test"][0][:4],)
