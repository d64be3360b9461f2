"""Gradient training reads nothing back from the device per batch.

A host read (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``, ``.cpu()``)
waits for every queued kernel: one per batch serialises a GPU run. The trainer
sums the loss and records the first non-finite batch on the device and reads
them once per epoch; these tests count the reads of a fit with 2 and with 8
batches per epoch, and check that the deferred check still raises the error an
immediate one gives, at the same batch, with the model put back.
"""

from __future__ import annotations

import collections
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.errors import TrainingError
from deepreservoir.training import Callback, Trainer
from deepreservoir.training.options import derive_seed

PACKAGE = str(Path(dr.__file__).parent)
READS = ("item", "__float__", "__bool__", "__int__", "__index__", "tolist", "cpu", "numpy")


def model():
    return dr.Input() >> dr.Scaffold(32, r=4, seed=1) >> dr.LoRAReadout(2, r=2)


def data(n):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int)


def count_reads(batches: int, *, optimizer: str, ours_only: bool, epochs: int = 2):
    """Host reads during a fit of ``epochs`` epochs of ``batches`` batches of 16."""
    x, y = data(16 * batches)
    m = model()
    m.fit(x[:16], y[:16], epochs=1, batch_size=16, verbose=0, loss="cross_entropy")  # build
    counts: collections.Counter = collections.Counter()
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if not ours_only or caller.startswith(PACKAGE):
                counts[name] += 1
            return originals[name](self, *args, **kwargs)
        return read

    try:
        for name in READS:
            setattr(torch.Tensor, name, wrap(name))
        m.fit(x, y, epochs=epochs, batch_size=16, verbose=0, loss="cross_entropy",
              optimizer=optimizer)
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)
    return counts


def test_the_count_of_host_reads_does_not_grow_with_the_batches():
    """SGD keeps no step counter, so every read of the fit is counted."""
    few = count_reads(2, optimizer="sgd", ours_only=False)
    many = count_reads(8, optimizer="sgd", ours_only=False)
    assert sum(few.values()) > 0  # the counting works (per-epoch checks read)
    assert many == few


def test_deepreservoirs_own_reads_do_not_grow_with_the_batches_under_adamw():
    """torch's CPU AdamW reads its CPU step counter (no device wait; fused on CUDA: none)."""
    assert count_reads(8, optimizer="adamw", ours_only=True) == count_reads(
        2, optimizer="adamw", ours_only=True)


def test_the_reads_are_per_epoch():
    one = count_reads(4, optimizer="sgd", ours_only=False, epochs=1)
    three = count_reads(4, optimizer="sgd", ours_only=False, epochs=3)
    assert sum(three.values()) > sum(one.values())


class Losses(Callback):
    """Each batch's loss and size, read on the host (as the trainer did before)."""

    def __init__(self):
        self.rows = []

    def on_batch_end(self, trainer, batch, loss):
        self.rows.append((trainer.epoch, float(loss), len(batch)))


def test_the_epoch_loss_summed_on_the_device_equals_the_host_sum_bitwise():
    x, y = data(100)
    seen = Losses()
    m = model().fit(x, y, epochs=2, batch_size=16, verbose=0, loss="cross_entropy",
                    callbacks=[seen])
    for epoch in range(2):
        running = count = 0
        for e, loss, size in seen.rows:
            if e == epoch:
                running += loss * size
                count += size
        assert m.history_["loss"].values[epoch] == running / count


# ------------------------------------------------- non-finite steps, deferred
def _poisoned(marker: float):
    """MSE, NaN for a batch holding a target equal to ``marker`` (decided on the device)."""
    def loss(out, target):
        bad = (target == marker).any()
        return torch.nn.functional.mse_loss(out, target) + torch.where(
            bad, torch.tensor(math.nan), torch.tensor(0.0))
    return loss


def _bad_batch(n: int, batch_size: int, seed: int, row: int) -> int:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, 0)))
    return int((order == row).nonzero()[0, 0]) // batch_size


