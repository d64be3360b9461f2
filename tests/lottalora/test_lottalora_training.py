"""Model.fit by gradients: history, progress bar, determinism, mixed graphs, bad input."""

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import blobs
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir.errors import DataError, GraphError, ParameterError


def small(seed=0, r=2, dropout=0.1):
    return dr.scaffold_mlp((16, 8), 3, r=r, seed=seed, dropout=dropout)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_fit_learns_and_returns_history(data):
    x, y = data
    model = small()
    history = model.fit(x, y, epochs=15, batch_size=32, lr=1e-2, loss="cross_entropy",
                        validation_split=0.2, verbose=0).history_
    assert isinstance(history, xr.Dataset)
    assert list(history.epoch.values) == list(range(1, 16))
    for key in ("loss", "val_loss", "val_accuracy", "lr", "seconds"):
        assert key in history
    assert float(history.val_accuracy[-1]) > 0.9
    assert float(history.loss[-1]) < float(history.loss[0])
    assert "α/r" in history.attrs["alpha_convention"]
    assert model.history_ is history
    assert dr.training.evaluate(model, x, y)["accuracy"] > 0.9


def test_history_records_beta_per_layer_and_epoch(data):
    x, y = data
    model = dr.Input() >> dr.Scaffold(16, r=2, seed=0, name="s0") >> dr.BetaGate(
        name="gate") >> dr.LoRAReadout(3, r=1, name="head")
    seen = []

    def record(epoch, logs, model):
        seen.append([float(model.nodes[n].beta_.detach()) for n in ("s0", "gate", "head")])

    history = model.fit(x, y, epochs=3, batch_size=32, lr=1e-2, loss="cross_entropy",
                        callbacks=[record], verbose=0).history_
    assert history.beta.dims == ("epoch", "layer")
    assert list(history.layer.values) == ["s0", "gate", "head"]
    np.testing.assert_array_equal(history.beta.values, np.array(seen))
    assert not np.array_equal(history.beta.values[0], np.ones(3))  # the gates did train
    full = dr.scaffold_mlp((8,), 3, full=True, seed=0)
    history = full.fit(x, y, epochs=1, loss="cross_entropy", verbose=0).history_
    assert history.beta.shape == (1, 0) and history.beta.dims == ("epoch", "layer")


def test_schedule_and_optimizers(data):
    x, y = data
    history = small().fit(x, y, epochs=4, batch_size=60, lr=0.1, schedule="linear",
                          loss="cross_entropy", optimizer="sgd", verbose=0).history_
    # 4 batches per epoch, 16 steps: lr after epoch e is 0.1·(1 − 4e/16)
    np.testing.assert_allclose(history.lr.values, [0.075, 0.05, 0.025, 0.0])
    history = small().fit(x, y, epochs=2, batch_size=120, lr=0.1, schedule="cosine",
                          loss="cross_entropy", optimizer="adam", verbose=0).history_
    np.testing.assert_allclose(history.lr.values, [0.05, 0.0], atol=1e-12)
    history = small().fit(x, y, epochs=2, lr=0.1, schedule="constant", loss="cross_entropy",
                          verbose=0, device="cpu").history_
    np.testing.assert_allclose(history.lr.values, [0.1, 0.1])
    finals = []
    for optimizer in ("adamw", "adam", "sgd"):
        model = small(dropout=0.0)
        model.fit(x, y, epochs=1, lr=1e-2, weight_decay=0.1, optimizer=optimizer,
                  loss="cross_entropy", verbose=0)
        finals.append(model.nodes["layer0"].B_.detach().clone())
    assert not torch.equal(finals[0], finals[1]) and not torch.equal(finals[1], finals[2])


