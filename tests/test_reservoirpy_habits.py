"""reservoirpy 0.4.2's constructor habits on ``dr.Reservoir``: accepted with the same
meaning, or refused with a message that says what to write instead.

reservoirpy's signature is ``Reservoir(units=None, lr=1.0, sr=1.0, input_scaling=1.0,
input_connectivity=0.1, rc_connectivity=0.1, Win=bernoulli, W=normal, bias=0.0,
activation=tanh, ...)``. Accepted habits are checked against reservoirpy itself
where that is meaningful: the same explicit ``W`` and ``Win`` (dense or
scipy.sparse), a float bias or a per-unit leak rate give the same float64 states
to 1e-10, as in ``tests/test_parity_reservoirpy.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch
from parity_data import explicit_weights, one_torch_thread, signal  # noqa: F401

import deepreservoir as dr
from deepreservoir import functional as F
from deepreservoir.errors import ParameterError
from deepreservoir.nodes.reservoir import DEFAULT_UNITS

rpy_nodes = pytest.importorskip("reservoirpy.nodes")
rpy_mat_gen = pytest.importorskip("reservoirpy.mat_gen")
rpy_act = pytest.importorskip("reservoirpy.activationsfunc")

N = 60
STEPS = 400
STATE_TOL = 1e-10


def _weights_without_bias(n: int, features: int, density: float, seed: int):
    W, Win, _ = explicit_weights(n, features, density, seed)
    return W, Win


def _reference(W, Win, bias, lr, X, activation=np.tanh):
    """The update rule in plain numpy, float64: x' = (1 − lr)·x + lr·f(W x + Win u + b)."""
    x = np.zeros(W.shape[0])
    out = []
    for u in X:
        x = (1 - lr) * x + lr * activation(W @ x + Win @ u + bias)
        out.append(x)
    return np.array(out)


def _round_trip(model, X, tmp_path):
    loaded = dr.load(model.save(tmp_path / "model.dr"))
    np.testing.assert_array_equal(model.run(X, reset=True), loaded.run(X, reset=True))
    return loaded


# ---------------------------------------------------------------- 1. units default
def test_units_defaults_to_100_without_explicit_W():
    assert DEFAULT_UNITS == 100
    reservoir = dr.Reservoir(seed=1)
    assert reservoir.units == 100
    states = reservoir.run(np.ones((5, 2)))
    assert states.shape == (5, 100)
    # The default is the same reservoir as units=100 written out.
    np.testing.assert_array_equal(states, dr.Reservoir(100, seed=1).run(np.ones((5, 2))))


@pytest.mark.parametrize("kind", ["dense", "csr_array", "csr_matrix", "torch"])
def test_units_default_to_explicit_W_rows(kind):
    W, _ = _weights_without_bias(30, 1, 0.2, seed=0)
    given = {"dense": W, "csr_array": scipy.sparse.csr_array(W),
             "csr_matrix": scipy.sparse.csr_matrix(W), "torch": torch.as_tensor(W)}[kind]
    reservoir = dr.Reservoir(W=given, seed=0)
    assert reservoir.units == reservoir.output_dim == 30
    assert reservoir.run(np.ones((4, 1))).shape == (4, 30)


def test_units_and_W_disagree():
    with pytest.raises(ParameterError, match=(
            r"The 'W' parameter of Reservoir must have shape \(10, 10\) for units=10\. "
            r"Got shape \(5, 5\)\. Omit 'units' \(it defaults to W\.shape\[0\] = 5\) or pass "
            r"units=5\.")):
        dr.Reservoir(10, W=np.eye(5))
    with pytest.raises(ParameterError, match=r"'W' parameter of Reservoir must have shape "
                                             r"\(10, 10\) for units=10\. Got shape \(5, 5\)"):
        dr.Reservoir(10, W=scipy.sparse.eye(5, format="csr"))
    with pytest.raises(ParameterError, match=r"'W' parameter of Reservoir must be a non-empty "
                                             r"square array of shape \(N, N\)\. Got shape "
                                             r"\(4, 5\)\."):
        dr.Reservoir(W=np.ones((4, 5)))


def test_explicit_Win_with_default_units_says_to_pass_units():
    with pytest.raises(ParameterError, match=r"'Win' parameter of Reservoir must have shape "
                                             r"\(100, F\) for units=100\. Got shape \(20, 2\)\. "
                                             r"'units' defaults to 100 without an explicit W: "
                                             r"pass units=20\."):
        dr.Reservoir(Win=np.ones((20, 2)))


