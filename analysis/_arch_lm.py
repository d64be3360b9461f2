"""Architecture family "lm": a byte-level causal Transformer language model on stdlib source.

Not a study (the leading underscore): one family of the ``architectures``
study; the protocol is in ``_arch_common.py``.

The task. Predict the next byte of Python source: the top-level modules of
the running interpreter's standard library (``Lib/*.py``, ``_arch_stdlib.py``),
split by files in a seeded order into test, validation and training files
(48 / 24 / 300 KB; quick 8 / 4 / 16 KB). Each file gives at most 8 KB (quick
2 KB) from a seeded place, so that every split spans many modules; the test
text comes from modules the model never read. The metric is the test loss in
nats per byte: the mean cross-entropy of every byte given up to ``context``
bytes before it, over non-overlapping windows; lower is better. Uniform
guessing is ln 256 = 5.55.

The model. Bytes through ``nn.Embedding`` plus a learned positional
embedding, a causal 2-layer ``nn.TransformerEncoder`` (batch first, pre-norm,
width 128, 4 heads, feed-forward 256, context 64, no dropout; quick: width 64,
context 32), ``LayerNorm`` and a linear head onto the 256 bytes. ``dr.adapt``
adapts the byte embedding, the attention blocks and the feed-forward layers
(α = 16, as the paper's Transformers); the positional embedding, the norms
and the head train.

:func:`extras` gives the rest of the paper's row: the dense checkpoint against
the adapted artifact at r = 8, and the peak memory of one training step for
full training and for LoRA at r = 8 with the scaffold stored and virtual
(``dr.adapt(..., weights="virtual")``: the feed-forward ``nn.Linear`` layers
regenerate their frozen weight tile by tile; attention projections and the
embedding stay stored).

A user's ``.npz`` (``--data``): ``tokens`` (T,) integers (bytes, or any
vocabulary given as an optional scalar ``vocab``), optionally ``tokens_test``
(T',). Without ``tokens_test`` the last 10 % of ``tokens`` test; the 5 % of
the training stream before them (or its last 5 %) validate.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import deepreservoir as dr
from deepreservoir.errors import DataError
from deepreservoir.footprint import training_step_peak
from deepreservoir.studies import load_helper

common = load_helper("_arch_common", Path(__file__).parent)
stdlib = load_helper("_arch_stdlib", Path(__file__).parent)

NAME = "lm"
TITLE = "Byte-level Transformer language model"
PAPER = common.PaperRow("900M language model on WikiText-103, loss", lora=3.950, full=3.156,
                        rank=8)
RANKS = (1, 8)
REQUIRES: tuple[str, ...] = ()
METRIC = common.Metric("loss", higher_is_better=False)
HYPER = {
    "full": common.Hyper(epochs=1, batch_size=16, lr_full=3e-3, lr_lora=1e-2),
    "quick": common.Hyper(epochs=1, batch_size=16, lr_full=3e-3, lr_lora=1e-2),
}
ADAPT = {"alpha": 16, "train": ["position", "*norm*", "head"]}
GROUPS = {
    "embedding": ["embed"],
    "attention": ["encoder.layers.*.self_attn"],
    "feed-forward": ["encoder.layers.*.linear1", "encoder.layers.*.linear2"],
}
DATA_KEYS = ("tokens (T,) int bytes (or < vocab, an optional scalar); optional "
             "tokens_test (T',)")

#: Bytes of training, validation and test text (full, quick).
TEXT_BYTES = {"full": (300_000, 24_000, 48_000), "quick": (16_000, 4_000, 8_000)}
#: Most bytes taken from one file (full, quick): the text spans many modules.
FILE_BYTES = {"full": 8_000, "quick": 2_000}
#: The model's sizes (full, quick).
SIZES = {"full": dict(context=64, d_model=128, heads=4, layers=2, feedforward=256),
         "quick": dict(context=32, d_model=64, heads=4, layers=2, feedforward=128)}
#: The rank of the artifact and of the memory figures (the paper's).
EXTRAS_RANK = 8


class ByteLM(nn.Module):
    """Tokens (batch, n ≤ context) → next-token logits (batch, n, vocab), causal."""

    def __init__(self, vocab: int, *, context: int, d_model: int, heads: int, layers: int,
                 feedforward: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(1, context, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(context),
                             persistent=False)

    def forward(self, tokens: Tensor) -> Tensor:
        n = tokens.shape[1]
        hidden = self.embed(tokens) + self.position[:, :n]
        hidden = self.encoder(hidden, mask=self.causal[:n, :n], is_causal=True)
        return self.head(self.norm(hidden))


def _excerpt(text: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` bytes of a file: from a seeded place, starting at a line."""
    if len(text) <= cap:
        return text
    start = int(rng.integers(0, len(text) - cap + 1))
    newline = np.flatnonzero(text[start:start + cap // 2] == ord("\n"))
    start += int(newline[0]) + 1 if len(newline) else 0
    return text[start:start + cap]


def _generated(quick: bool, seed: int) -> common.Task:
    size = "quick" if quick else "full"
    train_bytes, val_bytes, test_bytes = TEXT_BYTES[size]
    files = stdlib.top_level_files()
    rng = np.random.default_rng(seed)
    texts = [_excerpt(stdlib.read_bytes(p), FILE_BYTES[size], rng) for p in files]
    test, val, train = stdlib.split_by_size(texts, rng, [test_bytes, val_bytes, train_bytes])
    streams = {}
    for split, indices, budget in (("train", train, train_bytes), ("val", val, val_bytes),
                                   ("test", test, test_bytes)):
        stream = np.concatenate([texts[i] for i in indices])[:budget]
        if len(stream) < budget:
            raise DataError(f"The standard library in {str(stdlib.stdlib_dir())!r} holds too "
                            f"little text for the {split} split: {len(stream)} bytes, expected "
                            f"{budget}.")
        streams[split] = torch.as_tensor(stream.astype(np.int64))
    return common.Task(
        NAME, streams,
        f"generated: Python {stdlib.python_version()} standard-library modules, "
        f"{train_bytes // 1000} / {val_bytes // 1000} / {test_bytes // 1000} KB of "
        f"train / val / test files",
        {"vocab": stdlib.BYTES, "sizes": SIZES[size],
         "bytes": {s: len(v) for s, v in streams.items()},
         "files": {"train": len(train), "val": len(val), "test": len(test)},
         "file_names": {split: [files[i].name for i in indices] for split, indices in
                        (("train", train), ("val", val), ("test", test))}})


def _from_file(path: str, quick: bool) -> common.Task:
    arrays = stdlib.read_archive(path, DATA_KEYS)
    vocab = stdlib.BYTES
    if "vocab" in arrays:
        value = np.asarray(arrays["vocab"])
        if value.size != 1 or value.dtype.kind not in "iu" or int(value.reshape(-1)[0]) < 2:
            raise DataError(f"The array 'vocab' of the data file {path!r} must be one integer "
                            f">= 2 (the vocabulary size). Got {value!r}.")
        vocab = int(value.reshape(-1)[0])
    sizes = SIZES["quick" if quick else "full"]
    window = sizes["context"] + 1
    tokens = stdlib.token_array(arrays, "tokens", path, ndim=1, vocab=vocab,
                                minimum=4 * window if "tokens_test" not in arrays else 3 * window)
    if "tokens_test" in arrays:
        test = stdlib.token_array(arrays, "tokens_test", path, ndim=1, vocab=vocab,
                                  minimum=window)
    else:
        cut = max(window, len(tokens) // 10)
        tokens, test = tokens[:-cut], tokens[-cut:]
    cut = max(window, len(tokens) // 20)
    train, val = tokens[:-cut], tokens[-cut:]
    streams = {"train": torch.as_tensor(train), "val": torch.as_tensor(val),
               "test": torch.as_tensor(test)}
    return common.Task(NAME, streams, f"file: {Path(path).name}",
                       {"vocab": vocab, "sizes": sizes,
                        "bytes": {s: len(v) for s, v in streams.items()}})


def load_task(*, quick: bool, seed: int, data: str | None = None) -> common.Task:
    """Standard-library source split by files, or a user's ``.npz`` (module docstring).

    Raises
    ------
    DataError
        A user's file lacks ``tokens``, has a wrong shape or dtype, NaN, tokens out of
        range, or too few tokens for a training, a validation and a test window.
    """
    if data is not None:
        return _from_file(str(data), quick)
    return _generated(quick, seed)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained language model for ``task``, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ByteLM(task.info["vocab"], **task.info["sizes"])


def batches(task: common.Task, split: str, batch_size: int,
            generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """``(inputs, targets)`` of non-overlapping windows, each (batch, context).

    For "train" the windows start at an offset drawn from ``generator`` (a new
    tiling every epoch) and come in a shuffled order; otherwise they tile the
    stream from its start in order.
    """
    stream = task.splits[split]
    context = task.info["sizes"]["context"]
    last = len(stream) - context - 1  # the last start with a full window and its target
    if split == "train":
        offset = int(torch.randint(0, context, (1,), generator=generator))
        starts = torch.arange(min(offset, max(last, 0)), last + 1, context)
        starts = starts[torch.randperm(len(starts), generator=generator)]
    else:
        starts = torch.arange(0, last + 1, context)
    span = torch.arange(context + 1)
    for chunk in starts.split(batch_size):
        windows = stream[chunk[:, None] + span]
        yield windows[:, :-1], windows[:, 1:]


def loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    """Mean next-token cross-entropy of one batch (nats per token)."""
    inputs, targets = batch
    logits = model(inputs)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def evaluate(model: nn.Module, task: common.Task, split: str) -> float:
    """Mean next-token loss on ``split``, nats per token (per byte for byte data)."""
    total, count = 0.0, 0
    for inputs, targets in batches(task, split, 64, torch.Generator()):
        logits = model(inputs)
        total += float(nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    return total / count


def sample(task: common.Task) -> tuple[Tensor]:
    """Two test windows: ``model(*sample(task))`` gives (2, context, vocab) logits."""
    inputs, _ = next(batches(task, "test", 2, torch.Generator()))
    return (inputs,)


class _StepRun:
    """One model, its AdamW and a fixed training batch: what ``training_step_peak`` runs."""

    def __init__(self, task: common.Task, variant: str, *, seed: int,
                 hyper: common.Hyper) -> None:
        self.model = build(task, seed=seed)
        lr = hyper.lr_full
        if variant != "full":
            weights = "virtual" if variant == "lora virtual" else "stored"
            dr.adapt(self.model, r=EXTRAS_RANK, seed=seed, weights=weights, **ADAPT)
            lr = hyper.lr_lora
        self.model.train()
        groups = [g for g in dr.adapt_parameter_groups(self.model, hyper.weight_decay)
                  if g["params"]]
        self.parameters = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, lr=lr)
        self.clip = hyper.clip
        generator = torch.Generator().manual_seed(seed)
        self.batch = next(batches(task, "train", hyper.batch_size, generator))

    def step(self) -> None:
        """One training step as ``_arch_common.train`` takes it."""
        self.optimizer.zero_grad(set_to_none=True)
        loss(self.model, self.batch).backward()
        nn.utils.clip_grad_norm_(self.parameters, self.clip)
        self.optimizer.step()


def _live_bytes(run: _StepRun) -> int:
    """Bytes of the distinct storages of parameters, buffers, optimizer state and batch."""
    tensors = [*run.model.parameters(), *run.model.buffers(), *run.batch]
    for state in run.optimizer.state.values():
        tensors.extend(v for v in state.values() if isinstance(v, Tensor))
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def extras(task: common.Task, *, seed: int, quick: bool) -> dict[str, float | str]:
    """Checkpoint sizes and training-step memory: the rest of the paper's LM row.

    * ``dense_checkpoint_bytes``: the full model's ``state_dict`` as safetensors;
    * ``adapted_artifact_bytes``: ``dr.save_adapted`` of the model adapted at
      r = 8 (the trained tensors and the adapt arguments);
    * ``peak_full_bytes``, ``peak_lora_stored_bytes``, ``peak_lora_virtual_bytes``
      and their ``baseline_*`` (what lives between steps): live tensor bytes of
      one training step on the CPU with a batch of the training split
      (:func:`deepreservoir.footprint.training_step_peak`).
    """
    from safetensors.torch import save_file

    hyper = HYPER["quick" if quick else "full"]
    figures: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory() as folder:
        dense_path = Path(folder) / "dense.safetensors"
        save_file(build(task, seed=seed).state_dict(), str(dense_path))
        figures["dense_checkpoint_bytes"] = float(dense_path.stat().st_size)
        adapted = dr.adapt(build(task, seed=seed), r=EXTRAS_RANK, seed=seed, **ADAPT)
        artifact = dr.save_adapted(adapted, Path(folder) / "adapted.safetensors")
        figures["adapted_artifact_bytes"] = float(artifact.stat().st_size)
    figures["artifact_ratio"] = figures["adapted_artifact_bytes"] / figures[
        "dense_checkpoint_bytes"]
    for variant in ("full", "lora stored", "lora virtual"):
        measured = training_step_peak(_StepRun(task, variant, seed=seed, hyper=hyper),
                                      _live_bytes)
        key = variant.replace(" ", "_")
        figures[f"peak_{key}_bytes"] = float(measured["peak"])
        figures[f"baseline_{key}_bytes"] = float(measured["baseline"])
    context = task.info["sizes"]["context"]
    figures["memory_batch"] = f"{hyper.batch_size} windows of {context} tokens, rank {EXTRAS_RANK}"
    return figures
