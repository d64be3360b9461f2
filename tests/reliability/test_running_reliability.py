"""Nothing silent while running: non-finite states, weights, leak rates and dtypes.

Every path that runs a model (run, states, step, forward, the closed-form and
online fit passes, generation, free run, step mode) refuses a node output that
turned NaN or inf with a DataError naming the node and the first non-finite
step; the opt-out (``finite_check``) gives the values back. Explicit weights
holding NaN or inf, an ``sr`` or a weight that overflows the dtype, leak rates
with no effect and half-precision dtypes are refused with messages naming the
parameter and the value. No error leaks out of torch, numpy or LAPACK.
"""

import re
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir import constraints as C
from deepreservoir import functional as F
from deepreservoir.errors import DataError, ParameterError
from deepreservoir.nodes import reservoir as R

F64 = torch.float64
SERIES = np.sin(np.linspace(0, 20, 200))[:, None]
FIRST_BAD = 59  # first step at which this unstable reservoir's float32 states overflow


def unstable(**kwargs):
    """A reservoir whose float32 states overflow (identity activation, sr = 5)."""
    options = dict(units=100, sr=5, activation="identity", seed=0, name="res")
    return dr.Reservoir(**{**options, **kwargs})


def assert_clean(error: BaseException) -> None:
    """The error is deepreservoir's own: raised by deepreservoir, no chained cause, and no
    frame in torch or numpy but torch's dispatch of ``model(x)`` (``Module.__call__``)."""
    assert error.__cause__ is None and error.__context__ is None
    frame, names = error.__traceback__, []
    while frame is not None:
        names.append(frame.tb_frame.f_code.co_filename.replace("\\", "/"))
        frame = frame.tb_next
    assert "/deepreservoir/" in names[-1], names[-1]
    for name in names:
        if name.endswith("torch/nn/modules/module.py"):
            continue
        assert "/torch/" not in name and "/numpy/" not in name, name


# ---------------------------------------------------------- non-finite running
def _run():
    unstable().run(SERIES)


def _states():
    model = unstable() >> dr.Tanh(name="act")
    model.states(SERIES)


def _states_inputs():
    (unstable() >> dr.Ridge(name="readout")).states(SERIES, nodes="res")


def _step():
    reservoir = unstable()
    for x in SERIES:
        reservoir.step(x)


def _forward_numpy():
    unstable()(SERIES)


def _forward_torch():
    unstable()(torch.as_tensor(SERIES, dtype=torch.float32))


def _fit_closed_form():
    (unstable() >> dr.Ridge(1e-6, name="readout")).fit(SERIES[:-1], SERIES[1:])


def _fit_in_chunks():
    (unstable() >> dr.Ridge(1e-6, name="readout")).fit(SERIES[:-1], SERIES[1:], chunk_size=25)


def _fit_online():
    (unstable() >> dr.RLS(name="readout")).fit(SERIES[:-1], SERIES[1:])


def _generate():
    model = unstable() >> dr.Ridge(1e-3, name="readout")
    model.fit(SERIES[:20], SERIES[1:21])  # short enough to stay finite
    model.generate(300, start=SERIES[0])


def _free_run():
    reservoir = unstable(bias=1.0, Win=np.ones((100, 1)))  # fed by the readout alone
    readout = dr.Ridge(Wout=np.ones((100, 1)), bias=np.zeros(1), name="readout")
    model = (reservoir >> readout) & (reservoir << readout)  # a closed loop
    model.step(None)  # builds it
    model.run(iters=300)


def _feedback_step_mode():
    reservoir, readout = unstable(), dr.Ridge(1e-6, name="readout")
    model = (reservoir >> readout) & (reservoir << readout)
    with C.finite_check(False):  # a readout fitted on a finite stretch
        model.fit(SERIES[:20], SERIES[1:21])
    model.run(SERIES, reset=True)


