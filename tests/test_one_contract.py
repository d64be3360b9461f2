"""One model, one contract: the behaviour a user sees, path by path.

Each test here failed before the orchestration layer was rebuilt (the lines
"tried as a user would" in the issue are the first ones).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import deepreservoir as dr
from deepreservoir.errors import ArtifactError, DataError, ParameterError

T = np.arange(600)
X = (np.sin(0.2 * T) * np.cos(0.031 * T))[:, None]        # (600, 1): one series
Y = np.roll(X, -1, axis=0)                                 # next value


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dr.RankCappedWarning)
        return function(*args, **kwargs)


# ------------------------------------------------------------ the design card
def test_the_design_card_line_builds_with_documented_defaults():
    model = dr.Reservoir(seed=1) >> dr.LoRAReadout(r=4)
    reservoir, readout = model.nodes.values()
    assert reservoir.units == 100 and readout.r == 4


def test_the_design_card_line_trains_on_one_series_with_per_step_targets():
    model = dr.Reservoir(seed=1) >> dr.LoRAReadout(r=4)
    with pytest.warns(dr.RankCappedWarning, match="r=4 exceeds min\\(d_in=100, d_out=1\\) = 1; "
                                                  "using the effective rank 1"):
        assert model.fit(X, Y, epochs=40, lr=0.05, verbose=0) is model
    loss = model.history_["loss"].values
    assert loss[-1] < 0.5 * loss[0]
    assert model.run(X, reset=True).shape == (600, 1)


def test_a_batch_and_a_ragged_list_train_too():
    batch_x = np.stack([X[:300], X[300:]])
    batch_y = np.stack([Y[:300], Y[300:]])
    model = quiet(lambda: (dr.Reservoir(50, seed=1) >> dr.LoRAReadout(r=1)).fit(
        batch_x, batch_y, epochs=2, verbose=0))
    assert model.run(batch_x, reset=True).shape == (2, 300, 1)
    ragged = quiet(lambda: (dr.Reservoir(50, seed=1) >> dr.LoRAReadout(r=1)).fit(
        [X[:250], X[250:]], [Y[:250], Y[250:]], epochs=2, verbose=0))
    assert [o.shape for o in ragged.run([X[:250], X[250:]], reset=True)] == [(250, 1),
                                                                            (350, 1)]


def test_per_sequence_labels_classify_on_the_last_state():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=48)
    series = rng.normal(size=(48, 20, 1)) * 0.3 + np.where(labels, 1.0, -1.0)[:, None, None]
    model = dr.Reservoir(30, lr=0.3, seed=2) >> dr.LoRAReadout(2, r=2, seed=0)
    model.fit(series, labels, loss="cross_entropy", epochs=40, lr=0.05, batch_size=16,
              verbose=0)
    scores = dr.training.evaluate(model, series, labels)
    assert scores["accuracy"] > 0.9


# ------------------------------------------------------ one data normaliser
def test_the_same_arrays_mean_the_same_on_the_closed_form_and_gradient_paths():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = x @ rng.normal(size=(3, 2))
    closed = (dr.Input() >> dr.Ridge(1e-9, dtype=torch.float64)).fit(x, y)
    gradient = (dr.Input() >> dr.Dense(2, seed=0, dtype=torch.float64)).fit(
        x, y, epochs=200, lr=0.05, batch_size=200, verbose=0)
    for model in (closed, gradient):
        out = model.run(x)
        assert out.shape == (200, 2)
        assert np.allclose(out, dr.training.predict(model, x))
    assert np.abs(closed.run(x) - y).max() < 1e-8
    assert np.abs(gradient.run(x) - y).max() < 0.05


def test_nan_targets_leave_their_steps_out_on_every_path():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3))
    y = x @ rng.normal(size=(3, 1))
    holes = y.copy()
    holes[[5, 17, 60]] = np.nan
    keep = ~np.isnan(holes[:, 0])
    with_nan = (dr.Input() >> dr.Ridge(1e-3, dtype=torch.float64)).fit(x, holes)
    without = (dr.Input() >> dr.Ridge(1e-3, dtype=torch.float64)).fit(x[keep], y[keep])
    assert torch.equal(with_nan.nodes["Ridge-0"].Wout_, without.nodes["Ridge-0"].Wout_)
    assert with_nan.history_["samples"].item() == 117
    fit = dict(epochs=3, batch_size=32, lr=1e-2, verbose=0)
    a = (dr.Input() >> dr.Dense(1, seed=0)).fit(x, holes, **fit)
    b = (dr.Input() >> dr.Dense(1, seed=0)).fit(x[keep], y[keep], **fit)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_fit_returns_the_model_and_keeps_a_history_on_every_path():
    x, y = X[:200], Y[:200]
    closed = dr.Reservoir(20, seed=0) >> dr.Ridge(1e-6)
    gradient = dr.Reservoir(20, seed=0) >> dr.Dense(1, seed=0)
    mixed = dr.Reservoir(20, seed=0, r=2) >> dr.Ridge(1e-6)
    for model, path in ((closed, "closed_form"), (gradient, "gradient"), (mixed, "mixed")):
        assert model.fit(x, y, verbose=0, warmup=10, seed=3, **(
            {} if path == "closed_form" else {"epochs": 2})) is model
        assert isinstance(model.history_, xr.Dataset)
        assert model.history_.attrs["path"] == path
    assert closed.history_["train_mse"].item() < 1e-3
    assert closed.history_["samples"].item() == 190
    assert "train_mse" in mixed.history_ and "loss" in mixed.history_


def test_the_closed_form_training_mse_is_exact():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(80, 4)), rng.normal(size=(80, 2))
    model = (dr.Input() >> dr.Ridge(0.5, dtype=torch.float64)).fit(x, y)
    exact = float(np.mean((model.run(x) - y) ** 2))
    assert model.history_["train_mse"].item() == pytest.approx(exact, rel=1e-10)


def test_a_keyword_of_another_path_is_refused_naming_the_path():
    with pytest.raises(ParameterError, match="'epochs' parameter of fit does not apply to this "
                                             "model: it trains by closed form .*Ridge 'Ridge-0'"
                                             ".*only applies to gradient training"):
        (dr.Reservoir(10, seed=0) >> dr.Ridge()).fit(X, Y, epochs=3)
    with pytest.raises(ParameterError, match="'reset' parameter of fit does not apply .* "
                                             "gradient training"):
        (dr.Input() >> dr.Dense(1)).fit(X, Y, reset=False)


# ---------------------------------------------------------- graph semantics
def test_a_list_on_the_left_keeps_each_elements_outputs_in_order():
    rng = np.random.default_rng(4)
    x3 = rng.normal(size=(100, 3))
    src, res, ro = dr.Input(name="src"), dr.Reservoir(100, seed=0, name="res"), dr.Ridge(1e-6)
    model = [src >> res, src] >> ro
    model.fit(x3, Y[:100])
    assert ro.input_dim == 103
    received = model.states(x3, nodes=ro.name, reset=True, inputs=True)[ro.name]
    states = model.states(x3, nodes="res", reset=True)["res"]
    assert np.array_equal(received, np.concatenate([states, x3.astype(np.float32)], axis=1))


def test_node_names_follow_the_structure_not_the_history():
    def build():
        return dr.Input() >> dr.Scaffold(8, r=2, seed=1) >> dr.Scaffold(8, r=2) \
            >> dr.LoRAReadout(2, r=1)
    first = list(build().nodes)
    for _ in range(3):
        dr.Tanh(), dr.Scaffold(4)  # built before, and never used
    assert list(build().nodes) == first == ["Input-0", "Scaffold-0", "Scaffold-1",
                                            "LoRAReadout-0"]


def test_resume_works_whatever_the_process_built_before(tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(64, 6)).astype(np.float32), rng.integers(0, 3, size=64)
    options = dict(epochs=4, batch_size=16, loss="cross_entropy", verbose=0,
                   checkpoint=tmp_path / "ckpt")

    def build():
        return dr.Input() >> dr.Scaffold(16, r=2, seed=1) >> dr.LoRAReadout(3, r=2)
    whole = build().fit(x, y, **options)
    interrupted = build()
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(x, y, **options, callbacks=[lambda e, logs, m: (_ for _ in ()).throw(
            KeyboardInterrupt) if e == 1 else None])
    dr.Tanh()  # another node built in between used to shift every default name
    resumed = build().fit(x, y, **options, resume=True)
    assert np.array_equal(resumed.run(x), whole.run(x))


def test_a_checkpoint_of_another_model_names_the_missing_node(tmp_path):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, 3, size=32)
    options = dict(epochs=1, loss="cross_entropy", verbose=0, checkpoint=tmp_path / "c")
    (dr.Input() >> dr.Scaffold(16, r=2, seed=1) >> dr.LoRAReadout(3, r=2)).fit(x, y, **options)
    other = dr.Input() >> dr.Scaffold(16, r=2, seed=1, name="hidden") >> dr.LoRAReadout(3, r=2)
    with pytest.raises(ArtifactError, match="node 'Scaffold-0', which this model does not have"):
        other.fit(x, y, **options, resume=True)


# ------------------------------------------------------------- state & calls
def test_state_follows_double_after_fit():
    esn = dr.Reservoir(100, seed=1) >> dr.Ridge(1e-6)
    esn.fit(X[:300], Y[:300])
    kept = esn._state.nodes["Reservoir-0"].clone()
    reference = esn.run(X[300:]).astype(np.float64)     # float32, continuing from training
    esn.fit(X[:300], Y[:300])
    esn.double()
    assert torch.equal(esn._state.nodes["Reservoir-0"], kept.double())
    out = esn.run(X[300:])                                # float64, continuing
    assert out.dtype == np.float64 and esn._state.nodes["Reservoir-0"].dtype == torch.float64
    np.testing.assert_allclose(out, reference, atol=1e-4)


def test_a_new_batch_size_after_fit_starts_fresh():
    x, y = X[:200], Y[:200]
    model = dr.Reservoir(20, seed=0) >> dr.Ridge()
    out = model.fit([x] * 3, [y] * 3).run([x] * 4)
    fresh = model.run([x] * 4, reset=True)
    assert len(out) == 4 and all(np.array_equal(a, b) for a, b in zip(out, fresh))
    stateless = (dr.Input() >> dr.Ridge()).fit(x, y)
    assert stateless.run(np.stack([x, x])).shape == (2, 200, 1)


def test_calling_a_node_on_data():
    node = dr.Reservoir(10, seed=3)
    first = node(np.full(1, 0.5))
    assert first.shape == (10,)
    assert np.array_equal(first, node.run(np.full((1, 1), 0.5), reset=True)[0])
    tensor = node(torch.full((4, 1), 0.5))
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (4, 10)
    node.reset()
    stepped = [node.step(np.full(1, 0.5)) for _ in range(3)]
    assert np.allclose(stepped[2], node.run(np.full((3, 1), 0.5), reset=True)[2])


def test_model_step_with_a_dict_for_several_inputs():
    a, b = dr.Input(name="a"), dr.Input(name="b")
    model = [a, b] >> dr.Reservoir(10, seed=0, name="res")
    out = model.step({"a": np.ones(2), "b": np.zeros(3)})
    assert out.shape == (10,)
    with pytest.raises(DataError, match="keyed by input node names"):
        model.step({"c": np.ones(2)})


def test_model_step_none_runs_a_closed_loop():
    res = dr.Reservoir(30, lr=0.5, seed=1, dtype=torch.float64, name="res")
    ro = dr.Ridge(1e-8, units=1, dtype=torch.float64, name="ro")
    open_loop = (res >> ro).fit(X[:-1], X[1:], warmup=50)   # input: the last value
    loop = (res >> ro) & (res << ro)                        # now the readout feeds it
    generated = np.array([loop.step(None) for _ in range(6)])
    assert generated.shape == (6, 1)
    fed_back = np.concatenate([np.zeros((1, 1)), generated[:-1]])  # ŷ(t − 1), 0 at first
    assert np.allclose(generated, open_loop.run(fed_back, reset=True), atol=1e-12)
    with pytest.raises(DataError, match=r"step\(None\) runs with no external input, but "
                                        r"input node\(s\) \[.Input-0.\] take external data"):
        (dr.Input() >> dr.Reservoir(5)).step(None)


@pytest.mark.parametrize("dtype", [torch.float64, np.float64, np.dtype("float64"), "float64",
                                   "double", "torch.float64"])
def test_dtype_accepts_torch_numpy_and_names(dtype):
    assert dr.Reservoir(10, dtype=dtype).dtype == torch.float64


def test_unseeded_nodes_follow_the_documented_rule():
    built = [(dr.Reservoir(30) >> dr.Ridge()) for _ in range(3)]
    for model in built:
        model.states(X[:5], nodes="Reservoir-0")  # builds the reservoir (the readout needs Y)
    weights = [m.nodes["Reservoir-0"].W_ for m in built]
    assert all(torch.equal(weights[0], w) for w in weights)  # deterministic: model seed 0
    seeded = [dr.Reservoir(30, seed=s) for s in (1, 2)]
    for node in seeded:
        node.run(X[:5])
    assert not torch.equal(seeded[0].W_, seeded[1].W_)
    text = open(__file__.replace("tests/test_one_contract.py", "docs/reservoirpy.md")).read()
    assert "Unseeded nodes" in text


# ------------------------------------------------------ the layer underneath
def test_a_new_node_kind_plugs_in_from_its_own_file():
    from deepreservoir.kinds import ClosedForm, SufficientStatistics
    from deepreservoir.nodes.base import Node

    class MeanReadout(Node, ClosedForm):
        """Predicts the mean target, fitted in closed form (defined outside the package)."""

        def infer_output_dim(self, input_dim, target_dim=None):
            return int(target_dim)

        def _build(self, input_dim, target_dim):
            self.register_buffer("mean_", torch.zeros(self.output_dim, dtype=self.dtype))
            self.fitted = False

        def statistics(self, x, y):
            return SufficientStatistics({"y": y.to(torch.float64).sum(0)}, int(y.shape[0]))

        def solve(self, statistics):
            self.mean_.copy_(statistics.sums["y"] / statistics.count)
            self.fitted = True

        def is_fitted(self):
            return self.built and self.fitted

        def forward_sequence(self, x, state, lengths=None):
            return self.mean_.expand(*x.shape[:2], -1), None

    model = (dr.Reservoir(10, seed=0) >> MeanReadout()).fit(X, Y, warmup=100)
    assert model.history_.attrs["path"] == "closed_form"
    assert np.allclose(model.run(X), Y[100:].mean(), atol=1e-6)


def test_the_package_does_not_probe_attribute_names():
    import pathlib

    source = pathlib.Path(dr.__file__).parent
    probes = ("closed_form: ClassVar", "node.closed_form", "begin_fit", "_STATE_ATTRIBUTES",
              "has_gradient_parameters",
              'getattr(node, "W_"', 'getattr(node, "beta_"', 'hasattr(node, "resample")',
              "node.tensorless", "node.recurrent")
    found = [(path.name, probe) for path in source.rglob("*.py")
             for probe in probes if probe in path.read_text()]
    assert not found, found


def test_the_trainer_takes_a_dataloader():
    rng = np.random.default_rng(7)
    x = torch.as_tensor(rng.normal(size=(96, 5)), dtype=torch.float32)
    y = torch.as_tensor((x[:, 0] > 0).long())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16,
                                         shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    model = dr.Input() >> dr.Scaffold(16, r=2, seed=1) >> dr.LoRAReadout(2, r=2)
    model.fit(None, sampler=loader, epochs=15, lr=0.05, loss="cross_entropy", verbose=0)
    assert len(model.history_.epoch) == 15
    assert dr.training.evaluate(model, x.numpy(), y.numpy())["accuracy"] > 0.85


def test_the_trainer_steps_one_batch_at_a_time():
    from deepreservoir.training import GradientConfig, Samples, Trainer
    from deepreservoir.training.options import GRADIENT_DEFAULTS

    model = dr.Input() >> dr.Dense(1, seed=0)
    model.run(np.zeros((1, 2), dtype=np.float32))
    config = GradientConfig.from_options({**GRADIENT_DEFAULTS, "lr": 0.1, "schedule": "constant"})
    trainer = Trainer(model, config)
    x = torch.ones(4, 1, 2)
    batch = Samples(x, None, torch.zeros(4, 1), torch.ones(4, dtype=torch.bool), False, False)
    losses = [float(trainer.train_step(batch)) for _ in range(20)]
    assert losses[-1] < losses[0]


def test_early_stopping_restores_the_best_epoch():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, size=64)
    stopper = dr.training.EarlyStopping(monitor="val_loss", patience=1)
    model = dr.Input() >> dr.Scaffold(16, r=2, seed=1) >> dr.LoRAReadout(2, r=2)
    model.fit(x, y, epochs=50, lr=1.0, loss="cross_entropy", validation_split=0.25,
              callbacks=[stopper], verbose=0)
    assert stopper.stopped_epoch is not None and len(model.history_.epoch) < 50
    assert stopper.best == pytest.approx(float(model.history_["val_loss"].min()))


def test_ablations_are_callbacks_equal_to_their_keywords():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(48, 6)).astype(np.float32), rng.integers(0, 3, size=48)
    options = dict(epochs=2, batch_size=16, loss="cross_entropy", verbose=0)

    def build():
        return dr.scaffold_mlp((12, 8), 3, r=2, seed=4)
    by_keyword = build().fit(x, y, resample="batch", **options)
    by_callback = build().fit(x, y, callbacks=[dr.training.ScaffoldResampling("batch")],
                              **options)
    assert np.array_equal(by_keyword.run(x), by_callback.run(x))


# ------------------------------------------------------------ one LoRA part
def test_one_lora_component_in_every_adapted_layer():
    from deepreservoir.lora import LowRankAdapter

    linear = dr.adapt(torch.nn.Sequential(torch.nn.Linear(6, 5)), r=2, seed=0)[0]
    layers = [dr.Scaffold(5, r=2, seed=0), dr.LoRAReadout(3, r=2, seed=0),
              dr.Reservoir(8, r=2, seed=0)]
    for layer in layers:
        layer.run(np.ones((2, 6)))
    for layer in [*layers, linear]:
        assert isinstance(layer, LowRankAdapter)
        assert layer.delta().shape == layer.W_.shape


@pytest.mark.parametrize("make", [
    lambda: dr.Scaffold(7, r=2, seed=0, dtype=torch.float64),
    lambda: dr.LoRAReadout(3, r=2, seed=0, dtype=torch.float64),
    lambda: dr.Reservoir(9, r=2, seed=0, dtype=torch.float64),
])
def test_merge_and_unmerge_in_place(make):
    node = make()
    x = np.random.default_rng(10).normal(size=(12, 5))
    node.run(x)
    with torch.no_grad():
        node.B_.normal_(generator=torch.Generator().manual_seed(1))
        node.beta_.fill_(0.7)
    frozen = node.W_.clone()
    before = node.run(x, reset=True)
    model = node._as_model().merge_adapters()
    assert node.merged_ and not torch.equal(node.W_, frozen)
    np.testing.assert_allclose(node.run(x, reset=True), before, atol=1e-12)
    with pytest.raises(dr.lora.MergedAdapterError, match="unmerge"):
        model.fit(x, np.zeros((12, node.output_dim)), epochs=1, verbose=0)
    model.unmerge_adapters()
    assert torch.equal(node.W_, frozen)  # regenerated from the seed, bit for bit
    np.testing.assert_allclose(node.run(x, reset=True), before, atol=1e-12)


def test_merge_of_an_adapted_torch_layer_regenerates_on_unmerge():
    module = dr.adapt(torch.nn.Sequential(torch.nn.Linear(6, 5)), r=2, seed=0)
    layer = module[0]
    with torch.no_grad():
        layer.B_.fill_(0.3)
    x = torch.randn(4, 6)
    before, frozen = module(x), layer.W_.clone()
    layer.merge()
    assert torch.allclose(module(x), before, atol=1e-6)
    layer.unmerge()
    assert torch.equal(layer.W_, frozen)


# --------------------------------------------------------- cheap and scoped
def test_import_loads_no_heavy_module():
    code = ("import sys, deepreservoir; print(','.join(m for m in ('xarray', 'networkx', "
            "'matplotlib', 'sklearn', 'scipy', 'deepreservoir.analysis') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""


def test_the_time_loop_thread_count_is_scoped(monkeypatch):
    calls = []
    original = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), original(n)))
    before = torch.get_num_threads()
    dr.Reservoir(50, seed=0).run(X)
    assert torch.get_num_threads() == before
    if before > 1:
        assert calls == [1, before]  # one thread inside the small loop, then restored
    dr.threads.set_num_threads(None)
    monkeypatch.setenv("DEEPRESERVOIR_NUM_THREADS", str(before))
    calls.clear()
    dr.Reservoir(50, seed=0).run(X)
    assert calls == []


def test_thread_overrides_are_checked():
    with pytest.raises(ParameterError, match="'count' parameter of set_num_threads"):
        dr.threads.set_num_threads(0)
    dr.threads.set_num_threads(1)
    try:
        assert dr.threads.get_num_threads() == 1
    finally:
        dr.threads.set_num_threads(None)


# ------------------------------------------------------------ online kind
class _LMS(dr.Node, dr.kinds.Online):
    """A least-mean-squares readout, defined outside the package: ``W += η (y − W x) xᵀ``."""

    def __init__(self, units=1, eta=0.05, *, name=None, dtype=torch.float64):
        super().__init__(name=name, dtype=dtype)
        self.units, self.eta = units, eta
        self.output_dim = units

    def _build(self, input_dim, target_dim):
        self.register_buffer("W_", torch.zeros(self.units, input_dim, dtype=self.dtype))

    def initial_learner_state(self, batch_size):
        return self.W_.expand(batch_size, -1, -1).clone()

    def learning_step(self, x, y, W):
        prediction = torch.einsum("bof,bf->bo", W, x)
        if y is not None:
            W = W + self.eta * torch.einsum("bo,bf->bof", y - prediction, x)
        return prediction, W

    def commit(self, W):
        self.W_.copy_(W.mean(0))

    def restart_learning(self):
        self.W_.zero_()

    def forward_sequence(self, x, state, lengths=None):
        return x @ self.W_.T, None


def test_an_online_node_learns_inside_the_executor():
    rng = np.random.default_rng(11)
    true = rng.normal(size=(1, 3))
    x = rng.normal(size=(4, 400, 3))                      # four independent learners
    y = x @ true.T
    model = (dr.Input() >> _LMS()).fit(x, y, warmup=10)
    assert model.history_.attrs["path"] == "online"
    assert model.history_["samples"].item() == 4 * 390
    assert np.abs(model.nodes["_LMS-0"].W_.numpy() - true).max() < 1e-3
    assert np.abs(model.run(x[0]) - y[0]).max() < 1e-2
    with pytest.raises(ParameterError, match="'epochs' parameter of fit does not apply .* online "
                                             "learning"):
        model.fit(x, y, epochs=2)


def test_an_online_readout_learns_in_closed_loop_from_its_own_prediction():
    res = dr.Reservoir(40, lr=0.5, seed=2, dtype=torch.float64, name="res")
    lms = _LMS(1, eta=0.01, name="lms")
    loop = (dr.Input(name="u") >> res >> lms) & (res << lms)
    fed, predicted = [], []
    step, learn = res.forward_step, lms.learning_step

    def record_input(x, state):
        fed.append(x[0, -1].item())              # [u(t), ŷ(t − 1)]: the fed-back part
        return step(x, state)

    def record_prediction(x, y, W):
        out, W = learn(x, y, W)
        predicted.append(out[0, 0].item())
        return out, W

    res.forward_step, lms.learning_step = record_input, record_prediction
    loop.fit(X[:200], Y[:200], feedback="prediction")
    assert len(fed) == len(predicted) == 200
    assert fed[0] == 0.0 and fed[1:] == predicted[:-1]   # its own prediction, not the target
    assert predicted[1:] != list(Y[:199, 0])
