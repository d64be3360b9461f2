"""reservoirpy 0.4.2's own tests, translated to deepreservoir.

Sources (shipped with the installed package): ``reservoirpy/tests/{test_model,
test_ops, test_esn, test_node}.py`` and ``reservoirpy/nodes/tests/{test_reservoir,
test_ridge, test_rls, test_lms, test_nvar, test_io}.py``. Each test below names,
in a comment above it, the reservoirpy test it translates. The translation uses
deepreservoir's API and numpy asserts; it is not a copy.

Conventions of the translation
------------------------------
* reservoirpy's ``node(x)`` / ``model(x)`` (one step, state kept) is
  ``node.step(x)`` / ``model.step(x)`` here (docs/reservoirpy.md, row
  "``node(x)`` (one step, state kept)"); ``node(x)`` is torch's forward here.
* reservoirpy's ``initialize(x)`` has no counterpart: deepreservoir builds a node
  on its first data, so the translation runs (or steps, or fits) the data.
* Fitted tensors have torch's layout: reservoirpy's ``Ridge.Wout`` (F, O) is
  ``Wout_.T``; ``RLS.Wout`` / ``LMS.Wout`` (F, O) is ``Wout_[0].T`` (a leading
  learner axis, ``L`` = 1 after fitting on one series). ``Reservoir.W``/``Win``/
  ``bias`` (the matrices) are ``W_``/``Win_``/``bias_``.
* ``model.nodes`` is a name → node mapping, ``model.edges`` are ``Edge``s between
  names: reservoirpy's ``(node, delay, node)`` triples are compared as
  ``(source, delay, target)`` name triples (``_edges``).
* reservoirpy's seeds give other weights here (row "Random weights"): shapes and
  behaviour are compared, or both sides get the same explicit arrays.
* Where values are compared, nodes are float64 (reservoirpy computes in float64;
  deepreservoir defaults to float32, section "Numbers").
* reservoirpy's dummy nodes (``tests/dummy_nodes.py``) are stand-ins for "any
  node"; where a test's subject is the model, the operators or the node
  contract, they are replaced by deepreservoir nodes that compute the same
  thing: ``PlusNode(h)`` / ``MinusNode(h)`` / ``AccumulateNode(h)`` /
  ``Inverter`` are reservoirs with explicit weights, identity activation and
  leak rate 1 (``x' = W x + Win u + b``: ``W = 0`` or ``I``, ``Win = ±I``,
  ``b = ±h``; see :func:`_dummy`), dimension-only stand-ins are ``dr.Identity``,
  the dummy ``Offline`` learner is ``dr.Ridge`` and the dummy online learner is
  ``dr.RLS``. The exact values the dummies record (``Offline.b`` = sum of the
  targets) become the matching observable of the real node (the Ridge
  prediction is the targets' mean when the features are constant).
* Error types: reservoirpy's ``ValueError`` / ``TypeError`` / ``AttributeError``
  become deepreservoir's error that corresponds (``ParameterError``,
  ``DataError``, ``GraphError``, ``NotFittedError``), with a ``match=`` on the
  message.

Not translated (reservoirpy-only machinery)
-------------------------------------------
* ``tests/test_node.py::test_pickling``: pickles a dummy node written against
  reservoirpy's ``Node`` internals; deepreservoir persists models with
  ``dr.save``/``dr.load`` (docs/reservoirpy.md, "Saving"), not pickle.
* ``tests/test_node.py::test_unsupervised_fit`` and
  ``::test_partial_fit_unsupervised``: their subject is the dummy
  ``OnlineUnsupervised`` learner (a target-free online rule written against
  reservoirpy's ``OnlineNode`` internals). deepreservoir's target-free learners are
  the plasticity nodes, out of scope here; the supervised online learners
  (RLS, LMS) are covered by the RLS/LMS translations and by
  ``test_online_train_simple``.
* Tests commented out in reservoirpy itself (``test_reservoir_chain``,
  ``test_train_raise``, ``test_offline_node_bad_warmup``) are not tests.
* The other reservoirpy test files (jax, sklearn nodes, LIF, ES2N, intrinsic
  and local plasticity, activations, mat_gen, datasets, observables, hyper)
  are outside this module's subject.

``workers=-1`` (joblib) in ``test_ridge_fit_parallel`` has no counterpart: a
(B, T, F) batch is accumulated in one streaming pass; that test is translated
without it. ``test_ridge_worker``'s per-series statistics are ``Ridge.statistics``.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_almost_equal, assert_array_equal
from parity_data import one_torch_thread  # noqa: F401

import deepreservoir as dr
from deepreservoir.graph import Link
from deepreservoir.kinds import ClosedForm, Online

rpy_mat_gen = pytest.importorskip("reservoirpy.mat_gen")
rpy_activations = pytest.importorskip("reservoirpy.activationsfunc")

F64 = dr.float64


# ----------------------------------------------------------------------- helpers
def _dummy(h: float = 1.0, units: int = 5, *, name: str | None = None,
           accumulate: bool = False, invert: bool = False) -> dr.Reservoir:
    """reservoirpy's dummy nodes as a float64 reservoir with explicit weights.

    Identity activation and ``lr = 1`` make the update ``x' = W x + Win u + b``:
    ``PlusNode(h)`` is ``W = 0, Win = I, b = h``; ``MinusNode(h)`` is ``b = -h``;
    ``AccumulateNode(h)`` is ``W = I`` (``x' = x + u + h``); ``Inverter`` is
    ``Win = -I, b = 0``. Unlike the dummies, the input size is fixed by ``Win``.
    """
    W = np.eye(units) if accumulate else np.zeros((units, units))
    Win = -np.eye(units) if invert else np.eye(units)
    return dr.Reservoir(units, lr=1.0, W=W, Win=Win, bias=float(h), activation="identity",
                        dtype=F64, name=name)


def _plus(h: float = 1.0, units: int = 5, *, name: str | None = None) -> dr.Reservoir:
    return _dummy(h, units, name=name)


def _minus(h: float = 1.0, units: int = 5, *, name: str | None = None) -> dr.Reservoir:
    return _dummy(-h, units, name=name)


def _edges(model) -> list[tuple[str, int, str]]:
    """reservoirpy's ``(sender, delay, receiver)`` triples, by node name, in order."""
    return [(e.source, e.delay, e.target) for e in model.edges]


def _rpy_wout(node) -> np.ndarray:
    """reservoirpy's ``Wout`` (F, O) of a one-learner RLS/LMS: ``Wout_[0].T``."""
    assert node.Wout_.shape[0] == 1, "one learner expected"
    return node.Wout_[0].T.detach().numpy()


def _rpy_bias(node) -> np.ndarray:
    """reservoirpy's ``bias`` (O,) of a one-learner RLS/LMS: ``bias_[0]``."""
    assert node.bias_.shape[0] == 1, "one learner expected"
    return node.bias_[0].detach().numpy()


# =========================================================== tests/test_model.py
# reservoirpy: tests/test_model.py::test_node_initialize
def test_node_initialize():
    plus_node, minus_node = _plus(1, 2, name="plus"), _minus(1, 2, name="minus")
    x = np.ones((10, 2))

    # model1 = plus_node >> minus_node, built from explicit links
    model1 = dr.Model([plus_node, minus_node], [Link(plus_node, minus_node, 0, False)])
    assert_array_equal(model1.run(x), x)  # reservoirpy's model.initialize(x)

    # model2 = minus_node >> plus_node
    model2 = dr.Model([plus_node, minus_node], [Link(minus_node, plus_node, 0, False)])
    assert_array_equal(model2.run(x), x)

    assert set(model1.nodes) == set(model2.nodes) == {"plus", "minus"}

    # 2-circular graph
    with pytest.raises(dr.GraphError, match="cycle"):
        dr.Model([plus_node, minus_node], [Link(minus_node, plus_node, 0, False),
                                           Link(plus_node, minus_node, 0, False)])

    # 1-circular graph
    with pytest.raises(dr.GraphError, match="cycle"):
        dr.Model([plus_node, minus_node], [Link(plus_node, plus_node, 0, False)])


# reservoirpy: tests/test_model.py::test_multi_input
def test_multi_input():
    plus_node = _plus(1, 10, name="plus")  # receives both inputs, concatenated
    x = np.ones((5,))

    # Basic multi-input
    input1, input2 = dr.Input(name="Input1"), dr.Input(name="Input2")
    model5 = dr.Model([input1, input2, plus_node],
                      [Link(input1, plus_node, 0, False), Link(input2, plus_node, 0, False)])
    res = model5.step({"Input1": x, "Input2": x})  # reservoirpy's model5.initialize({...})
    assert input1.input_dim == input2.input_dim == 5
    assert_array_equal(res, np.full(10, 2.0))

    # multiple input but not named: reservoirpy refuses a multi-input model with an
    # unnamed input; here the unnamed input is named by its place ("Input-0", see
    # Node's docstring), so data keyed "Input2" names no input node and is refused.
    input1, input2 = dr.Input(name="Input1"), dr.Input()
    model5 = dr.Model([input1, input2, plus_node],
                      [Link(input1, plus_node, 0, False), Link(input2, plus_node, 0, False)])
    with pytest.raises(dr.DataError, match="Input2"):
        model5.step({"Input1": x, "Input2": x})


# reservoirpy: tests/test_model.py::test_multi_output
def test_multi_output():
    plus_node = _plus(name="plus")
    x = np.ones((5,))

    # Basic multi-output (reservoirpy's commented-out checks included)
    output1, output2 = dr.Output(name="Output1"), dr.Output(name="Output2")
    model5 = dr.Model([output1, output2, plus_node],
                      [Link(plus_node, output1, 0, False), Link(plus_node, output2, 0, False)])
    res = model5.step(x)  # reservoirpy's model5.initialize(x)
    assert output1.input_dim == output2.input_dim == 5
    assert isinstance(res, dict)
    assert set(res) == {"Output1", "Output2"}
    assert_array_equal(res["Output1"], x + 1)
    assert_array_equal(res["Output2"], x + 1)

    # multiple outputs but not named. Deliberate difference: reservoirpy refuses a
    # multi-output model with an unnamed output (ValueError); deepreservoir names an
    # unnamed node by its place in the model ("<Class>-<k>", Node's docstring,
    # "Names"), so the outputs come back under "Output1" and "Output-0".
    output1, output2 = dr.Output(name="Output1"), dr.Output()
    model5 = dr.Model([output1, output2, plus_node],
                      [Link(plus_node, output1, 0, False), Link(plus_node, output2, 0, False)])
    res = model5.step(x)
    assert set(res) == {"Output1", "Output-0"}
    assert model5.output_names == ["Output1", "Output-0"]


# reservoirpy: tests/test_model.py::test_complex_node_link
def test_complex_node_link():
    x = np.ones((10, 2))
    # PlusNode here only carries dimensions: dr.Identity infers them from its input.
    A, B, C, D, E, F = (dr.Identity(name=n) for n in "ABCDEF")
    In = dr.Input(name="In")
    Out = dr.Output(name="Out")

    path1, path2 = A >> F, B >> E
    path3 = In >> [A, B, C]
    path4 = A >> B >> C >> D >> E >> F >> Out
    model = path1 & path2 & path3 & path4

    assert list(model.nodes) == ["A", "F", "B", "E", "In", "C", "D", "Out"]
    assert len(model.edges) == 11
    assert model.input_names == ["In"]
    assert model.output_names == ["Out"]
    assert len(model.nodes) == 8 and model.nodes["A"] is A
    # not model.is_trainable: no closed-form or online learner, no parameters
    assert not any(isinstance(node, (ClosedForm, Online)) for node in model.nodes.values())
    assert not list(model.parameters())
    assert len(model.input_names) == 1  # not model.is_multi_input
    assert len(model.output_names) == 1  # not model.is_multi_output

    model.run(x)  # reservoirpy's model.initialize(x)

    assert len(model.in_edges("B")) == 2  # model.parents[B]
    assert len(model.out_edges("In")) == 3  # model.children[In]
    assert len(model.execution_order()) == len(model.nodes)

    expected_dims = [2, 12, 4, 10, 2, 6, 6, 12]
    assert all(node.built for node in model.nodes.values())
    assert [node.input_dim for node in model.nodes.values()] == expected_dims


# reservoirpy: tests/test_model.py::test_model_complex
def test_model_complex():
    r1 = dr.Reservoir(10, name="r1")
    r2 = dr.Reservoir(10, name="r2")
    read1 = dr.Ridge(name="1")
    read2 = dr.Ridge(name="2")
    read3 = dr.Ridge(name="3")

    model = r1 >> read1 >> r2 >> read2 >> read3
    model &= r2 & [(r1 << r2), (r1 << read1), read1] & (r2 << read2) & r2

    assert set(_edges(model)) == {
        ("r1", 0, "1"),
        ("1", 0, "r2"),
        ("r2", 0, "2"),
        ("2", 0, "3"),
        ("r2", 1, "r1"),
        ("1", 1, "r1"),
        ("2", 1, "r2"),
    }

    model = (r1 >> read1) & (r2 >> read2)
    model &= [r1, r2] << read1

    assert set(_edges(model)) == {
        ("r1", 0, "1"),
        ("r2", 0, "2"),
        ("1", 1, "r1"),
        ("1", 1, "r2"),
    }

    r1 = dr.Reservoir(10, name="r1")
    read1 = dr.Ridge(name="1")
    model = r1 << (r1 >> read1)

    assert set(_edges(model)) == {("r1", 0, "1"), ("1", 1, "r1")}

    # reservoirpy only builds these; the expected edges are what reservoirpy 0.4.2
    # gives for the same expressions.
    built = {
        "[r2] & (r1 >> read1)": ([r2] & (r1 >> read1), {("r1", 0, "1")}),
        "(r2 >> read1) & [r1]": ((r2 >> read1) & [r1], {("r2", 0, "1")}),
        "r2 & (r1 >> read1)": (r2 & (r1 >> read1), {("r1", 0, "1")}),
        "(r2 >> read1) & r1": ((r2 >> read1) & r1, {("r2", 0, "1")}),
        "[r2] >> (r1 >> read1)": ([r2] >> (r1 >> read1), {("r1", 0, "1"), ("r2", 0, "r1")}),
        "(r2 >> read1) >> [r1]": ((r2 >> read1) >> [r1], {("r2", 0, "1"), ("1", 0, "r1")}),
        "r2 >> (r1 >> read1)": (r2 >> (r1 >> read1), {("r1", 0, "1"), ("r2", 0, "r1")}),
        "(r2 >> read1) >> r1": ((r2 >> read1) >> r1, {("r2", 0, "1"), ("1", 0, "r1")}),
        "[r2] << (r1 >> read1)": ([r2] << (r1 >> read1), {("r1", 0, "1"), ("1", 1, "r2")}),
        "(r2 >> read1) << [r1]": ((r2 >> read1) << [r1], {("r2", 0, "1"), ("r1", 1, "r2")}),
        "r2 << (r1 >> read1)": (r2 << (r1 >> read1), {("r1", 0, "1"), ("1", 1, "r2")}),
        "(r2 >> read1) << r1": ((r2 >> read1) << r1, {("r2", 0, "1"), ("r1", 1, "r2")}),
    }
    for expression, (model, edges) in built.items():
        assert isinstance(model, dr.Model), expression
        assert set(model.nodes) == {"r1", "r2", "1"}, expression
        assert set(_edges(model)) == edges, expression


# reservoirpy: tests/test_model.py::test_model_call
def test_model_call():
    data = np.zeros((5,))

    plus_node = _plus(2, name="Plus")
    minus_node = _minus(2, name="Minus")
    model = plus_node >> minus_node
    res = model.step(data)  # reservoirpy's model(data)
    assert_array_equal(res, data)

    input_node = dr.Input()
    branch1 = input_node >> plus_node
    branch2 = input_node >> minus_node
    model = branch1 & branch2
    res = model.step(data)
    assert model.output_names == ["Plus", "Minus"]
    assert_array_equal(res["Plus"], data + 2)
    assert_array_equal(res["Minus"], data - 2)

    # reservoirpy returns an empty array for model(None) on a model that was never
    # given data; deepreservoir's step(None) is the closed loop (docs/reservoirpy.md,
    # row "model.step(x), node.step(x)"), and a model whose input node needs data
    # refuses it, naming that node.
    plus_node = _plus(2, name="Plus")
    minus_node = _minus(2, name="Minus")
    model = plus_node >> minus_node
    with pytest.raises(dr.DataError, match="Plus"):
        model.step(None)

    plus_node1 = _plus(1, name="Plus1")
    plus_node2 = _plus(2, name="Plus2")
    minus_node = _minus(2, 10, name="Minus")
    model = (plus_node1 >> minus_node) & (plus_node2 >> minus_node)
    res = model.step({"Plus1": data, "Plus2": data})
    assert res.shape == (10,)
    assert_array_equal(res, np.concatenate([data + 1 - 2, data + 2 - 2]))


# reservoirpy: tests/test_model.py::test_model_run
def test_model_run():
    input_node = dr.Input()
    plus_node = _plus(name="plus")
    minus_node = _minus(name="minus")
    branch1 = input_node >> plus_node
    branch2 = input_node >> minus_node

    model = dr.Model.merge(branch1, branch2)  # reservoirpy.ops.merge

    data = np.zeros((3, 5))
    res = model.run(data)
    states = model.reset()  # the previous states, by node name

    expected_plus = np.ones((3, 5))
    expected_minus = -np.ones((3, 5))

    for name, arr in res.items():
        assert name in model.output_names
        if name == "plus":
            assert_array_equal(arr, expected_plus)
            assert_array_equal(arr[-1], states["plus"])
        else:
            assert_array_equal(arr, expected_minus)
            assert_array_equal(arr[-1], states["minus"])


# reservoirpy: tests/test_model.py::test_model_run_on_sequences
def test_model_run_on_sequences():
    input_node = dr.Input()
    plus_node = _plus(name="plus")
    minus_node = _minus(name="minus")
    branch1 = input_node >> plus_node
    branch2 = input_node >> minus_node

    model = branch1 & branch2

    data = np.zeros((5, 3, 5))
    res = model.run(data)

    assert set(res.keys()) == {plus_node.name, minus_node.name}
    assert len(res[plus_node.name]) == 5
    assert len(res[minus_node.name]) == 5
    assert res[plus_node.name][0].shape == (3, 5)

    input_node = dr.Input()
    branch1 = input_node >> plus_node
    branch2 = input_node >> minus_node

    model = branch1 & branch2

    data = [np.zeros((3, 5)), np.zeros((8, 5))]
    res = model.run(data)

    assert set(res.keys()) == {plus_node.name, minus_node.name}
    assert len(res[plus_node.name]) == 2
    assert len(res[minus_node.name]) == 2
    assert res[plus_node.name][0].shape == (3, 5)
    assert res[plus_node.name][1].shape == (8, 5)
    assert_array_equal(res[plus_node.name][1], np.ones((8, 5)))


# reservoirpy: tests/test_model.py::test_offline_fit_simple_model
def test_offline_fit_simple_model():
    plus_node = _plus(name="plus")
    offline_node = dr.Ridge(1e-6, name="offline", dtype=F64)
    model = plus_node >> offline_node

    X = np.ones((5, 5)) * 0.5
    Y = np.ones((5, 5))

    model.fit(X, Y)

    # reservoirpy's dummy records the sum of the targets (25); a Ridge on constant
    # features predicts their mean.
    assert_allclose(model.run(X), Y, atol=1e-12)

    X = np.ones((3, 5, 5)) * 0.5
    Y = np.ones((3, 5, 5)) * np.arange(1, 4)[:, None, None]

    model.fit(X, Y)

    # reservoirpy: 75, the three series together; here the mean over all three.
    assert_allclose(model.run(X[0], reset=True), np.full((5, 5), 2.0), atol=1e-12)


# reservoirpy: tests/test_model.py::test_offline_fit_complex
def test_offline_fit_complex():
    plus_node = _plus(1, 5, name="plus")
    minus_node = _minus(1, 10, name="minus")
    offline_node1 = dr.Ridge(1e-6, name="off1", dtype=F64)
    offline_node2 = dr.Ridge(1e-6, name="off2", dtype=F64)
    model = [plus_node >> offline_node1, plus_node] >> minus_node >> offline_node2

    X = np.ones((5, 5, 5)) * 0.5
    Y_1 = np.ones((5, 5, 5))
    Y_2 = np.ones((5, 5, 10))  # after concat

    model.fit(X, {"off1": Y_1, "off2": Y_2})

    assert plus_node.input_dim == 5
    assert plus_node.output_dim == 5
    assert minus_node.input_dim == 10
    assert minus_node.output_dim == 10
    assert offline_node1.input_dim == 5
    assert offline_node1.output_dim == 5
    assert offline_node2.input_dim == 10
    assert offline_node2.output_dim == 10

    res = model.run(X[0])

    assert res.shape == (5, 10)
    assert_allclose(res, np.ones((5, 10)), atol=1e-12)


def _online_simple():
    plus_node = _plus(name="plus")
    online_node = dr.RLS(1e-2, name="online", dtype=F64)
    return plus_node >> online_node, online_node


# reservoirpy: tests/test_model.py::test_online_train_simple
def test_online_train_simple():
    # The dummy online node adds up what it saw: 37.5 after one partial_fit, 75 after
    # two (learning continues), 37.5 again after fit (which starts over). With RLS:
    # two partial_fit calls learn as one call on both chunks, and fit starts over.
    model, online_node = _online_simple()

    X = np.ones((5, 5)) * 0.5
    Y = np.ones((5, 5))

    predictions = model.partial_fit(X, Y)
    assert predictions.shape == (5, 5)
    Wout1, bias1 = _rpy_wout(online_node), _rpy_bias(online_node)

    model.partial_fit(X, Y)

    both, both_node = _online_simple()
    both.partial_fit(np.concatenate([X, X]), np.concatenate([Y, Y]))
    assert_allclose(_rpy_wout(online_node), _rpy_wout(both_node), rtol=1e-12, atol=1e-15)
    assert_allclose(_rpy_bias(online_node), _rpy_bias(both_node), rtol=1e-12, atol=1e-15)
    assert not np.allclose(_rpy_bias(online_node), bias1, rtol=0, atol=1e-12)

    # model.fit reinitializes variables
    model.fit(X, Y)

    assert_allclose(_rpy_wout(online_node), Wout1, rtol=1e-12, atol=1e-15)
    assert_allclose(_rpy_bias(online_node), bias1, rtol=1e-12, atol=1e-15)


# reservoirpy: tests/test_model.py::test_model_online
def test_model_online():
    reservoir1 = dr.Reservoir(10, name="r1")
    reservoir2 = dr.Reservoir(10, name="r2")
    output = dr.Output(name="out")
    readout = dr.RLS(alpha=1e-4, name="rls")
    model = [reservoir1, reservoir2] >> readout & reservoir1 >> output

    X = np.ones((5, 5)) * 0.5
    Y = np.ones((5, 5))

    model.partial_fit({"r1": X, "r2": X}, Y)
    Wout1 = readout.Wout_.detach().clone()

    model_output = model.partial_fit({"r1": X, "r2": X}, Y)
    Wout2 = readout.Wout_.detach().clone()
    assert torch.any(Wout1 != Wout2)

    assert len(model_output) == 2
    assert model_output["out"].shape == (5, 10)
    assert model_output["rls"].shape == (5, 5)


# reservoirpy: tests/test_model.py::test_model_return_states
def test_model_return_states():
    off = dr.Ridge(1e-6, name="offline", dtype=F64)
    plus = _plus(name="plus")
    minus = _minus(name="minus")
    inverter = _dummy(0.0, invert=True, name="inv")

    model = plus >> [minus, off >> inverter]

    X = np.ones((5, 5)) * 0.5
    Y = np.ones((5, 5))

    model.fit(X, Y)

    res = model.run(X)

    assert set(res.keys()) == {"minus", "inv"}
    assert_array_equal(res["minus"], X)
    assert_allclose(res["inv"], -Y, atol=1e-12)


# reservoirpy: tests/test_model.py::test_multiinputs
def test_multiinputs():
    source1, source2 = dr.Input(name="s1"), dr.Input(name="s2")
    res1, res2 = dr.Reservoir(100, name="res1"), dr.Reservoir(100, name="res2")
    model = [source1, source2] >> res1 & [source1, source2] >> res2
    outputs = model.run({"s1": np.ones((10, 5)), "s2": np.ones((10, 3))})

    # reservoirpy only checks that this runs
    assert set(outputs) == {"res1", "res2"}
    assert outputs["res1"].shape == outputs["res2"].shape == (10, 100)
    assert res1.input_dim == res2.input_dim == 8


# ============================================================= tests/test_ops.py
# reservoirpy: tests/test_ops.py::test_node_link
def test_node_link():
    # PlusNode/MinusNode infer their size from the first data: dr.Identity does too.
    plus_node = dr.Identity(name="plus")
    minus_node = dr.Identity(name="minus")
    offline1 = dr.Ridge(name="offline1")
    offline2 = dr.Ridge(name="offline2")

    model1 = plus_node >> minus_node
    model2 = minus_node >> plus_node

    assert _edges(model1) == [("plus", 0, "minus")]
    assert _edges(model2) == [("minus", 0, "plus")]
    assert set(model1.nodes) == set(model2.nodes)

    model3 = plus_node >> offline1
    model4 = minus_node >> offline2

    model = model3 >> model4

    assert _edges(model) == [
        ("plus", 0, "offline1"),
        ("minus", 0, "offline2"),
        ("offline1", 0, "minus"),
    ]
    assert set(model.nodes) == set(model3.nodes) | set(model4.nodes)

    # cycles in the model!
    with pytest.raises(dr.GraphError, match="cycle"):
        _ = model1 & model2

    with pytest.raises(dr.GraphError, match="cycle"):
        _ = plus_node >> minus_node >> plus_node

    with pytest.raises(dr.GraphError, match="itself"):
        _ = plus_node >> plus_node

    x = np.ones((5,))
    x2 = np.ones((6,))
    plus_node.step(x)
    minus_node.step(x2)

    with pytest.raises(dr.GraphError, match="Dimension mismatch"):
        _ = model1.step(x)

    # merge inplace on a node
    model = plus_node
    model &= minus_node
    assert list(model.nodes) == ["plus", "minus"]
    assert model.edges == []

    # bad dimensions: reservoirpy refuses to connect two nodes whose sizes, known
    # from data, disagree. Here sizes are checked when the graph first runs (docs/
    # reservoirpy.md, "Sizes"): a node's inputs may arrive over several operations (&).
    with pytest.raises(dr.GraphError, match="Dimension mismatch: node 'minus' expects 6 "
                                            "input features but receives 5"):
        (plus_node >> minus_node).step(x)


# reservoirpy: tests/test_ops.py::test_node_link_several
def test_node_link_several():
    plus_node = dr.Identity(name="Plus")
    minus_node = dr.Identity(name="Minus")
    offline_node = dr.Ridge(name="Offline")
    model = [plus_node, minus_node] >> offline_node

    assert len(model.nodes) == 3
    assert len(model.edges) == 2

    model = plus_node >> [offline_node, minus_node]

    assert list(model.nodes) == ["Plus", "Offline", "Minus"]
    assert _edges(model) == [("Plus", 0, "Offline"), ("Plus", 0, "Minus")]


# reservoirpy: tests/test_ops.py::test_model_merge
def test_model_merge():
    plus_node = dr.Identity(name="Plus")
    minus_node = dr.Identity(name="Minus")
    offline_node = dr.Ridge(name="Offline")

    branch1 = plus_node >> minus_node
    branch2 = plus_node >> offline_node

    model = branch1 & branch2

    assert set(model.nodes) == {"Plus", "Minus", "Offline"}
    assert set(_edges(model)) == {("Plus", 0, "Minus"), ("Plus", 0, "Offline")}

    branch1 &= branch2

    assert set(branch1.nodes) == {"Plus", "Minus", "Offline"}
    assert set(_edges(branch1)) == {("Plus", 0, "Minus"), ("Plus", 0, "Offline")}

    model = plus_node & minus_node
    assert list(model.nodes) == ["Plus", "Minus"]
    assert model.edges == []

    model = [plus_node, minus_node] & offline_node
    assert list(model.nodes) == ["Plus", "Minus", "Offline"]
    assert model.edges == []

    model = plus_node & [minus_node, offline_node]
    assert list(model.nodes) == ["Plus", "Minus", "Offline"]
    assert model.edges == []


# reservoirpy: tests/test_ops.py::test_delayed_connections
def test_delayed_connections():
    # reservoirpy checks its builder object's attributes (ModelBuilderUtil.node_is_first,
    # .delay, .node); those are internals. What is translated: the half-built operand
    # is not a model yet, and the model it completes has the delayed edge.
    plus_node = dr.Identity(name="Plus")
    minus_node = dr.Identity(name="Minus")
    third_node = dr.Identity(name="ThirdNode")
    model = plus_node >> minus_node

    # node with delayed output
    intermediate_model = plus_node >> 2
    assert not isinstance(intermediate_model, dr.Model)

    final_model = intermediate_model >> third_node
    assert isinstance(final_model, dr.Model)
    assert list(final_model.nodes) == ["Plus", "ThirdNode"]
    assert _edges(final_model) == [("Plus", 2, "ThirdNode")]
    # and the edge delays: two zero steps, then the input two steps late
    ramp = np.arange(1.0, 6.0)[:, None]
    assert_array_equal(final_model.run(ramp), [[0.0], [0.0], [1.0], [2.0], [3.0]])

    # node with delayed input
    intermediate_model = 2 >> minus_node
    assert not isinstance(intermediate_model, dr.Model)

    final_model = third_node >> intermediate_model
    assert isinstance(final_model, dr.Model)
    assert list(final_model.nodes) == ["ThirdNode", "Minus"]
    assert _edges(final_model) == [("ThirdNode", 2, "Minus")]

    # model with delayed output
    intermediate_model = model >> 2
    assert not isinstance(intermediate_model, dr.Model)

    final_model = intermediate_model >> third_node
    assert isinstance(final_model, dr.Model)
    assert list(final_model.nodes) == ["Plus", "Minus", "ThirdNode"]
    assert _edges(final_model) == [("Plus", 0, "Minus"), ("Minus", 2, "ThirdNode")]

    # model with delayed input
    intermediate_model = 2 >> model
    assert not isinstance(intermediate_model, dr.Model)

    final_model = third_node >> intermediate_model
    assert isinstance(final_model, dr.Model)
    assert list(final_model.nodes) == ["ThirdNode", "Plus", "Minus"]
    assert _edges(final_model) == [("Plus", 0, "Minus"), ("ThirdNode", 2, "Plus")]


# reservoirpy: tests/test_ops.py::test_invalid_input
def test_invalid_input():
    # reservoirpy raises TypeError; deepreservoir's error for a bad operand is
    # GraphError (errors.py: "a malformed graph: ... a bad operand").
    node = _plus()

    with pytest.raises(dr.GraphError, match="left operand.*'string'"):
        _ = "string" >> node

    with pytest.raises(dr.GraphError, match="right operand.*'string'"):
        _ = node >> "string"


# ============================================================= tests/test_esn.py
# reservoirpy: tests/test_esn.py::test_esn_init
def test_esn_init():
    esn = dr.ESN(units=100, lr=0.8, sr=0.4, ridge=1e-5)

    data = np.ones((1000, 10))
    res = esn.fit(data, data)
    assert res is esn
    data = np.ones((10,))
    res = esn.step(data)  # reservoirpy's esn(data)
    assert res.shape == (10,)

    assert esn.reservoir.W_.shape == (100, 100)
    assert esn.reservoir.Win_.shape == (100, 10)
    assert esn.reservoir.lr == 0.8
    assert esn.reservoir.units == 100

    data = np.ones((1000, 10))
    res = esn.run(data)
    assert res.shape == (1000, 10)

    esn = dr.ESN(units=100, lr=0.8, sr=0.4, ridge=1e-5, output_dim=7)
    with pytest.raises(dr.DataError, match=r"7\b.*\b8\b"):  # reservoirpy: initialize
        esn.fit(np.ones((10, 3)), np.ones((10, 8)))


# reservoirpy: tests/test_esn.py::test_esn_init_from_obj
def test_esn_init_from_obj():
    res = dr.Reservoir(100, lr=0.8, sr=0.4)
    read = dr.Ridge(ridge=1e-5, output_dim=1)

    esn = dr.ESN(reservoir=res, readout=read)
    assert esn.reservoir is res and esn.readout is read

    x = np.ones((10, 2))
    y = np.arange(10).reshape(-1, 1)
    esn.fit(x, y)

    assert esn.reservoir.W_.shape == (100, 100)
    assert esn.reservoir.Win_.shape == (100, 2)
    assert esn.reservoir.lr == 0.8
    assert esn.reservoir.units == 100

    data = np.ones((1000, 2))
    res = esn.run(data)

    assert res.shape == (1000, 1)


# reservoirpy: tests/test_esn.py::test_esn_feedback
def test_esn_feedback():
    esn = dr.ESN(units=100, output_dim=5, lr=0.8, sr=0.4, ridge=1e-5, feedback=True)

    x = np.ones((13, 10))
    y = np.ones((13, 5))
    res = esn.fit(x, y).run(x)

    assert esn.reservoir.W_.shape == (100, 100)
    assert esn.reservoir.Win_.shape == (100, 15)
    assert esn.readout.Wout_.shape == (5, 100)  # reservoirpy's Wout (100, 5), transposed
    assert res.shape == (13, 5)

    res = esn.step(x[0])  # reservoirpy's esn(x[0])
    assert res.shape == (5,)


# reservoirpy: tests/test_esn.py::test_esn_argument_collision
def test_esn_argument_collision():
    # reservoirpy passes readout_bias=mat_gen.normal, an initialiser function:
    # deepreservoir refuses those (docs/reservoirpy.md, row "W=mat_gen.normal,
    # Win=mat_gen.bernoulli (initialiser functions)"), so the array it would draw.
    readout_bias = np.random.default_rng(1).normal(size=5)
    esn = dr.ESN(
        units=100,
        input_dim=15,  # should be the input_dim of the reservoir, not the readout
        output_dim=5,
        lr=0.8,
        sr=0.4,
        bias=1.0,  # should be the bias of the reservoir, not the readout
        readout_bias=readout_bias,  # should be the bias of the readout
        fit_bias=False,
        seed=1,
        name="MyNode",
        ridge=1e-5,
        feedback=True,
        input_to_readout=True,
    )

    x = np.ones((13, 10))
    y = np.ones((13, 5))
    res = esn.fit(x, y).run(x)

    assert esn.reservoir.output_dim == 100
    assert esn.reservoir.input_dim == 15
    assert esn.readout.input_dim == 110
    assert esn.readout.output_dim == 5
    assert esn.reservoir.W_.shape == (100, 100)
    assert esn.reservoir.Win_.shape == (100, 15)
    assert esn.readout.Wout_.shape == (5, 110)
    assert esn.readout.bias_.shape == (5,)
    assert esn.reservoir.bias == 1.0
    assert res.shape == (13, 5)
    assert len(esn.nodes) == 3
    assert len(esn.edges) == 4

    res = esn.step(x[0])  # reservoirpy's esn(x[0])
    assert res.shape == (5,)


# reservoirpy: tests/test_esn.py::test_esn_freerunning
def test_esn_freerunning():
    rng = np.random.default_rng(seed=1)
    # reservoirpy's bias=mat_gen.normal (an initialiser function, refused here: row
    # "initialiser functions") is the seeded family "normal", scaled by 1.
    model = dr.ESN(units=100, sr=1.0, bias="normal", bias_scaling=1.0)
    x, y = rng.normal(size=(100, 0)), rng.normal(size=(100, 3))
    model.fit(x, y)
    res = model.run(None, iters=213)  # reservoirpy's model.predict(x=None, iters=213)

    assert model.reservoir.input_dim == 0
    assert model.readout.input_dim == 100
    assert model.readout.output_dim == 3
    assert res.shape == (213, 3)


# ============================================================ tests/test_node.py
# reservoirpy: tests/test_node.py::test_node_init
def test_node_init():
    plus_node = _plus()
    data = np.zeros((5,))

    res = plus_node.step(data)  # reservoirpy's plus_node(data)

    assert_array_equal(res, data + 1)
    assert plus_node.built  # reservoirpy's plus_node.initialized
    assert plus_node.input_dim == 5
    assert plus_node.output_dim == 5
    assert plus_node.bias == 1.0  # reservoirpy's plus_node.h

    data = np.zeros((1, 8))

    with pytest.raises(dr.DataError, match="5 features.*Got 8"):
        plus_node.step(data)


# reservoirpy: tests/test_node.py::test_node_call
def test_node_call():
    plus_node = _plus(2)
    data = np.zeros((5,))
    res = plus_node.step(data)  # reservoirpy's plus_node(data)

    assert_array_equal(res, data + 2)
    state = plus_node.reset()  # the previous state (reservoirpy's plus_node.state["out"])
    assert state is not None
    assert_array_equal(data + 2, state)


# reservoirpy: tests/test_node.py::test_node_dimensions
def test_node_dimensions():
    plus_node = _plus()
    data = np.zeros((5,))
    plus_node.step(data)

    # input size mismatch
    with pytest.raises(dr.DataError, match="5 features.*Got 6"):
        data = np.zeros((6,))
        plus_node.step(data)

    # input size mismatch in run,
    # no matter how many timesteps are given
    with pytest.raises(dr.DataError, match="5 features.*Got 6"):
        data = np.zeros((5, 6))
        plus_node.run(data)

    with pytest.raises(dr.DataError, match="5 features.*Got 6"):
        data = np.zeros((1, 6))
        plus_node.run(data)

    # reservoirpy: "no timespans in call, only single timesteps" refuses (2, 5).
    # Deliberate difference: step takes (F,) or (B, F), a batch of B series advancing
    # together (docs/reservoirpy.md, "Batches"; row "model.step(x), node.step(x)").
    data = np.zeros((2, 5))
    assert_array_equal(plus_node.step(data), data + 1)


# reservoirpy: tests/test_node.py::test_node_run
def test_node_run():
    plus_node = _dummy(2, accumulate=True)  # AccumulateNode(h=2)
    data = np.zeros((3, 5))
    res = plus_node.run(data)
    expected = np.array([[2] * 5, [4] * 5, [6] * 5])

    assert_array_equal(res, expected)
    assert_array_equal(res[-1], plus_node.reset())  # reservoirpy's plus_node.state["out"]


# reservoirpy: tests/test_node.py::test_offline_fit
def test_offline_fit():
    # The dummy Offline node records the sum of its targets; a Ridge on constant
    # features predicts their mean, so each fit is checked through its prediction.
    offline_node = dr.Ridge(1e-6, dtype=F64)
    X = np.ones((10, 5)) * 0.5
    Y = np.ones((10, 5))

    assert not offline_node.is_fitted()  # reservoirpy: offline_node.b == 0

    offline_node.fit(X, Y)

    assert_allclose(offline_node.run(X), Y, atol=1e-12)  # reservoirpy: b == 50

    Y = -np.ones((10, 5))

    offline_node.fit(X, Y)

    assert_allclose(offline_node.run(X), Y, atol=1e-12)  # refit: b == -50, not 0

    X = [np.ones((10, 5)) * 2.0] * 3
    Y = [0.3 * np.ones((10, 5))] * 3

    offline_node.fit(X, Y)

    assert_allclose(offline_node.run(X[0]), Y[0], atol=1e-12)

    offline_node.fit(np.array(X), np.array(Y))

    assert_allclose(offline_node.run(X[0]), Y[0], atol=1e-12)


# reservoirpy: tests/test_node.py::test_node_bad_learning_method
def test_node_bad_learning_method():
    # reservoirpy raises AttributeError (the node class has no such method). Every
    # deepreservoir node has fit and partial_fit; they refuse what the node cannot do.
    plus_node = _plus()
    offline_node = dr.Ridge()

    X = np.ones((10, 5))
    Y = np.ones((10, 5))

    with pytest.raises(dr.DeepReservoirError, match="nothing to train"):
        plus_node.fit(X, Y)

    with pytest.raises(dr.DeepReservoirError, match="partial_fit.*use fit"):
        offline_node.partial_fit(X, Y)

    with pytest.raises(dr.DeepReservoirError, match="nothing to train|partial_fit"):
        plus_node.partial_fit(X, Y)


# ================================================== nodes/tests/test_reservoir.py
# reservoirpy: nodes/tests/test_reservoir.py::test_reservoir_init
def test_reservoir_init():
    # bias=mat_gen.zeros (an initialiser function) is refused (docs/reservoirpy.md,
    # row "initialiser functions"); the constant 0.0 is the same bias.
    with pytest.raises(dr.ParameterError, match="'bias'.*initialiser function"):
        dr.Reservoir(100, lr=0.8, bias=rpy_mat_gen.zeros)
    node = dr.Reservoir(100, lr=0.8, bias=0.0)

    data = np.ones((10,))
    res = node.step(data)  # reservoirpy's node(data)
    assert res.shape == (100,)

    assert node.W_.shape == (100, 100)
    assert node.Win_.shape == (100, 10)
    assert node.lr == 0.8
    assert node.units == 100

    data = np.ones((10000, 10))
    res = node.run(data)

    assert res.shape == (10000, 100)

    # reservoirpy: Reservoir() raises ValueError (no units). Deliberate difference:
    # units defaults to 100 (docs/reservoirpy.md, row "units=None with an explicit W").
    assert dr.Reservoir().units == 100

    # reservoirpy keeps the function object; here the activation is stored by name
    # (row "activation=").
    res = dr.Reservoir(100, activation="relu")
    assert res.activation == "relu"
    assert dr.Reservoir(100, activation=rpy_activations.relu).activation == "relu"


# reservoirpy: nodes/tests/test_reservoir.py::test_reservoir_init_from_lr_is_arrays
def test_reservoir_init_from_lr_is_arrays():
    lr = np.ones((100,)) * 0.5
    input_scaling = np.ones((10,)) * 0.8
    node = dr.Reservoir(100, lr=lr, input_scaling=input_scaling)

    data = np.ones((2, 10))
    res = node.run(data)
    assert res.shape == (2, 100)

    assert node.W_.shape == (100, 100)
    assert node.Win_.shape == (100, 10)
    assert_array_equal(node.lr, np.ones(100) * 0.5)
    assert_array_equal(np.asarray(node.input_scaling), np.ones(10) * 0.8)


# reservoirpy: nodes/tests/test_reservoir.py::test_reservoir_init_from_matrices
def test_reservoir_init_from_matrices():
    Win = np.ones((100, 10))

    # bias=mat_gen.bernoulli (refused: row "initialiser functions") is the seeded
    # family "binary" (±1), scaled by 1.
    node = dr.Reservoir(100, lr=0.8, Win=Win, bias="binary", bias_scaling=1.0)

    data = np.ones((10,))
    res = node.step(data)

    assert node.W_.shape == (100, 100)
    assert_array_equal(node.Win_.numpy(), Win)
    assert node.lr == 0.8
    assert node.units == 100

    data = np.ones((10000, 10))
    res = node.run(data)

    assert res.shape == (10000, 100)

    Win = np.ones((100, 10))
    bias = np.ones((100,))

    node = dr.Reservoir(100, lr=0.8, Win=Win, bias=bias)

    data = np.ones((10,))
    res = node.step(data)

    assert node.W_.shape == (100, 100)
    assert node.lr == 0.8
    assert node.units == 100
    assert node.output_dim == 100

    data = np.ones((10000, 10))
    res = node.run(data)

    assert res.shape == (10000, 100)

    # reservoirpy raises on the first call; deepreservoir already at construction.
    data = np.ones((10,))
    with pytest.raises(dr.ParameterError, match=r"'W'.*\(100, 100\).*Got shape \(10, 10\)"):
        res = dr.Reservoir(100, W=np.ones((10, 10)))  # Shape override (W.shape < units)
        res.step(data)

    with pytest.raises(dr.ParameterError, match=r"'W'.*square.*\(10, 11\)"):  # Bad shape
        res = dr.Reservoir(W=np.ones((10, 11)))
        res.step(data)

    with pytest.raises(dr.ParameterError, match=r"'W'.*Got 1\.0"):  # Bad matrix format
        res = dr.Reservoir(100, W=1.0)
        res.step(data)

    # Bad Win shape: 20 input columns, fed 10 features
    with pytest.raises(dr.DataError, match="20 features.*Got 10"):
        res = dr.Reservoir(100, Win=np.ones((100, 20)))
        res.step(data)

    with pytest.raises(dr.ParameterError, match=r"'Win'.*\(101, 10\)"):  # Bad Win shape
        res = dr.Reservoir(100, Win=np.ones((101, 10)))
        res.step(data)

    with pytest.raises(dr.ParameterError, match=r"'Win'.*Got 1\.0"):  # Bad matrix format
        res = dr.Reservoir(100, Win=1.0)
        res.step(data)


# reservoirpy: nodes/tests/test_reservoir.py::test_reservoir_bias
def test_reservoir_bias():
    node = dr.Reservoir(100, lr=0.8, bias=0.0)  # bias=mat_gen.zeros (refused: row)
    data = np.ones((10,))
    res = node.step(data)
    assert node.W_.shape == (100, 100)
    assert node.Win_.shape == (100, 10)
    assert node.bias_.shape == (100,)
    assert_array_equal(node.bias_.numpy(), np.zeros((100,)))
    assert node.lr == 0.8
    assert node.units == 100

    # bias=mat_gen.bernoulli (refused: row) is the family "binary", scaled by 1
    node = dr.Reservoir(100, lr=0.8, bias="binary", bias_scaling=1.0)
    data = np.ones((10,))
    res = node.step(data)
    assert node.bias_.shape == (100,)

    bias = np.ones((100,))
    node = dr.Reservoir(100, bias=bias)
    res = node.step(data)
    assert_array_equal(node.bias_.numpy(), bias)

    bias = np.ones((100,))
    node = dr.Reservoir(100, bias=bias)
    res = node.step(data)
    assert_array_equal(node.bias_.numpy(), bias)

    # float64, as reservoirpy computes (float32 by default here: section "Numbers")
    data = np.zeros((100,))
    node = dr.Reservoir(100, bias=1.0, dtype=F64)
    res = node.step(data)
    assert_array_equal(res, np.tanh(np.ones((100,))))

    # reservoirpy accepts a (100, 1) bias and broadcasts the state to (100, 100) (its
    # test expects the shape check to fail); deepreservoir refuses the bias itself.
    with pytest.raises(dr.ParameterError, match=r"'bias'.*\(100,\).*\(100, 1\)"):
        bias = np.ones((100, 1))
        node = dr.Reservoir(100, bias=bias)
        res = node.step(data)

    with pytest.raises(dr.ParameterError, match=r"'bias'.*\(100,\).*\(100, 2\)"):
        bias = np.ones((100, 2))
        node = dr.Reservoir(100, bias=bias)
        node.step(data)


# reservoirpy: nodes/tests/test_reservoir.py::test_reservoir_run
def test_reservoir_run():
    x = np.ones((10, 5))

    res = dr.Reservoir(100)
    out = res.run(x)
    assert out.shape == (10, 100)


# reservoirpy: nodes/tests/test_reservoir.py::test_reservoir_seed
def test_reservoir_seed():
    node1 = dr.Reservoir(100, seed=123)
    node2 = dr.Reservoir(100, seed=123)

    data = np.ones((10, 10))

    assert_array_equal(node1.run(data), node2.run(data))

    node1 = dr.Reservoir(100, seed=123)
    node2 = dr.Reservoir(100, seed=123)

    data = np.ones((10, 10))

    assert_array_equal(node1.run(data), node2.run(data))


# ===================================================== nodes/tests/test_ridge.py
# reservoirpy: nodes/tests/test_ridge.py::test_ridge_init
def test_ridge_init():
    x = np.ones((100,))
    X = np.ones((120, 100))
    Y = np.ones((120, 10))

    # reservoirpy's node.initialize(X, Y): deepreservoir builds the node when it fits
    node = dr.Ridge(ridge=1e-8)
    node.fit(X, Y)
    assert node.output_dim == 10
    assert node.input_dim == 100
    assert node.ridge == 1e-8

    node = dr.Ridge(ridge=1e-8, output_dim=10)
    assert node.output_dim == 10  # known before any data
    node.fit(X, Y)
    assert node.output_dim == 10
    assert node.input_dim == 100
    assert node.ridge == 1e-8

    # reservoirpy fails on the unfitted weights (a ValueError from numpy's matmul);
    # deepreservoir says it is not fitted.
    with pytest.raises(dr.NotFittedError, match="not fitted"):
        node = dr.Ridge(ridge=1e-8, input_dim=100, output_dim=10)
        node.step(x)

    # Wout in reservoirpy's (input_dim, output_dim) layout
    node = dr.Ridge(ridge=1e-8, Wout=np.ones((100, 10)), bias=np.ones((10,)))
    res = node.run(X)
    assert node.output_dim == 10
    assert node.input_dim == 100
    assert node.ridge == 1e-8
    assert_array_equal(res, np.full((120, 10), 101.0))


# reservoirpy: nodes/tests/test_ridge.py::test_ridge_worker
def test_ridge_worker():
    # reservoirpy's worker(X, Y) returns one series' sums XXT, YXT, x_sum, y_sum and
    # the sample count: Ridge.statistics here (a built node: fitted once first).
    X = 2 * np.ones((120, 100))
    Y = 2 * np.ones((120, 10))

    node = dr.Ridge(1e-6, dtype=F64).fit(X, Y)

    # (taken around the rows' mean for precision; uncentred() gives the raw sums)
    stats = node.uncentred(node.statistics(torch.as_tensor(X), torch.as_tensor(Y)))
    assert stats.sums["xtx"].shape == (100, 100)
    assert stats.sums["xty"].shape == (100, 10)
    assert_array_equal(stats.sums["xtx"].numpy(), 4 * 120 * np.ones((100, 100)))
    assert_array_equal(stats.sums["xty"].numpy(), 4 * 120 * np.ones((100, 10)))
    assert_array_equal(stats.sums["x_sum"].numpy(), 2 * 120 * np.ones((100,)))
    assert_array_equal(stats.sums["y_sum"].numpy(), 2 * 120 * np.ones((10,)))
    assert stats.count == 120


# reservoirpy: nodes/tests/test_ridge.py::test_ridge_fit
def test_ridge_fit():
    X = np.ones((120, 100))
    Y = np.ones((120, 10))

    node = dr.Ridge(1e-6)
    node.fit(X, Y)
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.Wout_.shape == (10, 100)  # reservoirpy's Wout (100, 10), transposed
    assert node.bias_.shape == (10,)
    assert torch.any(node.bias_ != 0)

    node = dr.Ridge(1e-6, fit_bias=False)
    node.fit(X, Y)
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.Wout_.shape == (10, 100)
    assert_array_equal(node.bias_.numpy(), np.zeros((10,)))


# reservoirpy: nodes/tests/test_ridge.py::test_ridge_fit_multiseries
def test_ridge_fit_multiseries():
    rng = np.random.default_rng(seed=0)
    X = rng.uniform(size=(15, 12, 100))
    Y = X @ rng.uniform(size=(100, 10)) + rng.uniform(size=10)

    node = dr.Ridge(1e-6, dtype=F64)
    node.fit(X, Y)
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.Wout_.shape == (10, 100)
    assert node.bias_.shape == (10,)
    assert not torch.all(node.Wout_ == 0)
    assert not torch.all(node.bias_ == 0)
    node2 = dr.Ridge(1e-6, dtype=F64)
    node2.fit(X.reshape(15 * 12, 100), Y.reshape(15 * 12, 10))
    assert_array_almost_equal(node.Wout_.numpy(), node2.Wout_.numpy())
    assert_array_almost_equal(node.bias_.numpy(), node2.bias_.numpy())

    node = dr.Ridge(1e-6, fit_bias=False, dtype=F64)
    node.fit(X, Y)
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.Wout_.shape == (10, 100)
    assert_array_equal(node.bias_.numpy(), np.zeros((10,)))


# reservoirpy: nodes/tests/test_ridge.py::test_ridge_fit_parallel
def test_ridge_fit_parallel():
    # reservoirpy's workers=-1 (joblib) has no counterpart: the (15, 12, 100) batch is
    # accumulated in one streaming pass.
    X = np.ones((15, 12, 100))
    Y = np.ones((15, 12, 10))

    node = dr.Ridge(1e-6)
    node.fit(X, Y)
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.Wout_.shape == (10, 100)
    assert node.bias_.shape == (10,)
    assert torch.any(node.bias_ != 0)

    node = dr.Ridge(1e-6, fit_bias=False)
    node.fit(X, Y)
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.Wout_.shape == (10, 100)
    assert_array_equal(node.bias_.numpy(), np.zeros((10,)))


# ======================================================= nodes/tests/test_rls.py
# reservoirpy: nodes/tests/test_rls.py::test_rls_init
def test_rls_init():
    node = dr.RLS(10, output_dim=3)

    data = np.ones((100,))
    res = node.step(data)  # reservoirpy's node(data)
    assert res.shape == (3,)

    assert node.Wout_.shape == (1, 3, 100)  # reservoirpy's Wout (100, 3), one learner
    assert node.bias_.shape == (1, 3)
    assert node.alpha == 10

    data = np.ones((10000, 100))
    res = node.run(data)
    assert res.shape == (10000, 3)

    # with initialized Wout and bias
    Wout = np.ones((100, 3))
    bias = np.ones((3,))
    data = np.ones((100,))
    # unspecified dimensions
    node = dr.RLS(10, Wout=Wout, bias=bias)
    res = node.step(data)
    assert_array_equal(res, np.full(3, 101.0))
    # correct specified dimensions
    node = dr.RLS(10, Wout=Wout, bias=bias, input_dim=100, output_dim=3)
    res = node.step(data)
    assert_array_equal(res, np.full(3, 101.0))
    # incorrect specified dimensions
    with pytest.raises(dr.ParameterError, match="Wout|input_dim|output_dim"):
        node = dr.RLS(10, Wout=Wout, bias=bias, input_dim=101, output_dim=1)
    with pytest.raises(dr.ParameterError, match="bias|output_dim"):
        bias = np.ones((10,))
        node = dr.RLS(bias=bias, output_dim=1)


# reservoirpy: nodes/tests/test_rls.py::test_rls_train_one_step
def test_rls_train_one_step():
    node = dr.RLS(10)

    X = np.ones((10, 5, 2))
    Y = np.ones((10, 5, 10))

    for x, y in zip(X, Y):
        res = node.partial_fit(x, y)
    assert res.shape == (5, 10)

    assert node.Wout_.shape == (1, 10, 2)  # reservoirpy's Wout (2, 10)
    assert node.bias_.shape == (1, 10)
    assert node.alpha == 10

    data = np.ones((10000, 2))
    res = node.run(data)

    assert res.shape == (10000, 10)


# reservoirpy: nodes/tests/test_rls.py::test_rls_train
def test_rls_train():
    # float64, as reservoirpy computes (float32 by default here: section "Numbers")
    node = dr.RLS(alpha=1e-6, dtype=F64)

    X, Y = np.ones((200, 100)), np.ones((200, 10))

    res = node.partial_fit(X, Y)

    assert res.shape == (200, 10)
    assert _rpy_wout(node).shape == (100, 10)
    assert_array_almost_equal(_rpy_wout(node), np.ones((100, 10)) * 0.005, decimal=4)
    assert _rpy_bias(node).shape == (10,)
    assert_array_almost_equal(_rpy_bias(node), np.ones((10,)) * 0.5, decimal=4)

    node = dr.RLS(1e-6, fit_bias=False, dtype=F64)

    X, Y = np.ones((200, 100)), np.ones((200, 10))

    res = node.partial_fit(X, Y)

    assert res.shape == (200, 10)
    assert _rpy_wout(node).shape == (100, 10)
    assert_array_almost_equal(_rpy_wout(node), np.ones((100, 10)) * 0.01, decimal=4)
    assert _rpy_bias(node).shape == (10,)
    assert_array_almost_equal(_rpy_bias(node), np.ones((10,)) * 0.0, decimal=4)

    node = dr.RLS(1e-6, fit_bias=True, dtype=F64)

    X, Y = np.ones((5, 24, 100)), np.ones((5, 24, 10))

    for x, y in zip(X, Y):
        res = node.partial_fit(x, y)

    assert _rpy_wout(node).shape == (100, 10)
    assert_array_almost_equal(_rpy_wout(node), np.ones((100, 10)) * 0.005, decimal=4)
    assert _rpy_bias(node).shape == (10,)
    assert_array_almost_equal(_rpy_bias(node), np.ones((10,)) * 0.5, decimal=4)

    data = np.ones((120, 100))
    res = node.run(data)

    assert res.shape == (120, 10)


# ======================================================= nodes/tests/test_lms.py
# reservoirpy: nodes/tests/test_lms.py::test_lms_init
def test_lms_init():
    X = np.ones((2, 100))

    # with zero-initialised Wout & bias (reservoirpy: callables, mat_gen.zeros)
    node = dr.LMS(0.1)
    assert node.input_dim is None
    assert node.output_dim is None
    assert node.learning_rate == 0.1
    # reservoirpy's node.initialize(X, Y) sizes the node from the data; here a node
    # is built on its first data, and without targets it needs output_dim.
    node = dr.LMS(0.1, output_dim=10)
    node.run(X)
    assert_array_equal(_rpy_wout(node), np.zeros((100, 10)))
    assert_array_equal(_rpy_bias(node), np.zeros((10,)))
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.learning_rate == 0.1

    # with initialized weights: the sizes are known from them at once
    node = dr.LMS(1e-6, Wout=np.ones((100, 10)), bias=np.ones((10,)))
    assert node.input_dim == 100
    assert node.output_dim == 10
    res = node.run(X)
    assert_array_equal(_rpy_wout(node), np.ones((100, 10)))
    assert_array_equal(_rpy_bias(node), np.ones((10,)))
    assert_array_equal(res, np.full((2, 10), 101.0))
    assert node.input_dim == 100
    assert node.output_dim == 10
    assert node.learning_rate == 1e-6


# reservoirpy: nodes/tests/test_lms.py::test_lms_fit
def test_lms_fit():
    node = dr.LMS(1e-3)

    x = np.ones((7, 5, 2))
    y = np.ones((7, 5, 10))

    res = node.fit(x, y)
    assert res is node

    # reservoirpy runs the 7 series one after another through one learner. Here the
    # 7 series advance together (docs/reservoirpy.md, "Batches") as 7 independent
    # learners, the leading axis of Wout_ and bias_.
    assert node.Wout_.shape == (7, 10, 2)
    assert not torch.all(node.Wout_ == 0)
    assert node.bias_.shape == (7, 10)
    assert not torch.all(node.bias_ == 0)
    assert node.learning_rate == 1e-3

    data = np.ones((7, 1000, 2))
    res = node.run(data)

    assert res.shape == (7, 1000, 10)


# reservoirpy: nodes/tests/test_lms.py::test_lms_partial_fit
def test_lms_partial_fit():
    rng = np.random.default_rng(seed=2368)
    X = rng.normal(size=(10, 5, 2))
    Y = rng.normal(size=(10, 5, 10))
    data = rng.normal(size=(1000, 2))

    node1 = dr.LMS(1e-4, dtype=F64)
    for x, y in zip(X, Y):
        node1.partial_fit(x, y)

    assert node1.Wout_.shape == (1, 10, 2)  # reservoirpy's Wout (2, 10)
    assert node1.bias_.shape == (1, 10)

    res1 = node1.run(data)
    assert res1.shape == (1000, 10)

    # compare with .fit()
    node2 = dr.LMS(1e-4, dtype=F64)
    node2.fit(X.reshape(10 * 5, 2), Y.reshape(10 * 5, 10))
    res2 = node2.run(data)
    assert_array_almost_equal(res1, res2)
    assert not np.all(res1 == np.zeros((1000, 10)))
    assert_array_almost_equal(_rpy_wout(node1), _rpy_wout(node2))
    assert not np.all(_rpy_wout(node1) == np.zeros((2, 10)))
    assert_array_almost_equal(_rpy_bias(node1), _rpy_bias(node2))
    assert not np.all(_rpy_bias(node1) == np.zeros((10,)))


# reservoirpy: nodes/tests/test_lms.py::test_lms_call
def test_lms_call():
    x = np.array([0.1, 0.2, 0.3])

    node = dr.LMS(output_dim=3)
    y1 = node.step(x)
    assert_array_equal(y1, np.zeros((3,)))
    node = dr.LMS(output_dim=2)
    y2 = node.step(x)  # reservoirpy's node(x)
    assert_array_equal(y2, np.zeros((2,)))


# ====================================================== nodes/tests/test_nvar.py
def _get_output_dim(input_dim, delay, order):
    linear_dim = delay * input_dim
    nonlinear_dim = comb(linear_dim + order - 1, order)
    return int(linear_dim + nonlinear_dim)


# reservoirpy: nodes/tests/test_nvar.py::test_nvar
def test_nvar():
    node = dr.NVAR(3, 2)

    data = np.ones((10,))
    res = node.step(data)  # reservoirpy's node(data)

    # reservoirpy's node.store: the last delay·strides inputs, kept as the state
    store = node.reset()
    assert store is not None
    assert np.asarray(store).size == 3 * 1 * 10
    assert node.strides == 1
    assert node.delay == 3
    assert node.order == 2
    assert node.input_dim == 10
    assert node.output_dim == _get_output_dim(10, 3, 2)
    assert res.shape == (_get_output_dim(10, 3, 2),)

    data = np.ones((1000, 10))
    res = node.run(data)

    assert res.shape == (1000, _get_output_dim(10, 3, 2))


# ======================================================== nodes/tests/test_io.py
# reservoirpy: nodes/tests/test_io.py::test_input
def test_input():
    inp = dr.Input()
    x = np.ones((10,))
    out = inp.step(x)  # reservoirpy's inp(x)
    assert_array_equal(out, x)
    x = np.ones((10, 10))
    out = inp.run(x)
    assert_array_equal(out, x)


# reservoirpy: nodes/tests/test_io.py::test_output
def test_output():
    output = dr.Output()
    x = np.ones((10,))
    out = output.step(x)  # reservoirpy's output(x)
    assert_array_equal(out, x)
    x = np.ones((100, 10))
    out = output.run(x)
    assert_array_equal(out, x)