PATHS = {
    "run": (_run, FIRST_BAD),
    "states": (_states, FIRST_BAD),
    "states nodes=": (_states_inputs, FIRST_BAD),
    "step": (_step, None),
    "forward numpy": (_forward_numpy, FIRST_BAD),
    "forward torch": (_forward_torch, FIRST_BAD),
    "fit closed form": (_fit_closed_form, FIRST_BAD),
    "fit in chunks": (_fit_in_chunks, FIRST_BAD),
    "fit online": (_fit_online, None),
    "generate": (_generate, None),
    "run(iters)": (_free_run, None),
    "feedback (step mode)": (_feedback_step_mode, None),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_non_finite_outputs_raise_a_data_error_naming_node_and_step(path):
    action, step = PATHS[path]
    with pytest.raises(DataError) as caught:
        action()
    message = str(caught.value)
    assert "Node '" in message and "non-finite value" in message
    assert "finite_check(False)" in message  # the opt-out is named
    if step is not None:
        assert "Node 'res'" in message
        assert f"at time step {step} (counting from 0)" in message
    else:  # a loop over steps: the node of the step where it happened
        assert "Node 'res'" in message or "Node 'readout'" in message
        assert "at the step just computed" in message or "at time step" in message
    assert_clean(caught.value)


def test_the_message_names_the_value_and_the_unbounded_activation():
    with pytest.raises(DataError, match=r"non-finite value \((-?inf|nan)\) at time step 59 "
                                        r"\(counting from 0\): \d+ of its 100 outputs are NaN "
                                        r"or inf there\. With the unbounded activation "
                                        r"'identity'.*sr=5\.0"):
        unstable().run(SERIES)


def test_a_batch_names_the_first_series_that_diverged():
    batch = np.stack([np.zeros_like(SERIES), np.zeros_like(SERIES), SERIES])
    with pytest.raises(DataError, match=r"at time step 59 \(counting from 0\), series 2 "
                                        r"\(of 3\)"):
        unstable().run(batch)


def test_the_earliest_step_wins_over_the_execution_order():
    # the second reservoir (driven 1e30 times harder) overflows long before the first
    dense = dict(activation="identity", rc_connectivity=1.0, input_connectivity=1.0)
    first = dr.Reservoir(10, sr=5, seed=0, name="first", **dense)
    second = dr.Reservoir(10, sr=0.5, input_scaling=1e30, seed=1, name="second", **dense)
    with C.finite_check(False):
        states = (first >> second).states(SERIES)
    steps = {name: int(np.argmax(~np.isfinite(v).all(axis=1))) for name, v in states.items()}
    assert steps["second"] < steps["first"]
    with pytest.raises(DataError, match=rf"Node 'second' .* at time step {steps['second']} "
                                        rf"\(counting from 0\).*lower input_scaling \(1e\+30\)"):
        (first >> second).run(SERIES, reset=True)


def test_a_failed_step_keeps_the_previous_state():
    reservoir = unstable()
    last = None
    with pytest.raises(DataError):
        for x in SERIES:
            last = reservoir.step(x)
    np.testing.assert_array_equal(reservoir.reset(), last)


def test_finite_runs_are_unchanged():
    stable = dr.Reservoir(100, sr=0.9, seed=0)
    with C.finite_check(False):
        expected = stable.run(SERIES, reset=True)
    np.testing.assert_array_equal(stable.run(SERIES, reset=True), expected)


# ------------------------------------------------------------------- opt-out
def test_finite_check_false_returns_the_non_finite_values():
    with C.finite_check(False):
        states = unstable().run(SERIES)
    bad = ~np.isfinite(states).all(axis=1)
    assert bad.any() and int(np.argmax(bad)) == FIRST_BAD
    assert C.finite_check_enabled()  # back on after the block


def test_set_finite_check_is_process_wide_and_returns_the_previous_setting():
    previous = C.set_finite_check(False)
    try:
        assert previous is True
        reservoir = unstable()
        for x in SERIES:
            reservoir.step(x)
        assert not np.isfinite(reservoir.run(SERIES)).all()
    finally:
        C.set_finite_check(previous)
    with pytest.raises(DataError):
        unstable().run(SERIES)


def test_set_finite_check_refuses_a_non_bool():
    with pytest.raises(ParameterError, match=r"'enabled' parameter of set_finite_check must "
                                             r"be True or False\. Got 0"):
        C.set_finite_check(0)


def test_the_check_restores_its_setting_after_an_error():
    with pytest.raises(RuntimeError), C.finite_check(False):
        raise RuntimeError("boom")
    assert C.finite_check_enabled()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sr=st.floats(2.0, 12.0), seed=st.integers(0, 2**16), units=st.integers(5, 40))
