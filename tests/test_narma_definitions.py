"""The two NARMA-10 update rules of ``deepreservoir.datasets``.

``definition="textbook"`` (the default) is
``y(t+1) = 0.3 y(t) + 0.05 y(t) Σ_{i=0}^{9} y(t−i) + 1.5 u(t−9) u(t) + 0.1``;
``definition="reservoirpy"`` must reproduce ``reservoirpy.datasets.narma(order=10)``
with the NARMA-10 coefficients (``a1=0.3, a2=0.05, b=1.5, c=0.1``) on the same
input, compared here against reservoirpy's own function (a dependency).
"""

from __future__ import annotations

import numpy as np
import pytest
from reservoirpy.datasets import narma as rpy_narma

import deepreservoir as dr
from deepreservoir.datasets import NARMA10_DEFINITIONS, narma10, narma10_response

COEFFS = {"a1": 0.3, "a2": 0.05, "b": 1.5, "c": 0.1}


def _textbook_by_hand(u: np.ndarray) -> np.ndarray:
    """y(t+1) for u(t), written out term by term (independent of the library's loop)."""
    y = [0.0] * (len(u) + 1)
    for t in range(9, len(u)):
        window = sum(y[t - i] for i in range(10))  # y(t), y(t-1), ..., y(t-9)
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * window + 1.5 * u[t - 9] * u[t] + 0.1
    return np.array(y[1:])[:, None]


@pytest.mark.parametrize("seed, length", [(0, 11), (1, 300), (7, 2000), (123, 5000)])
def test_reservoirpy_definition_matches_reservoirpy_narma(seed, length):
    u = np.random.default_rng(seed).uniform(0.0, 0.5, size=(length, 1))
    u_rpy, y_rpy = rpy_narma(length - 10, order=10, u=u.copy(), **COEFFS)
    assert np.array_equal(u_rpy, u)
    ours = narma10_response(u, definition="reservoirpy")
    assert ours.shape == (length, 1)
    # reservoirpy returns y(10), ..., y(length - 1); ours[t] is y(t + 1)
    np.testing.assert_allclose(ours[9: length - 1], y_rpy, rtol=0, atol=1e-12)


def test_reservoirpy_definition_matches_reservoirpy_own_draws():
    # reservoirpy draws u itself from the seed; feed that u to ours
    u, y_rpy = rpy_narma(1500, order=10, seed=42, **COEFFS)
    ours = narma10_response(u[:, 0], definition="reservoirpy")  # a (T,) input also works
    np.testing.assert_allclose(ours[9:-1], y_rpy, rtol=0, atol=1e-12)
    assert np.ptp(y_rpy) > 0.3  # a real, non-trivial series was compared


@pytest.mark.parametrize("seed, steps, transient", [(0, 500, 200), (5, 1000, 10), (11, 64, 37)])
def test_narma10_reservoirpy_definition_matches_reservoirpy_on_the_same_u(seed, steps, transient):
    u, y = narma10(steps, seed, transient=transient, definition="reservoirpy")
    # the documented draw: rng.uniform(0, 0.5, steps + transient + 1), whatever the definition
    full = np.random.default_rng(seed).uniform(0.0, 0.5, size=(steps + transient + 1, 1))
    assert np.array_equal(u, full[transient: transient + steps])
    _, y_rpy = rpy_narma(steps + transient + 1 - 10, order=10, u=full, **COEFFS)
    # y[j] is y(transient + 1 + j); reservoirpy's y[k] is y(10 + k)
    np.testing.assert_allclose(y, y_rpy[transient + 1 - 10: transient + 1 - 10 + steps],
                               rtol=0, atol=1e-12)


def test_textbook_definition_is_the_textbook_rule_and_not_reservoirpys():
    u = np.random.default_rng(3).uniform(0.0, 0.5, size=(800, 1))
    textbook = narma10_response(u)
    np.testing.assert_allclose(textbook, _textbook_by_hand(u[:, 0]), rtol=1e-13, atol=0)
    _, y_rpy = rpy_narma(790, order=10, u=u, **COEFFS)
    assert np.abs(textbook[9:-1] - y_rpy).max() > 0.05