def test_units_like_reservoirpy():
    W, _ = _weights_without_bias(30, 1, 0.2, seed=0)
    assert rpy_nodes.Reservoir(W=W).units == dr.Reservoir(W=W).units == 30


# ------------------------------------------------------- 2. lr and sr positional
def test_lr_and_sr_positional_in_reservoirpy_order():
    ours = dr.Reservoir(100, 0.3, 0.8)
    theirs = rpy_nodes.Reservoir(100, 0.3, 0.8)
    assert (ours.units, ours.lr, ours.sr) == (theirs.units, theirs.lr, theirs.sr) == (100, 0.3, 0.8)
    assert dr.Reservoir(100).sr == 0.9  # deepreservoir's default (reservoirpy: 1.0)


def test_only_units_lr_sr_are_positional():
    with pytest.raises(TypeError, match="positional"):
        dr.Reservoir(100, 0.3, 0.9, 1.0)  # input_scaling stays keyword-only


# --------------------------------------------------------------- 3. float bias
@pytest.mark.parametrize("bias", [0.0, 0.25, -1, np.float64(0.1)])
def test_float_bias_matches_reservoirpy(bias):
    W, Win = _weights_without_bias(N, 2, 0.1, seed=3)
    X = signal(STEPS, 2, seed=4)
    theirs = rpy_nodes.Reservoir(W=W, Win=Win, bias=bias, lr=0.4).run(X)
    ours_node = dr.Reservoir(W=W, Win=Win, bias=bias, lr=0.4, dtype=torch.float64)
    ours = ours_node.run(X)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL
    np.testing.assert_array_equal(ours_node.bias_.numpy(), np.full(N, float(bias)))
    assert ours_node.hyperparameters()["bias"] == float(bias)


def test_float_bias_is_a_constant_for_every_unit_and_saves(tmp_path):
    model = dr.Reservoir(20, bias=0.3, seed=2, name="res") >> dr.Ridge(ridge=1e-6)
    X = signal(200, 1, seed=0)
    model.fit(X[:-1], X[1:])
    loaded = _round_trip(model, X, tmp_path)
    assert loaded.nodes["res"].bias == 0.3


def test_float_bias_with_bias_scaling_is_refused():
    with pytest.raises(ParameterError, match=(
            r"The 'bias_scaling' parameter of Reservoir must be 0 \(its default\) when 'bias' "
            r"is a number: bias=0\.1 is a constant bias used as is, so bias_scaling=0\.5 would "
            r"have no effect\. Write bias=0\.1 alone .* or bias='binary' \(or another family\) "
            r"with bias_scaling=0\.5")):
        dr.Reservoir(10, bias=0.1, bias_scaling=0.5)
    with pytest.raises(ParameterError, match=r"'bias' parameter of Reservoir must be finite "
                                             r"when it is a number.*Got nan"):
        dr.Reservoir(10, bias=float("nan"))


def test_family_bias_with_bias_scaling_unchanged():
    drawn = dr.Reservoir(10, bias_scaling=0.5, seed=4)
    drawn.run(np.ones((2, 1)))
    assert drawn.bias_.abs().max() > 0 and torch.all(drawn.bias_.abs() == 0.5)


# ------------------------------------------------------ 4. scipy.sparse W / Win
def test_sparse_W_and_Win_from_reservoirpy_match_reservoirpy():
    W = rpy_mat_gen.normal(N, N, connectivity=0.1, sr=0.9, seed=5)
    Win = rpy_mat_gen.bernoulli(N, 3, connectivity=0.2, input_scaling=0.5, seed=6)
    assert scipy.sparse.issparse(W) and scipy.sparse.issparse(Win)
    X = signal(STEPS, 3, seed=7)
    theirs = rpy_nodes.Reservoir(W=W, Win=Win, lr=0.3).run(X)
    ours_node = dr.Reservoir(W=W, Win=Win, lr=0.3, dtype=torch.float64)
    assert isinstance(ours_node.W, np.ndarray) and ours_node.input_dim == 3
    ours = ours_node.run(X)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL
    assert 0.05 < np.std(theirs)


def test_scipy_sparse_random_W_saves_and_loads(tmp_path):
    W = scipy.sparse.random(40, 40, density=0.1, random_state=0, format="coo") * 0.5
    model = dr.Reservoir(W=W, lr=0.5, seed=1, name="res") >> dr.Ridge(ridge=1e-6)
    X = signal(300, 1, seed=1)
    model.fit(X[:-1], X[1:])
    loaded = _round_trip(model, X, tmp_path)
    reservoir = loaded.nodes["res"]
    np.testing.assert_array_equal(reservoir.W, W.toarray())