def test_the_reported_step_is_the_first_non_finite_one(sr, seed, units):
    node = dr.Reservoir(units, sr=sr, activation="identity", seed=seed, rc_connectivity=1.0,
                        input_scaling=1e3, name="res")
    data = np.ones((400, 1))
    with C.finite_check(False):
        states = node.run(data, reset=True)
    bad = ~np.isfinite(states).all(axis=1)
    if not bad.any():
        node.run(data, reset=True)  # finite all along: no error
        return
    with pytest.raises(DataError, match=rf"Node 'res' .* at time step "
                                        rf"{int(np.argmax(bad))} \(counting"):
        node.run(data, reset=True)


# ---------------------------------------------------------------- ridge solve
@pytest.mark.parametrize("named", [True, False])
@pytest.mark.parametrize("bad", [float("inf"), float("nan")], ids=["inf", "nan"])
def test_ridge_solve_refuses_non_finite_statistics_before_lapack(named, bad):
    xtx = torch.eye(3, dtype=F64)
    xtx[0, 1] = bad
    who = "Ridge 'readout'" if named else "ridge_solve"
    options = {"name": who} if named else {}
    with pytest.raises(DataError, match=rf"{who} cannot solve its ridge regression: "
                                        rf"XᵀX holds 1 NaN or inf entries \(of 9\)"
                       ) as caught:
        F.ridge_solve(xtx, torch.ones(3, 1, dtype=F64), torch.ones(3, dtype=F64),
                      torch.ones(1, dtype=F64), 10, 1e-6, True, **options)
    assert_clean(caught.value)


def test_fit_refuses_overflowing_statistics_naming_the_node():
    # finite float64 states of 1e200 whose squares overflow the XᵀX sums
    model = (dr.Reservoir(20, sr=0.5, activation="identity", seed=0, dtype=F64)
             >> dr.Ridge(1e-6, name="readout", dtype=F64))
    with pytest.raises(DataError, match=r"Ridge 'readout' cannot be fitted: its statistic "
                                        r"'\w+' holds \d+ NaN or inf entries") as caught:
        model.fit(SERIES[:-1] * 1e200, SERIES[1:])
    assert_clean(caught.value)


# ------------------------------------------------------------ explicit weights
def _with(bad, shape, where):
    array = np.ones(shape)
    array[where] = bad
    return array


_ARRAYS = [("W", (10, 10), (2, 3)), ("Win", (10, 2), (4, 1)), ("bias", (10,), (7,))]


@pytest.mark.parametrize(("kind", "label", "shape", "where"),
                         [(kind, *array) for kind in ("numpy", "torch", "scipy")
                          for array in _ARRAYS
                          if not (kind == "scipy" and len(array[1]) == 1)])  # no sparse vector
@pytest.mark.parametrize(("bad", "counts"), [(np.nan, "1 NaN and 0 inf"),
                                             (np.inf, "0 NaN and 1 inf"),
                                             (-np.inf, "0 NaN and 1 inf")])
def test_explicit_arrays_with_nan_or_inf_are_refused(kind, label, shape, where, bad, counts):
    array = _with(bad, shape, where)
    if kind == "torch":
        array = torch.as_tensor(array)
    elif kind == "scipy":
        array = scipy.sparse.csr_matrix(array)
    arguments = {"units": 10, label: array}
    with pytest.raises(ParameterError, match=rf"The '{label}' parameter of Reservoir must hold "
                                             rf"finite values only\. Got an array of shape "
                                             rf"{re.escape(str(shape))} with {counts} entries "
                                             rf"\(of {int(np.prod(shape))}\), the first at index "
                                             rf"{re.escape(str(where))}\.") as caught:
        dr.Reservoir(**arguments)
    assert_clean(caught.value)


