"""Checkpoints, resume after a kill, and the paper's ablations as fit options."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import blobs

import deepreservoir as dr
from deepreservoir.errors import ArtifactError

OPTIONS = {"epochs": 4, "batch_size": 32, "loss": "cross_entropy", "seed": 7, "verbose": 0}


def make():
    return dr.scaffold_mlp((16, 8), 3, r=2, seed=1, dropout=0.1)


def params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


class Interrupt(Exception):
    pass


def stop_at(epoch):
    def callback(e, logs, model):
        if e == epoch:
            raise Interrupt
    return callback


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_matches_uninterrupted(tmp_path):
    x, y = blobs()
    reference = make()
    full_history = reference.fit(x, y, checkpoint=tmp_path / "a", **OPTIONS).history_
    interrupted = make()
    with pytest.raises(Interrupt):
        interrupted.fit(x, y, checkpoint=tmp_path / "b", callbacks=[stop_at(1)], **OPTIONS)
    assert (tmp_path / "b" / "LATEST").read_text() == "epoch-00002"
    resumed = make()
    history = resumed.fit(x, y, checkpoint=tmp_path / "b", resume=True, **OPTIONS).history_
    assert_same(params(reference), params(resumed))
    assert len(history.epoch) == 4
    np.testing.assert_array_equal(history.loss.values, full_history.loss.values)
    np.testing.assert_array_equal(history.beta.values, full_history.beta.values)
    assert list(history.layer.values) == ["layer0", "layer1"]
    # the checkpoint holds a loadable model
    loaded = dr.load(tmp_path / "b" / "epoch-00004" / "model")
    assert np.array_equal(loaded.run(x), resumed.run(x))


def test_resume_after_a_hard_kill(tmp_path):
    x, y = blobs()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    script = f"""
import os, signal, numpy as np, deepreservoir as dr
x, y = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'y.npy')!r})
model = dr.scaffold_mlp((16, 8), 3, r=2, seed=1, dropout=0.1)
def kill(epoch, logs, model):
    if epoch == 2:
        os.kill(os.getpid(), signal.SIGKILL)