def test_same_seed_bit_identical_and_global_rng_untouched(data):
    x, y = data
    before = torch.get_rng_state()
    runs = []
    for _ in range(2):
        model = small()
        model.fit(x, y, epochs=2, batch_size=32, loss="cross_entropy", seed=3, verbose=0)
        runs.append(state(model))
    assert torch.equal(before, torch.get_rng_state())
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
    other = small()
    other.fit(x, y, epochs=2, batch_size=32, loss="cross_entropy", seed=4, verbose=0)
    assert not torch.equal(state(other)["nodes.layer0.B_"], runs[0]["nodes.layer0.B_"])


def test_progress_bar_and_silence(data, capsys):
    x, y = data
    small().fit(x, y, epochs=1, loss="cross_entropy", validation_split=0.1, verbose=1)
    err = capsys.readouterr().err
    assert "fit" in err and "loss=" in err and "val_accuracy=" in err and "epoch=1/1" in err
    small().fit(x, y, epochs=1, loss="cross_entropy", verbose=0)
    assert capsys.readouterr().err == ""


def test_validation_data_and_callbacks(data):
    x, y = data
    seen = []

    def stop_after_two(epoch, logs, model):
        seen.append((epoch, sorted(logs)))
        return epoch == 1

    history = small().fit(x[:200], y[:200], validation_data=(x[200:], y[200:]), epochs=5,
                          loss="cross_entropy", callbacks=[stop_after_two], verbose=0).history_
    assert len(history.epoch) == 2
    assert seen[0][0] == 0 and "val_accuracy" in seen[0][1]


def test_mse_bce_and_callable_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    target = x @ rng.normal(size=(4, 2))
    model = dr.Input() >> dr.Scaffold(8, r=2, seed=0) >> dr.Dense(2)
    history = model.fit(x, target, epochs=20, lr=1e-2, verbose=0).history_
    assert float(history.loss[-1]) < float(history.loss[0])
    labels = (x[:, :1] > 0).astype(np.float32)
    model = dr.Input() >> dr.Scaffold(8, r=2, seed=0) >> dr.Dense(1)
    history = model.fit(x, labels, epochs=10, lr=1e-2, loss="bce", validation_split=0.2,
                        verbose=0).history_
    assert "val_accuracy" in history
    model = dr.Input() >> dr.Dense(2, seed=0)
    history = model.fit(x, target, epochs=2, loss=lambda a, b: (a - b).abs().mean(),
                        verbose=0).history_
    assert history.attrs["loss_function"] == "callable"


def test_ridge_only_model_keeps_closed_form():
    u = np.sin(np.linspace(0, 20, 200))[:, None]
    esn = dr.Reservoir(20, seed=0) >> dr.Ridge(1e-6)
    assert esn.fit(u[:-1], u[1:], warmup=5) is esn
    features = dr.Input() >> dr.Scaffold(30, seed=0) >> dr.Ridge(1e-3)  # r = 0: no parameters
    assert features.fit(u[:-1], u[1:]) is features


def test_dispatch_needs_no_training_keyword():
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    model = dr.scaffold_mlp((8,), 2, r=1)  # not built yet
    assert model.fit(x, np.zeros((40, 2), dtype=np.float32), verbose=0) is model
    assert isinstance(model.history_, xr.Dataset) and model.history_.attrs["path"] == "gradient"