@pytest.mark.parametrize("make", [lambda: np.eye(4, dtype=np.complex128),
                                  lambda: torch.eye(4, dtype=torch.complex64)],
                         ids=["numpy", "torch"])
def test_a_complex_explicit_W_is_refused(make):
    with pytest.raises(ParameterError, match=r"The 'W' parameter of Reservoir must be an array "
                                             r"of real numbers\. Got an array of shape \(4, 4\) "
                                             r"and dtype (torch\.)?complex"):
        dr.Reservoir(W=make(), sr=None)


def test_a_complex_dtype_is_refused_naming_it():
    with pytest.raises(ParameterError, match=r"'dtype' parameter of Reservoir must be a "
                                             r"floating dtype.*Got <class 'numpy\.complex64'>"):
        dr.Reservoir(8, dtype=np.complex64)


def test_an_sr_beyond_the_dtype_is_refused_at_construction():
    with pytest.raises(ParameterError, match=r"'sr' parameter of Reservoir must be at most the "
                                             r"largest torch\.float32 \(3\.4e\+38\).*Got "
                                             r"1e\+300") as caught:
        dr.Reservoir(20, sr=1e300, seed=0)
    assert_clean(caught.value)
    states = dr.Reservoir(20, sr=1e300, seed=0, dtype=F64).run(SERIES)  # tanh: bounded
    assert np.isfinite(states).all()


@pytest.mark.parametrize(("arguments", "match"), [
    ({"input_scaling": 1e300}, r"input matrix Win has \d+ non-finite entries \(NaN or inf\) "
                               r"of 20 in torch\.float32.*Lower input_scaling"),
    ({"bias": "normal", "bias_scaling": 1e300}, r"bias has 20 non-finite entries.*Lower "
                                                r"bias_scaling"),
    ({"sr": 3e38, "scaling": "fan_in"}, r"recurrent matrix W has \d+ non-finite entries.*"
                                        r"W was scaled by .* to sr=3e\+38: lower sr"),
])
def test_built_weights_that_overflow_the_dtype_are_refused(arguments, match):
    node = dr.Reservoir(20, seed=0, name="res", **arguments)
    with pytest.raises(ParameterError, match=r"Reservoir 'res' cannot be built: its " + match):
        node.run(SERIES)


def test_a_scaffold_drawn_beyond_the_dtype_is_refused():
    layer = dr.Scaffold(8, family=dr.families.Normal(scale=1e300), seed=0, name="layer")
    with pytest.raises(ParameterError, match=r"Scaffold 'layer' cannot be built: its frozen "
                                             r"scaffold W_seed has 32 non-finite entries"):
        layer.run(np.ones((3, 4)))


# ---------------------------------------------------------------- leak rates
@pytest.mark.parametrize(("lr", "dtype", "shown"), [(1e-12, torch.float32, "1e-12"),
                                                    (5e-324, torch.float32, "5e-324"),
                                                    (1e-9, torch.float32, "1e-09"),
                                                    (5e-324, F64, "5e-324"),
                                                    (1e-17, F64, "1e-17")])
def test_leak_rates_with_no_effect_are_refused(lr, dtype, shown):
    with pytest.raises(ParameterError, match=rf"'lr' parameter of Reservoir must be large "
                                             rf"enough for 1 - lr to differ from 1 in "
                                             rf"{dtype}.*Got {shown}") as caught:
        dr.Reservoir(20, lr=lr, seed=0, dtype=dtype)
    assert_clean(caught.value)