def test_sparse_Win_shape_checked():
    with pytest.raises(ParameterError, match=r"'Win' parameter of Reservoir must have shape "
                                             r"\(10, F\) for units=10\. Got shape \(7, 2\)"):
        dr.Reservoir(10, Win=scipy.sparse.random(7, 2, density=0.5, random_state=0))


def test_initialiser_function_is_refused():
    with pytest.raises(ParameterError, match=(
            r"The 'W' parameter of Reservoir must be a family name, a Family, a spec dict or "
            r"an array \(dense or scipy.sparse\)\. Got the callable .*initialiser function .* "
            r"write W='normal'")):
        dr.Reservoir(10, W=rpy_mat_gen.normal)
    with pytest.raises(ParameterError, match=r"'Win' parameter .* write Win='binary'"):
        dr.Reservoir(10, Win=rpy_mat_gen.bernoulli)


# ------------------------------------------------------------ 5. per-unit leak rates
def _rates(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.05, 1.0, size=n)


@pytest.mark.parametrize("density", [1.0, 0.1], ids=["dense-W", "csr-W"])
def test_array_lr_matches_reservoirpy(density):
    W, Win = _weights_without_bias(N, 2, density, seed=8)
    lr = _rates(N)
    X = signal(STEPS, 2, seed=9)
    theirs = rpy_nodes.Reservoir(W=W, Win=Win, bias=0.1, lr=lr).run(X)
    ours = dr.Reservoir(W=W, Win=Win, bias=0.1, lr=lr, dtype=torch.float64).run(X)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL
    assert np.max(np.abs(ours - _reference(W, Win, 0.1, lr, X))) < STATE_TOL


@pytest.mark.parametrize("density", [1.0, 0.1], ids=["dense-W", "csr-W"])
@pytest.mark.parametrize("batch", ["one", "batch", "ragged"])
def test_array_lr_every_loop_path(density, batch):
    # dense / CSR W; B = 1 (mm or mv), B = 4 (CSR: the (N, B) loop), ragged (masked).
    W, Win = _weights_without_bias(N, 1, density, seed=10)
    lr = _rates(N, seed=1)
    series = [signal(n, 1, seed=n) for n in (120, 120, 90, 60)]
    X = {"one": series[0], "batch": np.stack(series[:2] * 2), "ragged": series}[batch]
    node = dr.Reservoir(W=W, Win=Win, lr=lr, dtype=torch.float64)
    ours = node.run(X)
    expected = ([_reference(W, Win, 0.0, lr, s) for s in X] if batch != "one"
                else _reference(W, Win, 0.0, lr, X))
    if batch == "one":
        assert np.max(np.abs(ours - expected)) < STATE_TOL
    else:
        for a, b in zip(ours, expected, strict=True):
            assert np.max(np.abs(a - b)) < STATE_TOL
    # Step by step (forward_step) gives the same states.
    first = X if batch == "one" else X[0]
    state, stepped = None, []
    for u in torch.as_tensor(first[:30]):
        _, state = node.forward_step(u[None], state)
        stepped.append(state[0].numpy())
    single = _reference(W, Win, 0.0, lr, first[:30])
    assert np.max(np.abs(stepped - single)) < STATE_TOL


def test_array_lr_autograd_and_lora_loops():
    W, Win = _weights_without_bias(N, 1, 0.1, seed=11)
    lr = _rates(N, seed=2)
    X = signal(80, 1, seed=3)
    expected = _reference(W, Win, 0.0, lr, X)
    node = dr.Reservoir(W=W, Win=Win, lr=lr, dtype=torch.float64)
    node.run(X[:1])
    x = torch.as_tensor(X[None]).requires_grad_(True)  # a gradient: the autograd loop
    states = node(x)
    assert states.requires_grad
    assert np.max(np.abs(states.detach().numpy()[0] - expected)) < STATE_TOL
    states.sum().backward()
    assert x.grad is not None

    lora = dr.Reservoir(W=W, Win=Win, lr=lr, r=2, dtype=torch.float64)
    assert np.max(np.abs(lora.run(X) - expected)) < STATE_TOL  # B = 0: a no-op adapter
    with torch.enable_grad():
        lora(torch.as_tensor(X[None])).sum().backward()
    assert lora.beta_.grad is not None


