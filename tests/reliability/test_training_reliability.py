"""Gradient training never keeps, reports or checkpoints a non-finite state as good.

Each test here failed before the fix ("Nothing silent"): a divergence in the
last epoch slipped through, the "last good" state could overflow, a NaN state
was checkpointed, a bad checkpoint folder failed only after an epoch, staging
leftovers piled up, ``seed_labels`` dropped samples, a stray label built a huge
head, and text/object/complex targets gave raw torch errors or a silent cast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import deepreservoir as dr
from deepreservoir.constraints import finite_check
from deepreservoir.errors import DataError, ParameterError, TrainingError
from deepreservoir.training import Callback
from deepreservoir.training.samples import MAX_INFERRED_CLASSES

RNG = np.random.default_rng(0)
X = RNG.normal(size=(256, 20)).astype(np.float32)
Y = (X[:, 0] > 0).astype(int)
EXPLODE = dict(batch_size=256, lr=1e30, optimizer="sgd", loss="cross_entropy", verbose=0)


def model():
    return dr.Input() >> dr.Scaffold(32, r=4, seed=1) >> dr.LoRAReadout(2, r=2)


def outputs_finite(m) -> bool:
    return bool(np.isfinite(m.run(X)).all())


class Epochs(Callback):
    """Records the epochs that began."""

    def __init__(self):
        self.begun = []

    def on_epoch_begin(self, trainer, epoch):
        self.begun.append(epoch)


class Poison(Callback):
    """Puts an Inf into a parameter after the batches of epoch ``epoch``."""

    def __init__(self, epoch, node="LoRAReadout-0", tensor="B_"):
        self.epoch, self.node, self.tensor = epoch, node, tensor

    def on_batches_end(self, trainer, epoch):
        if epoch == self.epoch:
            with torch.no_grad():
                getattr(trainer.model.nodes[self.node], self.tensor).fill_(float("inf"))


# ---------------------------------------------------------------- divergence
def test_the_issue_reproduction_raises_and_restores_the_initial_state(tmp_path):
    m = model()
    with pytest.raises(TrainingError, match=r"end of epoch 1 \(of 1\), the validation forward "
                                            r"pass is not finite: Node 'Scaffold-0'.*restored "
                                            r"to its initial state \(before epoch 1\)"):
        m.fit(X, Y, epochs=1, validation_split=0.1, checkpoint=tmp_path / "ck", **EXPLODE)
    assert outputs_finite(m)
    assert not (tmp_path / "ck" / "LATEST").exists()
    assert not [p for p in (tmp_path / "ck").iterdir()]  # no checkpoint of a NaN state


@pytest.mark.parametrize("checked", [True, False])
def test_a_divergence_in_the_final_epoch_raises(checked):
    m = model()  # the loss of the only batch is finite; the state it leads to is not
    detail = r"is not finite: Node 'Scaffold-0'" if checked else r"gives \d+ NaN or Inf outputs"
    with finite_check(checked), pytest.raises(
            TrainingError, match=r"end of epoch 1 \(of 1\), the forward pass on the probe batch "
                                 r"\(the first 32 training samples\) " + detail):
        m.fit(X, Y, epochs=1, **EXPLODE)
    assert outputs_finite(m)


def test_a_forward_pass_that_overflows_mid_epoch_is_a_training_error():
    m = model()
    with pytest.raises(TrainingError, match=r"forward pass became non-finite at epoch 1 \(of "
                                            r"2\), batch 2 \(of 2\): Node 'Scaffold-0'.*"
                                            r"restored to its initial state"):
        m.fit(X, Y, epochs=2, **{**EXPLODE, "batch_size": 128})
    assert outputs_finite(m)


def test_the_restored_last_good_state_gives_finite_outputs():
    m = model()  # epoch 1 leaves parameters of ~1e29 (finite) whose outputs overflow
    with pytest.raises(TrainingError, match="restored to its initial state"):
        m.fit(X, Y, epochs=3, **EXPLODE)
    assert outputs_finite(m)
    assert all(float(p.detach().abs().max()) < 1e6 for p in m.parameters())


def test_a_non_finite_parameter_is_named_and_the_last_good_epoch_restored():
    m = model()
    with pytest.raises(TrainingError, match=r"end of epoch 3 \(of 3\), the parameter\(s\) "
                                            r"'LoRAReadout-0.B_' hold NaN or Inf.*end of "
                                            r"epoch 2, the last good epoch"):
        m.fit(X, Y, epochs=3, batch_size=64, loss="cross_entropy", verbose=0,
              callbacks=[Poison(2)])
    assert outputs_finite(m)


def test_no_checkpoint_of_a_non_finite_state_is_written(tmp_path):
    folder = tmp_path / "ck"
    with pytest.raises(TrainingError, match=r"epoch 2 \(of 3\).*last good checkpoint "
                                            r"\(epoch-00001\)"):
        model().fit(X, Y, epochs=3, batch_size=64, loss="cross_entropy", verbose=0,
                    checkpoint=folder, callbacks=[Poison(1)])
    assert (folder / "LATEST").read_text() == "epoch-00001"
    assert sorted(p.name for p in folder.iterdir()) == ["LATEST", "epoch-00001"]
    for file in folder.rglob("*.safetensors"):
        for name, tensor in load_file(str(file)).items():
            assert bool(torch.isfinite(tensor).all()), (file, name)


def test_a_checkpoint_callback_refuses_a_state_a_callback_made_non_finite(tmp_path):
    class LatePoison(Callback):  # runs after the trainer's check, before the Checkpoint
        def on_epoch_end(self, trainer, epoch, logs):
            if epoch == 1:
                with torch.no_grad():
                    trainer.model.nodes["LoRAReadout-0"].B_.fill_(float("nan"))

    folder, m = tmp_path / "ck", model()
    with pytest.raises(TrainingError, match=r"checkpoint of epoch 2 was not written.*"
                                            r"'LoRAReadout-0.B_'.*restored to the end of epoch 2"):
        m.fit(X, Y, epochs=3, batch_size=64, loss="cross_entropy", verbose=0,
              callbacks=[LatePoison(), dr.training.Checkpoint(folder)])
    assert (folder / "LATEST").read_text() == "epoch-00001"
    assert outputs_finite(m)


# ------------------------------------------------------ the checkpoint folder
def _read_only_folder(tmp_path: Path) -> Path:
    if os.name != "posix":
        pytest.skip("needs POSIX permissions")
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    folder = Path("/sys")  # root writes everywhere, but not in sysfs
    try:
        (folder / ".probe").write_bytes(b"")
    except OSError:
        return folder
    pytest.skip("no folder this process cannot write")


@pytest.mark.parametrize("kind", ["file", "under a file", "read-only"])
def test_an_unusable_checkpoint_folder_is_refused_before_any_epoch(tmp_path, kind):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    path, expected = {"file": (afile, "which is a file"),
                      "under a file": (afile / "sub", "cannot be created"),
                      "read-only": (None, "cannot write in")}[kind]
    if path is None:
        path = _read_only_folder(tmp_path)
    epochs = Epochs()
    try:
        with pytest.raises(ParameterError, match=rf"The 'checkpoint' parameter of fit .*"
                                                 rf"'{path}'.*{expected}"):
            model().fit(X, Y, epochs=2, batch_size=64, loss="cross_entropy", verbose=0,
                        checkpoint=path, callbacks=[epochs])
    finally:
        if kind == "read-only" and path.is_relative_to(tmp_path):
            path.chmod(0o700)
    assert epochs.begun == []


def test_a_missing_checkpoint_folder_is_created_before_the_first_epoch(tmp_path):
    folder = tmp_path / "a" / "b"
    seen = []

    class Look(Callback):
        def on_epoch_begin(self, trainer, epoch):
            seen.append(folder.is_dir())

    model().fit(X, Y, epochs=1, batch_size=128, loss="cross_entropy", verbose=0,
                checkpoint=folder, callbacks=[Look()])
    assert seen == [True]
    assert (folder / "LATEST").read_text() == "epoch-00001"


def test_stale_staging_leftovers_are_removed_and_a_live_runs_kept(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = int(finished.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = [folder / f".epoch-00003.tmp-{dead}", folder / f".LATEST.tmp-{dead}",
                 folder / f".epoch-00009.tmp-{os.getpid()}"]
        kept = [folder / f".epoch-00002.tmp-{live.pid}", folder / f".LATEST.tmp-{live.pid}"]
        for path in stale + kept:
            if "epoch" in path.name:
                path.mkdir()
                (path / "trainer.json").write_text(json.dumps({}))
            else:
                path.write_text("epoch-00003")
        seen = {}

        class Look(Callback):
            def on_epoch_begin(self, trainer, epoch):
                seen[epoch] = sorted(p.name for p in folder.iterdir())

        model().fit(X, Y, epochs=1, batch_size=128, loss="cross_entropy", verbose=0,
                    checkpoint=folder, callbacks=[Look()])
        expected = sorted(p.name for p in kept)
        assert seen[0] == expected  # removed when the run started
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["LATEST", "epoch-00001", *expected])
        assert all(p.exists() for p in kept)
    finally:
        live.kill()
        live.wait()


# --------------------------------------------------------------------- labels
SMALL_X = RNG.normal(size=(64, 6)).astype(np.float32)
SMALL_Y = RNG.integers(0, 3, size=64)


def small(units=3):
    return dr.Input() >> dr.Scaffold(16, r=2, seed=1) >> dr.LoRAReadout(units, r=2)


def test_seed_labels_must_cover_every_label():
    with pytest.raises(ParameterError, match=r"'seed_labels' parameter of fit gives no seed to "
                                             r"the labels \[2\] of 'y' \(\d+ of 64 samples\)"):
        small().fit(SMALL_X, SMALL_Y, epochs=1, loss="cross_entropy", verbose=0,
                    seed_labels={0: [0, 1]})


def test_seed_labels_must_cover_the_validation_labels_before_any_epoch():
    epochs = Epochs()
    y_val = np.array([0, 1, 2, 3])
    with pytest.raises(ParameterError, match=r"no seed to the labels \[3\] of "
                                             r"'validation_data\[1\]'"):
        small(4).fit(SMALL_X, SMALL_Y, epochs=1, loss="cross_entropy", verbose=0,
                     seed_labels={0: [0, 1], 1: [2]}, callbacks=[epochs],
                     validation_data=(SMALL_X[:4], y_val))
    assert epochs.begun == []


def test_an_inferred_number_of_classes_is_capped():
    y = SMALL_Y.copy()
    y[5] = 10**6
    head = dr.LoRAReadout(r=2)  # its size is inferred from the labels
    with pytest.raises(DataError, match=rf"Got 1000000 at index \(5,\).*head of 1000001 "
                                        rf"classes.*{MAX_INFERRED_CLASSES}|"
                                        rf"{MAX_INFERRED_CLASSES}.*Got 1000000 at index "
                                        rf"\(5,\)"):
        (dr.Input() >> dr.Scaffold(16, r=2, seed=1) >> head).fit(
            SMALL_X, y, epochs=1, loss="cross_entropy", verbose=0)
    assert not head.built


def test_a_sampler_batch_with_a_label_beyond_the_head_is_refused():
    batches = [(torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])),
               (torch.randn(8, 6), torch.tensor([0, 1, 2, 5, 1, 2, 0, 1]))]
    with pytest.raises(DataError, match=r"must be in \[0, 3\).*Got 5 at index \(3,\)"):
        small().fit(None, sampler=batches, epochs=1, loss="cross_entropy", verbose=0)


# -------------------------------------------------------------------- targets
@pytest.mark.parametrize("targets, loss, expected", [
    (["a", "b"] * 32, "cross_entropy", r"targets 'y' must be numbers.*<U1"),
    ([1.0, None] * 32, "mse", r"targets 'y' must be numbers.*object"),
    ("mixed complex", "mse", r"targets 'y\[1\]' must be real.*complex"),
])
def test_text_object_and_complex_targets_are_refused(targets, loss, expected):
    x, m = SMALL_X, small(1)
    if isinstance(targets, str):  # ragged series: one real target list, one complex
        x = [SMALL_X[:10], SMALL_X[10:30]]
        targets = [np.zeros((10, 1)), np.zeros((20, 1)) + 1j]
        m = dr.Reservoir(16, seed=1, r=2) >> dr.LoRAReadout(1, r=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cast that drops the imaginary part warns
        with pytest.raises(DataError, match=expected):
            m.fit(x, targets, epochs=1, loss=loss, verbose=0)