def test_mixed_ridge_and_gradient_nodes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    target = np.tanh(x @ rng.normal(size=(3, 2))).astype(np.float32)
    scaffold = dr.Scaffold(16, r=2, seed=0, activation="tanh")
    ridge = dr.Ridge(1e-4)
    model = dr.Input() >> scaffold >> ridge
    history = model.fit(x, target, epochs=3, lr=1e-2, verbose=0).history_
    assert ridge.fitted and len(history.epoch) == 3
    # phase 3: the Ridge solution is the closed form on the trained features
    features = torch.tanh(torch.as_tensor(x) @ scaffold.effective_weight().detach().T)
    refit = dr.Ridge(1e-4).fit(features.numpy(), target)
    torch.testing.assert_close(ridge.Wout_, refit.Wout_, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loss": "hinge"}, ParameterError,
         r"'loss' parameter of fit must be one of 'mse', 'cross_entropy', 'bce' or a callable\. "
         r"Got 'hinge'"),
        ({"optimizer": "lbfgs"}, ParameterError, r"'optimizer' parameter of fit.*Got 'lbfgs'"),
        ({"epochs": 0}, ParameterError, r"'epochs' parameter of fit must be an int >= 1\. Got 0"),
        ({"lr": -1.0}, ParameterError, r"'lr' parameter of fit must be a float > 0\. Got -1\.0"),
        ({"validation_split": 1.0}, ParameterError, r"'validation_split'.*\[0, 1\)"),
        ({"schedule": "step"}, ParameterError, r"'schedule' parameter.*Got 'step'"),
        ({"resample": "sometimes"}, ParameterError, r"'resample' parameter"),
        ({"resume": True}, ParameterError, r"'resume' parameter of fit needs a 'checkpoint'"),
    ],
)
def test_bad_options(data, kwargs, error, match):
    x, y = data
    options = {"loss": "cross_entropy", "verbose": 0, **kwargs}
    with pytest.raises(error, match=match):
        small().fit(x, y, **options)


def test_labels_out_of_range(data):
    x, y = data
    model = dr.scaffold_mlp((8,), 3, r=1, seed=0)
    bad = y.copy()
    bad[17] = 7
    with pytest.raises(DataError, match=r"labels in 'y' are out of range.*\[0, 3\).*Got 7 at "
                                        r"index \(17,\)"):
        model.fit(x, bad, loss="cross_entropy", verbose=0)
    bad[17] = -1
    with pytest.raises(DataError, match="Got -1"):
        model.fit(x, bad, loss="cross_entropy", verbose=0)
    with pytest.raises(DataError, match="integer class labels"):
        model.fit(x, y + 0.5, loss="cross_entropy", verbose=0)


def test_target_shape_mismatch(data):
    x, y = data
    with pytest.raises(DataError, match=r"one entry per step of the input series: shape "
                       r"\(240, O\) or labels \(240,\).*Got shape \(239,\)"):
        small().fit(x, y[:-1], loss="cross_entropy", verbose=0)
    model = dr.Input() >> dr.Dense(2, seed=0)
    with pytest.raises(DataError, match=r"3 features but the model outputs 2.*\(240, 3\)"):
        model.fit(x, np.zeros((240, 3), dtype=np.float32), verbose=0)


def test_nan_loss_names_epoch_and_batch(data):
    x, y = data
    calls = []

    def exploding(out, target):
        calls.append(1)
        value = torch.nn.functional.cross_entropy(out, target)
        return value * float("nan") if len(calls) == 10 else value

    model = small()
    with pytest.raises(dr.TrainingError, match=r"became nan at epoch 2 \(of 3\), batch 2 \(of "
                                                r"8\)"):
        model.fit(x, y, epochs=3, batch_size=32, loss=exploding, verbose=0)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_mixed_graph_needs_mse():
    x, y = blobs()
    model = dr.Input() >> dr.Scaffold(8, r=1, seed=0) >> dr.Ridge()
    with pytest.raises(GraphError, match="closed-form"):
        model.fit(x, y, loss="cross_entropy", verbose=0)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**40), r=st.integers(1, 3), dropout=st.sampled_from([0.0, 0.3]),
       batch_size=st.integers(16, 64))
def test_seeded_training_is_deterministic(seed, r, dropout, batch_size):
    x, y = blobs(n=96, seed=seed % 5)
    runs = []
    for _ in range(2):
        model = dr.scaffold_mlp((8,), 3, r=r, seed=seed % 1000, dropout=dropout)
        model.fit(x, y, epochs=2, batch_size=batch_size, loss="cross_entropy", seed=seed,
                  validation_split=0.25, verbose=0)
        runs.append(state(model))
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