def test_array_lr_functional():
    torch.manual_seed(0)
    state, pre = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    lr = torch.rand(5, dtype=torch.float64) * 0.9 + 0.1
    expected = (1 - lr) * state + lr * torch.tanh(pre)
    torch.testing.assert_close(F.leaky_update(state, pre, lr, torch.tanh), expected)
    W = torch.randn(5, 5, dtype=torch.float64)
    Win, u = torch.randn(5, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    step = F.reservoir_step(state, u, W, Win, None, lr, torch.tanh)
    torch.testing.assert_close(step, (1 - lr) * state + lr * torch.tanh(state @ W.T + u @ Win.T))
    # Jacobian: row i leaks at unit i's rate; checked against autograd.
    p = torch.randn(5, dtype=torch.float64)
    x = torch.randn(5, dtype=torch.float64)

    def update(x):
        return (1 - lr) * x + lr * torch.tanh(W @ x + p - W @ x.detach())

    torch.testing.assert_close(F.reservoir_jacobian(p, W, lr),
                               torch.autograd.functional.jacobian(update, x))


def test_scalar_lr_as_array_gives_the_same_states():
    W, Win = _weights_without_bias(N, 1, 0.1, seed=12)
    X = signal(200, 1, seed=5)
    scalar = dr.Reservoir(W=W, Win=Win, lr=0.3, dtype=torch.float64).run(X)
    array = dr.Reservoir(W=W, Win=Win, lr=np.full(N, 0.3), dtype=torch.float64).run(X)
    np.testing.assert_allclose(array, scalar, rtol=0, atol=1e-14)


def test_array_lr_follows_dtype_and_device():
    node = dr.Reservoir(20, lr=_rates(20), seed=0)
    node.run(np.ones((3, 1)))
    assert node.lr_.dtype == torch.float32
    assert "lr_" not in node.state_dict()  # non-persistent: it is a hyperparameter
    node.double()
    assert node.lr_.dtype == torch.float64
    np.testing.assert_array_equal(node.lr_.numpy(), _rates(20).astype(np.float32))
    assert node.run(np.ones((3, 1)), reset=True).dtype == np.float64
    assert node.hyperparameters()["lr"] == {"array": [20]}


def test_array_lr_saves_and_loads(tmp_path):
    lr = _rates(30, seed=4)
    model = dr.Reservoir(30, lr=lr, seed=3, name="res") >> dr.Ridge(ridge=1e-6)
    X = signal(300, 1, seed=6)
    model.fit(X[:-1], X[1:])
    loaded = _round_trip(model, X, tmp_path)
    np.testing.assert_array_equal(loaded.nodes["res"].lr, lr)
    assert loaded.nodes["res"].lr_.dtype == torch.float32


@pytest.mark.parametrize(("lr", "message"), [
    (np.full(7, 0.5), r"The 'lr' parameter of Reservoir must be a float in \(0, 1\] or an array "
                      r"of shape \(units,\) = \(10,\) of per-unit leak rates\. Got an array of "
                      r"shape \(7,\)\."),
    (np.full((10, 1), 0.5), r"Got an array of shape \(10, 1\)"),
    (np.r_[np.full(9, 0.5), 0.0], r"The 'lr' parameter of Reservoir must have every per-unit "
                                  r"leak rate in \(0, 1\]\. Got 1 value\(s\) outside it, the "
                                  r"first lr\[9\] = 0\.0\."),
    (np.r_[1.5, np.full(9, 0.5)], r"first lr\[0\] = 1\.5"),
    (np.r_[np.nan, np.full(9, 0.5)], r"first lr\[0\] = nan"),
    ([0.5] * 3, r"shape \(units,\) = \(10,\) .* Got an array of shape \(3,\)"),
])
def test_array_lr_refused(lr, message):
    with pytest.raises(ParameterError, match=message):
        dr.Reservoir(10, lr=lr)


def test_array_lr_as_list_or_tensor():
    lr = _rates(10)
    for given in (list(lr), torch.as_tensor(lr)):
        np.testing.assert_array_equal(dr.Reservoir(10, lr=given).lr, lr)
    for scalar in (np.array(0.3), torch.tensor(0.3, dtype=torch.float64), np.float64(0.3)):
        assert dr.Reservoir(10, lr=scalar).lr == 0.3  # 0-d: a plain scalar leak rate


# -------------------------------------------------------- 6. callable activations
@pytest.mark.parametrize(("function", "name"), [
    (rpy_act.tanh, "tanh"), (rpy_act.relu, "relu"), (rpy_act.sigmoid, "sigmoid"),
    (rpy_act.identity, "identity"), (np.tanh, "tanh"), (torch.tanh, "tanh"),
    (torch.relu, "relu"), (torch.sigmoid, "sigmoid"), (torch.nn.functional.relu, "relu"),
    (torch.nn.functional.tanh, "tanh"), (torch.nn.functional.sigmoid, "sigmoid"),
    (torch.nn.Tanh(), "tanh"), (torch.nn.ReLU(), "relu"), ("sig", "sigmoid"), ("re", "relu"),
    ("id", "identity"),
])
def test_recognised_activation_is_stored_by_name(function, name):
    node = dr.Reservoir(10, activation=function, seed=0)
    assert node.activation == name
    assert node.hyperparameters()["activation"] == name
    np.testing.assert_array_equal(node.run(np.ones((3, 1))),
                                  dr.Reservoir(10, activation=name, seed=0).run(np.ones((3, 1))))


@pytest.mark.parametrize("function", [rpy_act.tanh, rpy_act.relu, rpy_act.sigmoid, np.tanh])
def test_callable_activation_matches_reservoirpy(function):
    W, Win = _weights_without_bias(N, 1, 0.1, seed=13)
    X = signal(STEPS, 1, seed=8)
    theirs = rpy_nodes.Reservoir(W=W, Win=Win, lr=0.5, activation=function).run(X)
    ours = dr.Reservoir(W=W, Win=Win, lr=0.5, activation=function,
                        dtype=torch.float64).run(X)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL


@pytest.mark.parametrize("function", [lambda x: np.tanh(2 * x), rpy_act.softplus, np.sin,
                                      rpy_act.softmax, torch.nn.GELU()])
def test_other_callable_activation_refused(function):
    with pytest.raises(ParameterError, match=(
            r"The 'activation' parameter of Reservoir must be one of 'tanh', 'relu', 'sigmoid', "
            r"'identity', or a function recognised as one of them .* Got the callable .* A saved "
            r"model names its activation and the analysis needs its derivative, so an arbitrary "
            r"function cannot be used: write activation='tanh'")):
        dr.Reservoir(10, activation=function)


def test_unknown_activation_name_still_refused():
    with pytest.raises(ParameterError, match=r"'activation' parameter of Reservoir must be one "
                                             r"of 'tanh', 'relu', 'sigmoid', 'identity'\. Got "
                                             r"'softplus'\."):
        dr.Reservoir(10, activation="softplus")


# ---------------------------------------------------- 7. per-feature input scaling
def test_input_scaling_sequence_scales_Win_columns():
    plain = dr.Reservoir(30, seed=5)
    scaled = dr.Reservoir(30, input_scaling=[1.0, 0.5, 2.0], seed=5)
    plain.run(np.ones((2, 3)))
    scaled.run(np.ones((2, 3)))
    torch.testing.assert_close(scaled.Win_, plain.Win_ * torch.tensor([1.0, 0.5, 2.0]),
                               rtol=0, atol=0)
    assert scaled.hyperparameters()["input_scaling"] == [1.0, 0.5, 2.0]


def test_input_scaling_sequence_means_what_reservoirpy_means():
    # reservoirpy's initialisers multiply Win's columns by the per-feature scales.
    scales = np.array([1.0, 0.25])
    scaled = rpy_mat_gen.bernoulli(20, 2, input_scaling=scales, connectivity=1.0, seed=0)
    plain = rpy_mat_gen.bernoulli(20, 2, connectivity=1.0, seed=0)
    np.testing.assert_array_equal(np.asarray(scaled), np.asarray(plain) * scales)


def test_input_scaling_sequence_saves_and_loads(tmp_path):
    model = dr.Reservoir(20, input_scaling=np.array([0.5, 2.0]), seed=6) >> dr.Ridge(ridge=1e-6)
    X = signal(200, 2, seed=9)
    model.fit(X[:-1], X[1:, :1])
    _round_trip(model, X, tmp_path)


def test_input_scaling_sequence_length_checked():
    with pytest.raises(ParameterError, match=(
            r"The 'input_scaling' parameter of Reservoir has 2 per-feature scales but the "
            r"input has 3 features\. Pass one scale per feature, or a single float")):
        dr.Reservoir(10, input_scaling=[1.0, 2.0], seed=0).run(np.ones((4, 3)))
    with pytest.raises(ParameterError, match=r"has 2 per-feature scales but the input has 1 "):
        dr.Reservoir(10, input_scaling=[1.0, 2.0], input_dim=1)
    for bad in ([1.0, np.inf], [[1.0, 2.0]], ["a"]):
        with pytest.raises(ParameterError, match=r"'input_scaling' parameter of Reservoir must "
                                                 r"be a finite float or a 1-D sequence"):
            dr.Reservoir(10, input_scaling=bad)
