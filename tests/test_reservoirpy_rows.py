"""Every row of the table in docs/reservoirpy.md is tested: the table below maps each row
to the tests that check it, a meta test fails on a row without a test (or a named test
that does not exist), and the rows not checked elsewhere are checked here."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.errors import DataError, GraphError, ParameterError

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = "tests/test_reservoirpy_rows.py"
TRANSLATED = "tests/test_reservoirpy_translated.py"
HABITS = "tests/test_reservoirpy_habits.py"
PARITY = "tests/test_parity_reservoirpy.py"
CONTRACT = "tests/test_one_contract.py"
ONLINE = "tests/test_online_learning.py"
GENERATION = "tests/test_generation.py"

#: Row (the start of its first cell, or of its second for rows with no reservoirpy
#: counterpart) → the tests that check it, as "file::function".
ROW_TESTS: dict[str, list[str]] = {
    "`from reservoirpy.nodes import Reservoir, Ridge, Input`": [f"{TRANSLATED}::test_input"],
    "`Reservoir(units, lr, sr,": [f"{TRANSLATED}::test_reservoir_init",
                                  f"{HABITS}::test_units_like_reservoirpy"],
    "`Reservoir(100, 0.3, 0.9)`": [f"{HABITS}::test_lr_and_sr_positional_in_reservoirpy_order"],
    "`units=None` with an explicit `W`": [f"{HABITS}::test_units_default_to_explicit_W_rows"],
    "`bias=0.0` or any real number": [f"{HABITS}::test_float_bias_matches_reservoirpy"],
    "a scipy.sparse `W` or `Win`": [
        f"{HABITS}::test_sparse_W_and_Win_from_reservoirpy_match_reservoirpy"],
    "`W=mat_gen.normal`": [f"{HABITS}::test_initialiser_function_is_refused"],
    "`lr` an array of shape": [f"{HABITS}::test_array_lr_matches_reservoirpy"],
    "`activation=`": [f"{HABITS}::test_callable_activation_matches_reservoirpy"],
    "`input_scaling` a sequence": [
        f"{HABITS}::test_input_scaling_sequence_means_what_reservoirpy_means"],
    "`Ridge(ridge, fit_bias)`": [f"{PARITY}::test_esn_ridge_matches_reservoirpy"],
    "`reservoir >> readout`, `[r1, r2] >> readout`": [f"{TRANSLATED}::test_node_link",
                                                      f"{TRANSLATED}::test_model_merge"],
    "`[src >> res, src] >> readout`": [
        f"{CONTRACT}::test_a_list_on_the_left_keeps_each_elements_outputs_in_order"],
    "`reservoir << readout` (feedback)": [f"{TRANSLATED}::test_esn_feedback"],
    "`model.fit(X, Y, warmup=...)`": [f"{TRANSLATED}::test_offline_fit_simple_model"],
    "NaN in `Y`": [f"{CONTRACT}::test_nan_targets_leave_their_steps_out_on_every_path"],
    "`model.fit(train).run(test)`": [f"{CONTRACT}::test_a_new_batch_size_after_fit_starts_fresh"],
    "`model.run(X)`, `model.reset()`": [
        f"{PARITY}::test_state_carries_over_between_runs_like_reservoirpy"],
    "`model.step(x)`, `node.step(x)`": [
        f"{CONTRACT}::test_model_step_with_a_dict_for_several_inputs",
        f"{CONTRACT}::test_model_step_none_runs_a_closed_loop"],
    "`node(x)` (one step, state kept)": [f"{CONTRACT}::test_calling_a_node_on_data"],
    "`dtype=np.float64`": [f"{CONTRACT}::test_dtype_accepts_torch_numpy_and_names"],
    "`set_seed(s)` (global)": [f"{CONTRACT}::test_unseeded_nodes_follow_the_documented_rule"],
    "`RLS(alpha, forgetting,": [f"{ONLINE}::test_fit_matches_reservoirpy_over_2000_steps",
                                f"{ONLINE}::test_bad_hyperparameters_are_refused"],
    "`LMS(learning_rate,": [f"{ONLINE}::test_partial_fit_predictions_match_reservoirpy"],
    "`rls.Wout` (F, O)": [f"{ONLINE}::test_rls_p_stays_exactly_symmetric",
                          f"{TRANSLATED}::test_rls_train"],
    "`model.fit(X, Y)` with an online node": [
        f"{ONLINE}::test_teacher_forcing_feeds_the_target_and_fit_restarts"],
    "`model.partial_fit(X, Y)`": [
        f"{ONLINE}::test_force_learning_feeds_the_readouts_own_prediction_like_reservoirpy",
        f"{ONLINE}::test_partial_fit_in_two_chunks_equals_one_chunk"],
    "several series fitted by an online node": [
        f"{ONLINE}::test_a_batch_is_independent_learners_each_equal_to_its_own_fit",
        f"{ONLINE}::test_shared_learner_runs_the_series_in_turn_like_reservoirpy"],
    "`model.run(iters=n)`": [f"{TRANSLATED}::test_esn_freerunning",
                             f"{GENERATION}::test_run_iters_free_runs_a_closed_loop_as_its_update_rule_says"],
    "`y = model.run(X_warm)[-1]`": [
        f"{GENERATION}::test_generate_matches_reservoirpys_hand_written_loop"],
    "`model.reset()` returns": [f"{GENERATION}::test_reset_returns_the_previous_state"],
    "`Ridge(ridge, Wout=, bias=,": [f"{HERE}::test_ridge_explicit_wout_runs_saves_and_is_replaced",
                                    f"{TRANSLATED}::test_ridge_init"],
    "`Output(name=...)`": [f"{TRANSLATED}::test_output", f"{TRANSLATED}::test_model_return_states"],
    "`ESN(reservoir, readout,": [f"{TRANSLATED}::test_esn_argument_collision",
                                 f"{HERE}::test_esn_options_and_save_load"],
    "`NVAR(delay, order, strides)`": ["tests/test_nvar.py::test_features_match_reservoirpy",
                                      "tests/test_nvar.py::test_reset_empties_the_store"],
    "`IPReservoir(units, sr, lr,": [
        "tests/test_ip_es2n.py::test_ip_adaptation_and_states_match_reservoirpy",
        "tests/test_ip_es2n.py::test_unsupervised_phase_then_ridge"],
    "`ES2N(units, proximity, sr,": ["tests/test_ip_es2n.py::test_es2n_states_match_reservoirpy"],
    "`a >> 2 >> b`": [f"{TRANSLATED}::test_delayed_connections", f"{HERE}::test_delay_forms"],
    "connecting two built nodes": [f"{TRANSLATED}::test_node_link"],
    "`\"text\" >> node`": [f"{HERE}::test_bad_operands_are_graph_errors"],
    "`step(None)` on a model": [f"{HERE}::test_step_none_needs_no_external_input"],
    "several unnamed output nodes": [f"{TRANSLATED}::test_multi_output"],
    "`bias` of shape `(units, 1)`": [f"{HERE}::test_bias_with_a_second_axis_is_refused"],
    "`reservoirpy.datasets.mackey_glass`": [
        f"{GENERATION}::test_generate_matches_reservoirpys_hand_written_loop"],
    "`reservoirpy.observables.spectral_radius`": [
        "tests/analysis/test_spectra.py::test_dense_radius_and_norm_match_lapack"],
    "`reservoirpy.observables.nrmse`": [f"{HERE}::test_nrmse_and_rsquare_one_liners"],
    "`reservoirpy.observables.memory_capacity": [
        "tests/analysis/test_memory.py::test_delay_line_remembers_exactly_n_steps"],
    "`reservoirpy.observables.effective_spectral_radius": [
        "tests/analysis/test_spectra.py::test_torch_input_and_leaky_radius"],
    "`dr.analysis.check_esp`": [
        "tests/analysis/test_esp.py::test_counterexample_has_two_attracting_fixed_points"],
    "`Scaffold`, `LoRAReadout`": [
        f"{CONTRACT}::test_the_design_card_line_trains_on_one_series_with_per_step_targets"],
}


def _rows() -> list[str]:
    text = (ROOT / "docs" / "reservoirpy.md").read_text(encoding="utf-8")
    table = text.split("## What maps to what", 1)[1].split("\n\n", 2)[1]
    keys = []
    for line in table.splitlines():
        if not line.startswith("|") or line.startswith("|---") or "| reservoirpy 0.4 |" in line:
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        keys.append(cells[1] if cells[0] == "—" else cells[0])
    return keys


def _defined_tests(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test")}


def test_every_row_of_the_table_has_tests_and_they_exist():
    rows = _rows()
    assert len(rows) >= 50
    missing = [row for row in rows if not any(row.startswith(key) for key in ROW_TESTS)]
    assert not missing, f"rows of docs/reservoirpy.md without tests: {missing}"
    for key, tests in ROW_TESTS.items():
        assert tests, key
        for test in tests:
            path, name = test.split("::")
            assert name in _defined_tests(path), f"{test} (row {key!r}) does not exist"


# ------------------------------------------------------- rows checked only here
def test_ridge_explicit_wout_runs_saves_and_is_replaced(tmp_path):
    wout, bias = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), np.array([0.5, -0.5])
    ridge = dr.Ridge(Wout=wout, bias=bias, dtype=torch.float64)
    x = np.random.default_rng(0).normal(size=(20, 3))
    assert np.allclose(ridge.run(x), x @ wout + bias)
    model = dr.Input() >> ridge
    assert np.array_equal(dr.load(model.save(tmp_path / "r")).run(x), model.run(x))
    model.fit(x, x[:, :2])
    assert np.allclose(ridge.Wout_.numpy().T, [[1, 0], [0, 1], [0, 0]], atol=1e-8)
    assert dr.Ridge(output_dim=3).units == 3 and dr.Ridge(units=3).output_dim == 3
    with pytest.raises(ParameterError, match="output sizes given to Ridge disagree"):
        dr.Ridge(Wout=wout, output_dim=4)
    with pytest.raises(ParameterError, match="'Wout' parameter of Ridge has shape"):
        dr.Ridge(Wout=wout, input_dim=5)
    with pytest.raises(DataError, match="must have 7 features"):
        dr.Ridge(units=7).fit(x, np.ones((20, 8)))


def test_esn_options_and_save_load(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2))
    esn = dr.ESN(units=40, lr=0.5, ridge=1e-6, seed=3, feedback=True, input_to_readout=True,
                 return_reservoir_activity=True, dtype=torch.float64)
    assert esn.reservoir.name == "Reservoir-0" and esn.readout.name == "readout"
    out = esn.fit(x, x[:, :1], warmup=10).run(x, reset=True)
    assert set(out) == {"readout", "reservoir"} and out["reservoir"].shape == (200, 40)
    assert esn.readout.input_dim == 42 and esn.reservoir.input_dim == 3
    loaded = dr.load(esn.save(tmp_path / "esn"))
    assert type(loaded) is dr.Model
    assert np.array_equal(loaded.run(x)["readout"], out["readout"])
    given = dr.ESN(reservoir=dr.Reservoir(10, seed=1), readout=dr.RLS(1e-3))
    assert isinstance(given.readout, dr.RLS)
    with pytest.raises(ParameterError, match="'units_' parameter of ESN is neither"):
        dr.ESN(units_=10)
    with pytest.raises(ParameterError, match="'feedback' parameter of ESN must be a bool"):
        dr.ESN(feedback="yes")
    with pytest.raises(ParameterError, match="'reservoir' parameter of ESN must be a node"):
        dr.ESN(reservoir="big")


def test_delay_forms():
    a, b, c = dr.Input(name="a"), dr.Reservoir(5, name="b", seed=1), dr.Ridge(name="c")
    assert [(e.source, e.target, e.delay) for e in (a >> 2 >> b).edges] == [("a", "b", 2)]
    assert [(e.source, e.target, e.delay) for e in (a >> (2 >> b)).edges] == [("a", "b", 2)]
    chained = a >> (3 >> b >> c)
    assert {(e.source, e.target, e.delay) for e in chained.edges} == {("a", "b", 3),
                                                                     ("b", "c", 0)}
    with pytest.raises(GraphError, match="A delay must be an int >= 0. Got -1"):
        a >> (-1 >> b)
    with pytest.raises(GraphError, match="two delays for one connection"):
        (a >> 1) >> (2 >> b)
    x = np.arange(6.0)[:, None]
    delayed = (dr.Input(name="u") >> 2 >> dr.Output(name="out")).run(x)
    assert np.array_equal(delayed[:, 0], [0, 0, 0, 1, 2, 3])


def test_bad_operands_are_graph_errors():
    node = dr.Reservoir(5, seed=1)
    for bad in ("text", 2.5, None, [], {"a": 1}):
        with pytest.raises(GraphError, match="operand"):
            bad >> node
    with pytest.raises(GraphError) as caught:
        node >> "text"
    assert isinstance(caught.value, ValueError) and "'text'" in str(caught.value)


def test_step_none_needs_no_external_input():
    model = dr.Reservoir(10, seed=1) >> dr.Ridge(Wout=np.ones((10, 1)))
    model.step(np.ones(2))
    with pytest.raises(DataError, match=r"input node\(s\) \['Reservoir-0'\] take external data"):
        model.step(None)
    driven = dr.Reservoir(10, seed=1, bias="normal", bias_scaling=1.0, dtype=torch.float64)
    driven.run(np.zeros((3, 0)))                         # built on zero features
    driven.reset()
    steps = np.array([driven.step(None) for _ in range(5)])
    driven.reset()
    assert np.array_equal(steps, driven.run(np.zeros((5, 0))))


def test_bias_with_a_second_axis_is_refused():
    for shape in ((10, 1), (10, 2)):
        with pytest.raises(ParameterError, match="bias"):
            dr.Reservoir(10, bias=np.ones(shape), seed=1).run(np.ones((3, 1)))


def test_nrmse_and_rsquare_one_liners():
    observables = pytest.importorskip("reservoirpy.observables")
    rng = np.random.default_rng(2)
    y, y_hat = rng.normal(size=(100, 1)), rng.normal(size=(100, 1))
    nrmse = np.sqrt(np.mean((y - y_hat) ** 2)) / np.ptp(y)
    rsquare = 1 - np.sum((y - y_hat) ** 2) / np.sum((y - y.mean()) ** 2)
    assert np.isclose(nrmse, observables.nrmse(y, y_hat))
    assert np.isclose(rsquare, observables.rsquare(y, y_hat))
