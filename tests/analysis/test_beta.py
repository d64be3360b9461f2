"""β diagnostics: β per layer, the scaffold's share of the pre-activation, β = 0 ablation."""

import matplotlib
import numpy as np
import pytest
import torch
import xarray as xr

import deepreservoir as dr
from deepreservoir import analysis
from deepreservoir.errors import DataError, ParameterError

matplotlib.use("Agg")

F64 = torch.float64


def _randomise(node, seed, beta=None):
    """Give an adapter non-zero B (and a chosen β), as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        node.B_.copy_(torch.randn(node.B_.shape, generator=generator, dtype=F64))
        if beta is not None:
            node.beta_.fill_(beta)
        if isinstance(getattr(node, "bias_", None), torch.nn.Parameter):
            node.bias_.copy_(torch.randn(node.bias_.shape, generator=generator, dtype=F64))


def _mlp(seed=0):
    model = (dr.Input(name="in")
             >> dr.Scaffold(16, r=2, seed=seed, bias=True, name="s1", dtype=F64)
             >> dr.Scaffold(8, r=3, seed=seed + 1, activation="tanh", name="s2", dtype=F64)
             >> dr.LoRAReadout(2, r=1, seed=seed + 2, name="head", dtype=F64))
    model.run(np.zeros((1, 6)))
    return model


def _numpy(t):
    return t.detach().numpy()


# ------------------------------------------------------------------ β values
def test_current_beta_reads_every_gate_in_topological_order():
    model = _mlp()
    gate = dr.BetaGate(0.25, name="gate", dtype=F64)
    model = model >> gate
    model.run(np.zeros((1, 6)))
    for name, value in (("s1", 0.5), ("s2", -1.5), ("head", 2.0)):
        with torch.no_grad():
            model.nodes[name].beta_.fill_(value)
    beta = analysis.current_beta(model)
    assert list(beta["layer"].values) == ["s1", "s2", "head", "gate"]
    np.testing.assert_array_equal(beta.values, [0.5, -1.5, 2.0, 0.25])
    assert beta.attrs["kind"] == "beta"


def test_beta_history_of_a_real_fit_matches_the_gates_after_each_epoch():
    model = (dr.Input(name="in") >> dr.Scaffold(12, r=2, seed=0, name="s1", dtype=F64)
             >> dr.LoRAReadout(1, r=1, seed=1, name="head", dtype=F64))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    y = np.sin(X[:, :1])
    seen = []

    def record(epoch, logs, m):
        seen.append([float(m.nodes[n].beta_.detach()) for n in ("s1", "head")])

    history = model.fit(X, y, epochs=3, batch_size=16, lr=0.05, verbose=0,
                        callbacks=[record]).history_
    if "beta" not in history:
        pytest.skip("this fit() does not record beta in its history yet")
    beta = analysis.beta_history(history)
    assert beta.dims == ("epoch", "layer")
    assert list(beta["layer"].values) == ["s1", "head"]
    np.testing.assert_array_equal(beta.values, np.array(seen))
    np.testing.assert_array_equal(beta.isel(epoch=-1).values,
                                  analysis.current_beta(model).values)
    assert not np.allclose(beta.values, 1.0)  # the gates did move


def test_beta_history_bad_input():
    with pytest.raises(DataError, match="'beta'.*loss"):
        analysis.beta_history(xr.Dataset({"loss": ("epoch", [1.0, 0.5])}))
    with pytest.raises(DataError, match="Dataset"):
        analysis.beta_history({"beta": [1.0]})


# ------------------------------------------------------------- scaffold share
def test_zero_adapter_has_weight_share_exactly_one():
    layer = dr.Scaffold(10, r=2, seed=3, bias=True, name="s", dtype=F64)
    X = np.random.default_rng(1).standard_normal((30, 7))
    layer.run(X)
    with torch.no_grad():
        layer.beta_.fill_(0.7)
        layer.bias_.fill_(0.3)
    share = analysis.scaffold_share(layer, X)
    assert float(share["weight_share"][0]) == 1.0
    assert float(share["adapter_norm"][0]) == 0.0
    scaffold = 0.7 * X @ _numpy(layer.W_).T
    assert float(share["scaffold_norm"][0]) == pytest.approx(np.linalg.norm(scaffold), rel=1e-13)
    assert float(share["share"][0]) == pytest.approx(
        np.linalg.norm(scaffold) / np.linalg.norm(scaffold + 0.3), rel=1e-13)


def test_share_of_a_deep_chain_matches_a_numpy_forward_pass():
    model = _mlp()
    for index, name in enumerate(("s1", "s2", "head")):
        _randomise(model.nodes[name], index, beta=0.5 + index)
    X = np.random.default_rng(2).standard_normal((40, 6))
    share = analysis.scaffold_share(model, X)
    assert list(share["layer"].values) == ["s1", "s2", "head"]
    h = X
    for name, activation in (("s1", lambda z: np.maximum(z, 0)), ("s2", np.tanh),
                             ("head", lambda z: z)):
        node = model.nodes[name]
        beta = float(node.beta_.detach())
        scaffold = beta * h @ _numpy(node.W_).T
        adapter = node.scale * (h @ _numpy(node.A_).T) @ _numpy(node.B_).T
        bias = np.zeros(scaffold.shape[1]) if node.bias_ is None else _numpy(node.bias_)
        z = scaffold + adapter + bias
        got = share.sel(layer=name)
        assert float(got["beta"]) == beta
        assert float(got["share"]) == pytest.approx(
            np.linalg.norm(scaffold) / np.linalg.norm(z), rel=1e-12)
        assert float(got["weight_share"]) == pytest.approx(
            np.linalg.norm(scaffold) / np.linalg.norm(scaffold + adapter), rel=1e-12)
        assert float(got["drive_norm"]) == pytest.approx(
            np.linalg.norm(np.broadcast_to(bias, z.shape)), rel=1e-12)
        h = activation(z)


def test_share_of_a_lora_reservoir_uses_the_previous_state():
    node = dr.Reservoir(20, r=2, sr=0.9, lr=0.6, seed=4, bias_scaling=0.2, name="res",
                        dtype=F64)
    U = np.random.default_rng(3).standard_normal((2, 25, 1))
    node.run(U[0])
    _randomise(node, 5, beta=0.8)
    share = analysis.scaffold_share(node, U)
    W, Win, b = _numpy(node.W_), _numpy(node.Win_), _numpy(node.bias_)
    A, B = _numpy(node.A_), _numpy(node.B_)
    parts = {"scaffold": [], "adapter": [], "drive": []}
    for u in U:
        x = np.zeros(20)
        for t in range(u.shape[0]):
            scaffold, adapter = 0.8 * W @ x, node.scale * B @ (A @ x)
            drive = Win @ u[t] + b
            parts["scaffold"].append(scaffold)
            parts["adapter"].append(adapter)
            parts["drive"].append(drive)
            x = 0.4 * x + 0.6 * np.tanh(scaffold + adapter + drive)
    s, a, d = (np.array(parts[k]) for k in ("scaffold", "adapter", "drive"))
    assert float(share["share"][0]) == pytest.approx(
        np.linalg.norm(s) / np.linalg.norm(s + a + d), rel=1e-10)
    assert float(share["weight_share"][0]) == pytest.approx(
        np.linalg.norm(s) / np.linalg.norm(s + a), rel=1e-10)


def test_no_scaffold_has_share_zero():
    layer = dr.Scaffold(6, r=2, family=None, seed=0, dtype=F64)
    X = np.random.default_rng(4).standard_normal((10, 4))
    layer.run(X)
    _randomise(layer, 0)
    assert float(analysis.scaffold_share(layer, X)["share"][0]) == 0.0
    dense = dr.Scaffold(6, r=2, seed=0, dtype=F64)
    dense.run(X)
    _randomise(dense, 0)
    dense.remove_scaffold()
    assert float(analysis.scaffold_share(dense, X)["weight_share"][0]) == 0.0


def test_scaffold_share_bad_input():
    plain = dr.Reservoir(10, rc_connectivity=0.5, seed=0, dtype=F64)
    plain.run(np.zeros((3, 1)))
    with pytest.raises(ParameterError, match="nothing to analyse"):
        analysis.scaffold_share(plain, np.zeros((3, 1)))
    with pytest.raises(ParameterError, match="'layers'.*s1, s2, head"):
        analysis.scaffold_share(_mlp(), np.zeros((3, 6)), layers=["nope"])
    with pytest.raises(ParameterError, match="Model or a node"):
        analysis.scaffold_share(np.eye(3), np.zeros((3, 3)))


# ------------------------------------------------------------------- ablation
def _mse(X, y):
    return lambda model: {"mse": float(np.mean((model.run(X, reset=True) - y) ** 2))}


def test_ablating_one_layer_equals_zeroing_its_beta_by_hand_and_restores_it():
    model = _mlp()
    for index, name in enumerate(("s1", "s2", "head")):
        _randomise(model.nodes[name], 10 + index, beta=0.9 - 0.2 * index)
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((50, 6)), rng.standard_normal((50, 2))
    evaluate = _mse(X, y)
    before = {n: model.nodes[n].beta_.detach().clone() for n in ("s1", "s2", "head")}
    result = analysis.beta_ablation(model, evaluate)
    assert list(result["ablation"].values) == ["none", "s1", "s2", "head", "all"]
    for name, value in before.items():
        assert torch.equal(model.nodes[name].beta_.detach(), value)
    assert float(result["mse"].sel(ablation="none")) == evaluate(model)["mse"]
    for names in (["s1"], ["s2"], ["head"], ["s1", "s2", "head"]):
        with torch.no_grad():
            for name in names:
                model.nodes[name].beta_.zero_()
        manual = evaluate(model)["mse"]
        with torch.no_grad():
            for name in names:
                model.nodes[name].beta_.copy_(before[name])
        label = names[0] if len(names) == 1 else "all"
        assert float(result["mse"].sel(ablation=label)) == manual
    np.testing.assert_array_equal(result["beta"].values, [float(v) for v in before.values()])


def test_ablating_a_readout_with_zero_adapter_leaves_only_its_bias():
    head = dr.LoRAReadout(3, r=2, seed=0, dtype=F64)
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((20, 5)), rng.standard_normal((20, 3))
    head.run(X)
    with torch.no_grad():
        head.bias_.copy_(torch.tensor([0.5, -1.0, 2.0], dtype=F64))
    result = analysis.beta_ablation(head, _mse(X, y))
    expected = np.mean((np.array([0.5, -1.0, 2.0]) - y) ** 2)
    assert float(result["mse"].sel(ablation=head.name)) == pytest.approx(expected, rel=1e-14)


def test_fixed_gate_layers_are_ablated_by_removing_the_scaffold():
    layer = dr.Scaffold(5, r=0, seed=2, activation="identity", dtype=F64)
    X = np.random.default_rng(7).standard_normal((8, 4))
    layer.run(X)
    result = analysis.beta_ablation(layer, lambda m: float(np.abs(m.run(X)).sum()))
    assert float(result["metric"].sel(ablation="all")) == 0.0
    assert float(result["metric"].sel(ablation="none")) > 0.0
    assert layer.scaffold_active


def test_beta_is_restored_when_evaluate_raises():
    model = _mlp()
    with torch.no_grad():
        model.nodes["s1"].beta_.fill_(0.123)

    def failing(m):
        if float(m.nodes["s1"].beta_.detach()) == 0.0:
            raise RuntimeError("boom")
        return 1.0

    with pytest.raises(RuntimeError, match="boom"):
        analysis.beta_ablation(model, failing)
    assert float(model.nodes["s1"].beta_.detach()) == 0.123


def test_beta_ablation_bad_input():
    model = _mlp()
    with pytest.raises(ParameterError, match="'evaluate'"):
        analysis.beta_ablation(model, 3.0)
    with pytest.raises(DataError, match="number"):
        analysis.beta_ablation(model, lambda m: "good")
    with pytest.raises(ParameterError, match="'layers'"):
        analysis.beta_ablation(model, lambda m: 1.0, layers="in")
    plain = dr.Reservoir(10, rc_connectivity=0.5, seed=0, dtype=F64)
    with pytest.raises(ParameterError, match="nothing to analyse"):
        analysis.beta_ablation(plain, lambda m: 1.0)
    with pytest.raises(ParameterError, match="nothing to analyse"):
        analysis.current_beta(plain)


# ---------------------------------------------------------------------- plots
def test_every_beta_result_plots(tmp_path):
    model = _mlp()
    X = np.random.default_rng(8).standard_normal((10, 6))
    history = xr.Dataset({"beta": (("epoch", "layer"), np.array([[1.0, 0.9], [0.8, 0.7]]))},
                         coords={"epoch": [1, 2], "layer": ["s1", "s2"]})
    results = [analysis.current_beta(model), analysis.beta_history(history),
               analysis.scaffold_share(model, X),
               analysis.beta_ablation(model, lambda m: {"a": 1.0, "b": 2.0})]
    for index, result in enumerate(results):
        figure = analysis.plot(result)
        assert figure.axes
        figure.savefig(tmp_path / f"{index}.png")
        matplotlib.pyplot.close(figure)
        result.to_netcdf(tmp_path / f"{index}.nc")
