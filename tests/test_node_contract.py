"""The shared check suite: every node class of the package meets the node contract.

Classes are discovered, not listed: every concrete subclass of ``Node`` defined
in ``deepreservoir`` is checked, so a new node class is picked up the moment it
exists. Each is built with its defaults (every hyperparameter has one) inside
``Input() >> node`` and checked for:

* building from data (run, or fit when it needs targets);
* ``step`` equal to ``run``, step by step, in float64;
* a save/load round trip giving the same outputs;
* dtype and device moves carrying the kept state;
* every constrained hyperparameter refusing a bad value, naming it;
* seed reproducibility.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.constraints import AnyOf, Interval, OneOf
from deepreservoir.errors import NotFittedError, ParameterError
from deepreservoir.kinds import ClosedForm, GradientTrained
from deepreservoir.nodes.base import Node

for info in pkgutil.walk_packages(dr.nodes.__path__, "deepreservoir.nodes."):
    importlib.import_module(info.name)


def _concrete_node_classes() -> list[type]:
    found = []
    for cls in Node.registered_classes().values():
        if not cls.__module__.startswith("deepreservoir."):
            continue
        if inspect.isabstract(cls) or cls.forward_sequence is Node.forward_sequence:
            continue
        found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


CLASSES = _concrete_node_classes()
FEATURES, OUTPUTS, STEPS = 4, 2, 12


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(3, STEPS, FEATURES))
    y = rng.uniform(-1, 1, size=(3, STEPS, OUTPUTS))
    return x, y


def _make(cls: type, **extra) -> Node:
    options = {}
    signature = inspect.signature(cls.__init__).parameters
    if "seed" in signature:
        options["seed"] = 3
    if "dtype" in signature:
        options["dtype"] = torch.float64
    options.update(extra)
    return cls(**options)


def _ready_model(cls: type, **extra):
    """``Input() >> node``, built and (when the node trains) fitted on small data."""
    node = _make(cls, **extra)
    model = dr.Input(name="source") >> node
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dr.RankCappedWarning)
        try:
            model.run(x)
            needs_targets = False
        except NotFittedError:
            needs_targets = True
        trains = isinstance(node, ClosedForm) or (isinstance(node, GradientTrained)
                                                  and node.trains_by_gradient())
        if needs_targets or trains:
            if not needs_targets and not isinstance(node, ClosedForm):
                y = np.random.default_rng(1).uniform(-1, 1, size=(3, STEPS, node.output_dim))
            options = {} if isinstance(node, ClosedForm) else {"epochs": 1, "verbose": 0}
            model.fit(x, y, **options)
    model.double()  # nodes without tensors follow the model's dtype
    model.reset()
    return model, node, x


def test_the_suite_finds_the_public_node_classes():
    names = {cls.__name__ for cls in CLASSES}
    assert {"Reservoir", "Ridge", "Scaffold", "LoRAReadout", "Dense", "BetaGate", "Input",
            "Tanh"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_builds_from_data_with_default_hyperparameters(cls):
    model, node, x = _ready_model(cls)
    assert node.built and node.input_dim == FEATURES
    out = model.run(x)
    assert out.shape[:2] == (3, STEPS) and out.shape[2] == node.output_dim
    assert np.isfinite(out).all()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_step_equals_run(cls):
    model, _node, x = _ready_model(cls)
    whole = model.run(x, reset=True)
    model.reset()
    stepped = np.stack([model.step(x[:, t]) for t in range(STEPS)], axis=1)
    np.testing.assert_allclose(stepped, whole, rtol=0, atol=1e-12)
    model.reset()
    single = np.stack([model.step(x[0, t]) for t in range(STEPS)])
    np.testing.assert_allclose(single, whole[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_save_load_round_trip(cls, tmp_path):
    model, _node, x = _ready_model(cls)
    loaded = dr.load(model.save(tmp_path / "node.dr"))
    assert list(loaded.nodes) == list(model.nodes)
    assert np.array_equal(loaded.run(x, reset=True), model.run(x, reset=True))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_dtype_moves_carry_the_kept_state(cls):
    model, _node, x = _ready_model(cls)
    whole = model.run(x, reset=True)
    model.float()
    first = model.run(x[:, :5], reset=True)
    model.double()
    second = model.run(x[:, 5:])  # continues from the kept state, converted to float64
    assert second.dtype == np.float64 and first.dtype == np.float32
    state = model._state
    for value in [*state.nodes.values(), *state.edges.values()]:
        if isinstance(value, torch.Tensor):
            assert value.dtype == torch.float64
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-4)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_device_moves_carry_the_kept_state(cls):
    model, _node, x = _ready_model(cls)
    model.run(x, reset=True)
    model.to("cpu")
    state = model._state
    for value in state.nodes.values():
        if isinstance(value, torch.Tensor):
            assert value.device.type == "cpu"
    if torch.cuda.is_available():
        model.to("cuda")
        assert all(v.device.type == "cuda" for v in model._state.nodes.values()
                   if isinstance(v, torch.Tensor))
        model.run(torch.as_tensor(x, device="cuda"))


def _bad_values(constraint) -> list:
    values = [object()]
    if isinstance(constraint, Interval):
        if constraint.low is not None:
            values.append(constraint.low - 1)
        if constraint.high is not None:
            values.append(constraint.high + 1)
        values.append(float("nan"))
    elif isinstance(constraint, OneOf):
        values.append("no such option")
    elif isinstance(constraint, AnyOf):
        values.append("no such option")
    return values


def _hyperparameter_cases() -> list:
    cases = []
    for cls in CLASSES:
        signature = inspect.signature(cls.__init__).parameters
        table = {**Node._base_constraints, **cls._constraints}
        for name, constraint in table.items():
            if name not in signature:
                continue
            for value in _bad_values(constraint):
                if constraint.accepts(value):
                    continue
                cases.append(pytest.param(cls, name, value,
                                          id=f"{cls.__name__}-{name}-{value!r:.20}"))
    return cases


@pytest.mark.parametrize(("cls", "name", "value"), _hyperparameter_cases())
def test_bad_hyperparameters_are_refused_by_name(cls, name, value):
    with pytest.raises(ParameterError, match=rf"'{name}' parameter of {cls.__name__}"):
        cls(**{name: value})


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_bad_dtype_is_refused(cls):
    if "dtype" not in inspect.signature(cls.__init__).parameters:
        pytest.skip("the node has no dtype of its own")
    with pytest.raises(ParameterError, match=rf"'dtype' parameter of {cls.__name__}"):
        cls(dtype="int8")
    assert cls(dtype="float64").dtype == torch.float64
    assert cls(dtype=np.float64).dtype == torch.float64


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_same_seed_gives_the_same_node(cls):
    first, _, x = _ready_model(cls)
    second, _, _ = _ready_model(cls)
    assert np.array_equal(first.run(x, reset=True), second.run(x, reset=True))
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