@pytest.mark.parametrize("immediate", [False, True])
def test_a_nan_loss_mid_epoch_names_its_batch_and_restores_the_initial_state(
        immediate, monkeypatch):
    monkeypatch.setattr(Trainer, "immediate_checks", immediate)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    y[37] = 7.0
    batch = _bad_batch(64, 16, 0, 37)
    m = dr.Input() >> dr.Scaffold(8, r=2, seed=1) >> dr.LoRAReadout(1, r=1)
    m.fit(x[:2], y[:2], epochs=1, batch_size=2, verbose=0, lr=1e-9)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ends = Losses()
    with pytest.raises(TrainingError, match=rf"The loss became nan at epoch 1 \(of 2\), batch "
                                            rf"{batch + 1} \(of 4\).*restored to its initial"):
        m.fit(x, y, epochs=2, batch_size=16, verbose=0, loss=_poisoned(7.0),
              callbacks=[ends])
    for key, value in m.state_dict().items():
        assert torch.equal(value, before[key]), key
    # deferred: the epoch ran, then was run again to the bad batch, which raised there
    expected = batch if immediate else 4 + batch
    assert len(ends.rows) == expected


def test_without_a_bad_batch_an_epoch_runs_once():
    x, y = data(64)
    ends = Losses()
    model().fit(x, y, epochs=2, batch_size=16, verbose=0, loss="cross_entropy",
                callbacks=[ends])
    assert len(ends.rows) == 8


def test_the_default_sampler_cuts_batches_on_the_datas_device_in_the_seeded_order():
    from deepreservoir.training.samples import Samples, ShuffledSampler

    samples = Samples(torch.arange(10.0).reshape(10, 1, 1), torch.arange(1, 11),
                      torch.arange(10), torch.ones(10, dtype=torch.bool), False, True)
    got = [b.y.tolist() for b in ShuffledSampler(samples, 4, seed=3).batches(2)]
    order = torch.randperm(10, generator=torch.Generator().manual_seed(derive_seed(3, 2)))
    assert got == [order[i:i + 4].tolist() for i in range(0, 10, 4)]
    moved = samples.to(torch.device("meta"))
    assert {t.device.type for t in (moved.x, moved.lengths, moved.y, moved.mask)} == {"meta"}
    assert samples.to(torch.device("cpu")) is samples


def test_a_train_step_outside_fit_fails_at_once_on_a_nan_loss():
    """Deferred checks are for fit's epoch loop; a lone train_step never hides a NaN."""
    from deepreservoir.training import GradientConfig, Samples
    from deepreservoir.training.options import GRADIENT_DEFAULTS

    model = dr.Input() >> dr.Dense(1, seed=0)
    model.run(np.zeros((1, 2), dtype=np.float32))
    trainer = Trainer(model, GradientConfig.from_options({**GRADIENT_DEFAULTS, "lr": 0.1}))
    x = torch.full((4, 1, 2), float("nan"))
    batch = Samples(x, None, torch.zeros(4, 1), torch.ones(4, dtype=torch.bool), False, False)
    with pytest.raises(TrainingError, match="non-finite|nan"):
        trainer.train_step(batch)


def test_after_a_failed_fit_train_step_and_bce_targets_are_checked_again():
    from deepreservoir.training import GradientConfig, Samples
    from deepreservoir.training.options import GRADIENT_DEFAULTS

    model = dr.Input() >> dr.Dense(1, seed=0)
    model.run(np.zeros((1, 2), dtype=np.float32))
    options = {**GRADIENT_DEFAULTS, "lr": 0.1, "loss": "bce", "epochs": 1}
    trainer = Trainer(model, GradientConfig.from_options(options))
    nan = Samples(torch.full((4, 1, 2), float("nan")), None, torch.zeros(4, 1),
                  torch.ones(4, dtype=torch.bool), False, False)
    with pytest.raises(TrainingError):
        trainer.fit(nan)
    with pytest.raises(TrainingError):
        trainer.train_step(nan)  # not deferred: the fit that failed is over
    bad_target = Samples(torch.ones(4, 1, 2), None, torch.full((4, 1), 5.0),
                         torch.ones(4, dtype=torch.bool), False, False)
    with pytest.raises(Exception, match=r"\[0, 1\]|probabilit"):
        trainer.train_step(bad_target)