model.fit(x, y, checkpoint={str(tmp_path / 'c')!r}, callbacks=[kill], **{OPTIONS!r})
"""
    result = subprocess.run([sys.executable, "-c", script], timeout=120, check=False)
    assert result.returncode != 0
    assert (tmp_path / "c" / "LATEST").read_text() == "epoch-00003"
    resumed = make()
    resumed.fit(x, y, checkpoint=tmp_path / "c", resume=True, **OPTIONS)
    reference = make()
    reference.fit(x, y, **OPTIONS)
    assert_same(params(reference), params(resumed))


def test_resume_with_other_options_is_refused(tmp_path):
    x, y = blobs()
    with pytest.raises(Interrupt):
        make().fit(x, y, checkpoint=tmp_path, callbacks=[stop_at(0)], **OPTIONS)
    with pytest.raises(ArtifactError, match=r"training options differ \(lr: checkpoint 0\.001 "
                                            r"vs now 0\.01\)"):
        make().fit(x, y, checkpoint=tmp_path, resume=True, **{**OPTIONS, "lr": 0.01})


def test_nan_keeps_the_last_good_checkpoint(tmp_path):
    x, y = blobs()
    calls = []

    def exploding(out, target):
        calls.append(1)
        value = torch.nn.functional.cross_entropy(out, target)
        return value * float("nan") if len(calls) == 20 else value

    with pytest.raises(dr.TrainingError, match=r"epoch 3 \(of 4\), batch 4 \(of 8\).*last good "
                                                r"checkpoint \(epoch-00002\)"):
        make().fit(x, y, checkpoint=tmp_path, **{**OPTIONS, "loss": exploding})
    assert (tmp_path / "LATEST").read_text() == "epoch-00002"
    assert not [p for p in Path(tmp_path).iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("mode", ["epoch", "batch"])
def test_resampled_scaffold(tmp_path, mode):
    x, y = blobs(n=96)
    model = make()
    model.fit(x, y, resample=mode, **{**OPTIONS, "epochs": 2})
    layer = model.nodes["layer0"]
    expected = 1 if mode == "epoch" else 2 * 3 - 1
    assert layer.generation_ == expected
    static = make()
    static.run(x)
    assert not torch.equal(layer.W_, static.nodes["layer0"].W_)
    loaded = dr.load(model.save(tmp_path / "m.dr"))
    assert torch.equal(loaded.nodes["layer0"].W_, layer.W_)


def test_resampling_resumes_identically(tmp_path):
    x, y = blobs(n=96)
    reference = make()
    reference.fit(x, y, resample="batch", **OPTIONS)
    with pytest.raises(Interrupt):
        make().fit(x, y, resample="batch", checkpoint=tmp_path, callbacks=[stop_at(1)],
                   **OPTIONS)
    resumed = make()
    resumed.fit(x, y, resample="batch", checkpoint=tmp_path, resume=True, **OPTIONS)
    assert_same(params(reference), params(resumed))
    assert torch.equal(reference.nodes["layer0"].W_, resumed.nodes["layer0"].W_)


def test_one_adapter_across_seeds():
    x, y = blobs(n=300, classes=4)
    model = dr.scaffold_mlp((32,), 4, r=4, seed=0)
    owners = {10: [0, 1], 20: [2, 3]}
    history = model.fit(x, y, seed_labels=owners, validation_split=0.2, lr=1e-2,
                        **{**OPTIONS, "epochs": 6}).history_
    assert model.nodes["layer0"].reseed_root_ is None
    assert float(history.val_accuracy[-1]) > 0.8
    for seed, labels in owners.items():
        model.reseed(seed)
        mine = np.isin(y, labels)
        predicted = dr.training.predict(model, x[mine]).argmax(-1)
        assert np.mean(np.isin(predicted, labels)) > 0.8
    model.reseed(None)


def test_checkpoint_writes_are_atomic_names(tmp_path):
    x, y = blobs(n=64)
    make().fit(x, y, checkpoint=tmp_path, checkpoint_every=2, **OPTIONS)
    names = sorted(p.name for p in Path(tmp_path).iterdir())
    assert names == ["LATEST", "epoch-00004"]
    assert os.path.isfile(tmp_path / "epoch-00004" / "optimizer.safetensors")


def test_static_resampling_is_the_default():
    x, y = blobs(n=96)
    default, static = make(), make()
    default.fit(x, y, **OPTIONS)
    static.fit(x, y, resample="static", **OPTIONS)
    assert_same(params(default), params(static))
    assert static.nodes["layer0"].generation_ == 0


def test_adapters_alone_and_scaffold_removed_after_training(tmp_path):
    x, y = blobs(n=120)
    # B = 0 on a zero scaffold is a dead start (refused); B drawn Kaiming trains
    alone = dr.scaffold_mlp((16, 8), 3, r=2, seed=1, family=None, b_init="kaiming")
    history = alone.fit(x, y, lr=1e-2, **OPTIONS).history_
    assert float(alone.nodes["layer0"].B_.detach().abs().sum()) > 0
    assert alone.nodes["layer0"].W_ is None
    assert float(history.loss[-1]) < float(history.loss[0])
    assert "nodes.layer0.W_" not in alone.state_dict()
    loaded = dr.load(alone.save(tmp_path / "alone.dr"))
    assert np.array_equal(loaded.run(x), alone.run(x))

    model = make()
    model.fit(x, y, lr=1e-2, **OPTIONS)
    before = model.run(x)
    layer = model.nodes["layer0"]
    model.remove_scaffold()
    # without β·W_seed, each layer applies only scale·B·A
    h = torch.relu(torch.as_tensor(x) @ (layer.scale * layer.B_ @ layer.A_).detach().T)
    torch.testing.assert_close(layer.effective_weight(),
                               layer.scale * (layer.B_ @ layer.A_).detach())
    removed = model.run(x)
    assert not np.array_equal(removed, before)
    second = model.nodes["layer1"]
    h = torch.relu(h @ (second.scale * second.B_ @ second.A_).detach().T)
    head = model.nodes["head"]
    torch.testing.assert_close(torch.as_tensor(removed), h @ head.W_.detach().T + head.bias_)
    loaded = dr.load(model.save(tmp_path / "removed.dr"))
    assert not loaded.nodes["layer0"].scaffold_active
    assert np.array_equal(loaded.run(x), removed)
    model.restore_scaffold()
    assert np.array_equal(model.run(x), before)


def test_an_optimizer_state_from_before_the_beta_group_is_renumbered():
    from types import SimpleNamespace

    from deepreservoir.training.checkpoint import _split_single_group

    weight, beta, other = (torch.nn.Parameter(torch.randn(3)) for _ in range(3))
    legacy = torch.optim.AdamW([weight, beta, other], lr=0.1, weight_decay=0.01)
    for p in (weight, beta, other):
        p.grad = torch.randn(3)
    legacy.step()
    today = torch.optim.AdamW([{"params": [weight, other], "weight_decay": 0.01},
                               {"params": [beta], "weight_decay": 0.0}], lr=0.1)
    trainer = SimpleNamespace(params=[weight, beta, other], optimizer=today)
    today.load_state_dict(_split_single_group(legacy.state_dict(), trainer))
    for p in (weight, beta, other):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(today.state[p][key], legacy.state[p][key])
    assert [g["weight_decay"] for g in today.param_groups] == [0.01, 0.0]


def test_a_checkpoint_written_with_one_optimizer_group_resumes(tmp_path, monkeypatch):
    import deepreservoir.training.trainer as trainer_module

    x, y = blobs()
    old = make()
    old.run(x)
    order = {id(p): i for i, p in enumerate(p for p in old.parameters() if p.requires_grad)}

    def one_group(name, params, lr, weight_decay, no_decay=()):
        # the layout before β's group: one group, in the order of the trainable parameters
        every = sorted([*params, *no_decay], key=lambda p: order[id(p)])
        return torch.optim.AdamW(every, lr=lr, weight_decay=weight_decay)

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "make_optimizer", one_group)
        with pytest.raises(Interrupt):
            old.fit(x, y, checkpoint=tmp_path / "old", callbacks=[stop_at(1)], **OPTIONS)
    resumed = make()
    history = resumed.fit(x, y, checkpoint=tmp_path / "old", resume=True, **OPTIONS).history_
    assert len(history.epoch) == 4 and np.isfinite(history.loss.values).all()