def test_the_two_definitions_differ_on_the_same_inputs():
    for seed in range(3):
        u_t, y_t = narma10(2000, seed)
        u_r, y_r = narma10(2000, seed, definition="reservoirpy")
        assert np.array_equal(u_t, u_r)  # same input draws
        gap = np.abs(y_t - y_r)
        assert gap.max() > 0.1  # not a rounding difference
        assert np.mean(gap > 1e-3) > 0.5  # and not at a few steps only
        # each still follows its own rule inside the window
        t = np.arange(20, 2000)
        prev_t, prev_r = y_t[t - 1, 0], y_r[t - 1, 0]
        sum_t = sum(y_t[t - 1 - i, 0] for i in range(10))  # y(t-9..t) at target y(t+1)
        sum_r = sum(y_r[t - 2 - i, 0] for i in range(10))  # y(t-10..t-1)
        np.testing.assert_allclose(
            y_t[t, 0], 0.3 * prev_t + 0.05 * prev_t * sum_t + 1.5 * u_t[t - 9, 0] * u_t[t, 0] + 0.1,
            rtol=1e-12)
        np.testing.assert_allclose(
            y_r[t, 0],
            0.3 * prev_r + 0.05 * prev_r * sum_r + 1.5 * u_r[t - 10, 0] * u_r[t, 0] + 0.1,
            rtol=1e-12)


def test_textbook_is_the_default_and_is_pinned():
    u, y = narma10(300, 0)
    u2, y2 = narma10(300, 0, definition="textbook")
    assert np.array_equal(u, u2) and np.array_equal(y, y2)
    # the default series did not change when the definitions were added
    rng = np.random.default_rng(0)
    full = rng.uniform(0.0, 0.5, size=300 + 200 + 1)
    assert np.array_equal(u[:, 0], full[200:500])
    np.testing.assert_array_equal(y, narma10_response(full[:500])[200:500])
    np.testing.assert_allclose(y, _textbook_by_hand(full[:500])[200:500], rtol=1e-13)


def test_names_of_the_definitions():
    assert NARMA10_DEFINITIONS == ("textbook", "reservoirpy")
    assert dr.datasets.narma10 is narma10


@pytest.mark.parametrize("definition", ["Textbook", "reservoir", "", None, 10, ("textbook",)])
def test_bad_definition_is_a_parameter_error(definition):
    expected = "one of 'textbook', 'reservoirpy'"
    with pytest.raises(dr.ParameterError) as info:
        narma10(10, definition=definition)
    message = str(info.value)
    assert "'definition' parameter of narma10" in message
    assert expected in message and f"Got {definition!r}" in message
    with pytest.raises(dr.ParameterError, match="'definition' parameter of narma10_response"):
        narma10_response(np.zeros(20), definition=definition)


@pytest.mark.parametrize("u, shown", [
    (np.zeros((20, 2)), "(20, 2)"),
    (np.zeros((2, 3, 1)), "(2, 3, 1)"),
    (np.zeros(0), "(0,)"),
    (np.zeros((0, 1)), "(0, 1)"),
    (5.0, "5.0"),
    ("abc", "'abc'"),
])
def test_bad_input_is_a_data_error(u, shown):
    with pytest.raises(dr.DataError) as info:
        narma10_response(u)
    message = str(info.value)
    assert "'u' parameter of narma10_response" in message and shown in message


def test_non_finite_input_is_a_data_error():
    u = np.full(30, 0.2)
    u[4] = np.nan
    with pytest.raises(dr.DataError, match="'u' parameter of narma10_response must be finite"):
        narma10_response(u)


def test_existing_argument_checks_still_apply_with_a_definition():
    with pytest.raises(dr.ParameterError, match="'transient' parameter of narma10.*Got 9"):
        narma10(10, transient=9, definition="reservoirpy")
    with pytest.raises(dr.ParameterError, match="'steps' parameter of narma10.*Got 0"):
        narma10(0, definition="reservoirpy")


@pytest.mark.parametrize("seed, step", [(75, 2183), (83, 986)])
def test_a_diverging_system_is_refused_naming_the_step(seed, step):
    # the textbook system is unstable for some input draws: never return inf/NaN silently
    with pytest.raises(dr.DataError, match=f"non-finite at step {step} "):
        narma10(2300, seed)
    u = np.random.default_rng(seed).uniform(0.0, 0.5, 2501)
    with pytest.raises(dr.DataError, match="diverged in narma10_response"):
        narma10_response(u[:2500])
    assert np.isfinite(narma10(700, seed)[1]).all()  # its first 900 steps are fine