def test_a_per_unit_leak_rate_with_no_effect_is_refused():
    with pytest.raises(ParameterError, match=r"Got lr\[1\] = 1e-12"):
        dr.Reservoir(3, lr=[0.5, 1e-12, 0.3], seed=0)


@pytest.mark.parametrize(("lr", "dtype"), [(1e-5, torch.float32), (1e-12, F64),
                                           ([0.5, 1e-6, 0.3], torch.float32)])
def test_tiny_leak_rates_warn(lr, dtype):
    with pytest.warns(R.TinyLeakWarning, match=r"'lr' parameter of Reservoir has a leak rate "
                                               r"of 1e-\d+, below 0\.0001"):
        dr.Reservoir(3, lr=lr, seed=0, dtype=dtype)
    assert issubclass(R.TinyLeakWarning, UserWarning)


def test_a_leak_rate_checked_again_after_a_conversion():
    with pytest.warns(R.TinyLeakWarning):
        node = dr.Reservoir(20, lr=1e-12, seed=0, dtype=F64)
    node.float()
    with pytest.raises(ParameterError, match=r"differ from 1 in torch\.float32.*Got 1e-12"):
        node.run(SERIES)


@settings(max_examples=60)
@given(lr=st.one_of(st.floats(5e-324, 1.0), st.sampled_from([1e-4, 1.0, 2.0**-25])))
def test_leak_rates_are_silent_warned_or_refused_by_the_dtype(lr):
    inert = float(np.float32(1.0 - lr)) == 1.0
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if inert:
            with pytest.raises(ParameterError, match="'lr' parameter"):
                dr.Reservoir(5, lr=lr, seed=0)
        else:
            dr.Reservoir(5, lr=lr, seed=0)
    tiny = [w for w in seen if issubclass(w.category, getattr(R, "TinyLeakWarning", ()))]
    assert len(tiny) == (0 if inert or lr >= 1e-4 else 1)  # R.TINY_LEAK
    assert len(seen) == len(tiny)


# -------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "float16", "half",
                                   "bfloat16", np.float16])
@pytest.mark.parametrize("make", [lambda d: dr.Reservoir(10, seed=0, dtype=d),
                                  lambda d: dr.Ridge(dtype=d),
                                  lambda d: dr.Scaffold(8, dtype=d)],
                         ids=["Reservoir", "Ridge", "Scaffold"])
def test_half_precision_is_refused_at_construction(make, dtype):
    with pytest.raises(ParameterError, match=r"The 'dtype' parameter of \w+ must be "
                                             r"torch\.float32 or torch\.float64\. Got "
                                             r"torch\.(b?float16)") as caught:
        make(dtype)
    assert_clean(caught.value)


@pytest.mark.parametrize("convert", [lambda m: m.half(), lambda m: m.to(torch.bfloat16),
                                     lambda m: m.to(torch.float16)],
                         ids=["half", "to bfloat16", "to float16"])
@pytest.mark.parametrize("use", ["run", "step", "fit", "before build"])
def test_half_precision_after_a_conversion_is_refused_at_the_first_run(convert, use):
    reservoir = dr.Reservoir(10, seed=0, rc_connectivity=0.2, name="res")
    model = reservoir >> dr.Ridge(1e-6, name="readout")
    if use != "before build":
        model.fit(SERIES[:-1], SERIES[1:])
    convert(model)
    action = {"run": lambda: model.run(SERIES), "step": lambda: model.step(SERIES[0]),
              "fit": lambda: model.fit(SERIES[:-1], SERIES[1:]),
              "before build": lambda: model.fit(SERIES[:-1], SERIES[1:])}[use]
    with pytest.raises(ParameterError, match=r"Node '(res|readout)' \(\w+\) has dtype "
                                             r"torch\.b?float16.*torch\.float32 or "
                                             r"torch\.float64.*model\.to\(torch\.float32\)"
                       ) as caught:
        action()
    assert_clean(caught.value)
    model.float()
    model.fit(SERIES[:-1], SERIES[1:])
    assert np.isfinite(model.run(SERIES)).all()  # back to float32, it runs
