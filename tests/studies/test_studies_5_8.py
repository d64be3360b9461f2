"""Studies 5–8 (analysis/multitask, esp_beta, intrinsic_dimension, time_axis), quick versions.

Each study runs with ``quick=True`` into a temporary folder through the same
runner as ``deepreservoir reproduce`` (``run_study`` on the repository's
``analysis/`` folder), on one torch thread; the tests check the contract
(files, Dataset structure, summary), the honesty of the summaries (a verdict
table, no zero spread from one seed, no outside references, a run line), the
user-data option, and the qualitative claims that hold on the quick data.
"""

import importlib.util
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from deepreservoir.errors import DataError, ParameterError
from deepreservoir.studies import run_study

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
STUDIES = ["multitask", "esp_beta", "intrinsic_dimension", "time_axis"]
WITH_DATA = ["multitask", "esp_beta", "intrinsic_dimension"]
VERDICTS = ("agrees", "dataset effect", "setup effect", "real disagreement")


def load_study(name):
    spec = importlib.util.spec_from_file_location(f"study_{name}", ANALYSIS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread, as ``deepreservoir reproduce`` uses (torch's default of one per
    core made these quick runs 10× slower on a shared machine); restored afterwards."""
    import torch

    from deepreservoir.threads import use_threads

    previous = torch.get_num_threads()
    use_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def results(tmp_path_factory, one_thread):
    """Every quick study, run once for the module (about a minute of CPU)."""
    out = {}
    for name in STUDIES:
        folder = tmp_path_factory.mktemp(name)
        out[name] = (load_study(name), folder,
                     run_study(name, folder, quick=True, seed=0, progress=False,
                               studies_dir=ANALYSIS))
    return out


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """A user's data file: 1,200 of scikit-learn's digits as X and y (no test split given)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    path = tmp_path_factory.mktemp("data") / "small_digits.npz"
    np.savez(path, X=(bunch.data[:1200] / 16.0).astype(np.float32), y=bunch.target[:1200])
    return path


@pytest.fixture(scope="module")
def file_results(tmp_path_factory, digits_file, one_thread):
    out = {}
    for name in WITH_DATA:
        folder = tmp_path_factory.mktemp(f"{name}_file")
        out[name] = run_study(name, folder, quick=True, seed=0, progress=False,
                              studies_dir=ANALYSIS, data=digits_file)
    return out


def verdict_rows(summary):
    """The rows of the summary's verdict table: (comparison, paper, ours, verdict, cause)."""
    lines = summary.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("| comparison | paper (docs/paper.md) |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


@pytest.mark.parametrize("name", STUDIES)
def test_contract(results, name):
    module, folder, result = results[name]
    assert isinstance(module.TITLE, str) and module.TITLE
    assert isinstance(module.PAPER, str) and "\n" not in module.PAPER
    assert {"dataset", "summary", "claims", "files"} <= set(result)
    expected = {folder / f"{name}{suffix}" for suffix in (".nc", ".png", ".md")}
    assert {Path(p) for p in result["files"]} == expected
    assert all(path.stat().st_size > 0 for path in expected)
    with xr.open_dataset(folder / f"{name}.nc") as saved:
        assert set(saved.data_vars) == set(result["dataset"].data_vars)
        assert saved.attrs["study"] == name
        assert saved.attrs["run_seconds"] > 0
        assert "config" in saved.attrs
    summary = (folder / f"{name}.md").read_text(encoding="utf-8")
    assert summary.strip() == result["summary"].strip()
    assert "{seconds}" not in summary
    assert all(isinstance(v, bool) for v in result["claims"].values())
    for claim, value in result["claims"].items():
        assert f"{claim} = {value}" in summary
    assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", STUDIES)
def test_summary_has_a_verdict_table(results, name):
    summary = results[name][2]["summary"]
    assert "## Where we differ" in summary
    rows = verdict_rows(summary)
    assert rows, summary
    for row in rows:
        assert len(row) == 5, row
        assert row[3] in VERDICTS, row
        assert row[4], row  # a cause is given
    assert "Verdicts: *" in summary


@pytest.mark.parametrize("name", STUDIES)
def test_summary_cites_the_repository_only(results, name):
    summary = results[name][2]["summary"]
    source = (ANALYSIS / f"{name}.py").read_text(encoding="utf-8")
    for text in (summary, source):
        assert "REFERENCE.md" not in text
        assert "/work/" not in text
    assert "docs/paper.md" in summary


@pytest.mark.parametrize("name", STUDIES)
def test_no_zero_spread_from_one_seed(results, name):
    summary = results[name][2]["summary"]
    spreads = [float(s) for s in re.findall(r"± (\d+(?:\.\d+)?(?:e-?\d+)?)", summary)]
    assert all(s > 0 for s in spreads), spreads
    # a single value is written "(n = 1)", never with a spread
    assert not re.search(r"± [\d.e-]+[^|(\n]* \(n = 1\)", summary)


@pytest.mark.parametrize("name", STUDIES)
def test_summary_ends_with_the_run_line(results, name):
    last = results[name][2]["summary"].strip().splitlines()[-1]
    assert re.fullmatch(r"Run time: \d+ s wall, \d+ s CPU, load average [\d.]+ on \d+ cores; "
                        r"\d+ torch threads?\.", last), last


@pytest.mark.parametrize("name", STUDIES)
def test_quick_text_matches_the_quick_setup(results, name):
    summary = results[name][2]["summary"]
    assert summary.splitlines()[0].endswith("(quick)")
    if name in WITH_DATA:  # the quick runs use digits, so the full run's data is not named
        assert "MNIST-1D" not in summary and "mnist1d" not in summary
        assert "digits" in summary
    if name == "time_axis":
        assert "150 epochs" not in summary and "30 epochs" in summary


@pytest.mark.parametrize("name", WITH_DATA)
def test_a_data_file_replaces_the_built_in_set(file_results, name):
    result = file_results[name]
    summary = result["summary"]
    assert "file small_digits.npz" in summary
    assert "960 train / 240 test" in summary  # load_npz's 20 % split of the 1,200 samples
    assert result["dataset"].attrs["data"] == "file small_digits.npz"
    assert all(row[3] in VERDICTS for row in verdict_rows(summary))


def test_studies_take_data_only_where_it_fits():
    for name in STUDIES:  # every study takes a data file; none trains the MLP recipe
        assert "data" in inspect.signature(load_study(name).run).parameters
        assert "recipe" not in inspect.signature(load_study(name).run).parameters
    assert load_study("time_axis").DATA_KIND == "series"
    assert all(getattr(load_study(name), "DATA_KIND", "classification") == "classification"
               for name in WITH_DATA)


def test_time_axis_runs_on_a_series_file(tmp_path):
    steps = np.arange(600)
    x = np.sin(0.07 * steps)[:, None]
    np.savez(tmp_path / "wave.npz", X=x[:-1], y=x[1:])  # one-step-ahead forecast
    result = run_study("time_axis", tmp_path / "out", quick=True, progress=False,
                       studies_dir=ANALYSIS, data=tmp_path / "wave.npz")
    score = result["dataset"]["user_score"]
    assert score.dims == ("contender", "seed") and np.isfinite(score).all()
    # a smooth sine is easy: the closed-form ESN forecasts it to a small fraction of its range
    assert float(score.sel(contender="esn_ridge").min()) < 0.05
    assert "Your series (file wave.npz, 599 steps): trained on the first 300" in \
        result["summary"]
    assert result["dataset"].attrs["user_split"] == 300


@pytest.mark.parametrize("arrays, shown", [({"X": np.zeros((100, 1)), "y": np.zeros((100, 1))},
                                            "at least 240 steps"),
                                           ({"X": np.zeros((300, 1))}, "no 'y' array"),
                                           ({"X": np.full((300, 1), np.nan),
                                             "y": np.zeros((300, 1))}, "NaN or inf at step 0")])
def test_time_axis_refuses_a_bad_series_before_running(tmp_path, arrays, shown):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=shown):
        run_study("time_axis", tmp_path / "out", quick=True, progress=False,
                  studies_dir=ANALYSIS, data=tmp_path / "bad.npz")
    assert not (tmp_path / "out").exists()  # refused before anything ran


@pytest.mark.parametrize("name", STUDIES)
def test_no_study_takes_a_recipe(tmp_path, name):
    with pytest.raises(ParameterError, match="'recipe'"):
        run_study(name, tmp_path, quick=True, progress=False, studies_dir=ANALYSIS,
                  recipe="paper")


def test_multitask_refuses_a_file_with_too_few_classes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "five_classes.npz"
    np.savez(path, X=rng.random((100, 4)), y=np.arange(100) % 5)
    with pytest.raises(DataError, match=r"five_classes\.npz.*Got 5 class"):
        run_study("multitask", tmp_path / "out", quick=True, progress=False,
                  studies_dir=ANALYSIS, data=path)


def test_multitask_owners_split_the_classes():
    module = load_study("multitask")
    assert module.owners_for(range(10)) == module.OWNERS
    assert [len(v) for v in module.owners_for(range(9)).values()] == [3, 3, 3]
    assert [len(v) for v in module.owners_for(range(11)).values()] == [3, 4, 4]
    assert module.owners_for([7, 2, 5, 0, 9, 4, 1, 3, 8]) == {11: [0, 1, 2], 22: [3, 4, 5],
                                                               33: [7, 8, 9]}


def test_multitask(results):
    module, _, result = results["multitask"]
    ds = result["dataset"]
    assert ds["accuracy"].dims == ("repetition", "eval_seed", "task")
    assert list(ds["eval_seed"].values) == [*module.OWNERS, module.UNSEEN_SEED]
    assert float(ds["accuracy"].min()) >= 0 and float(ds["accuracy"].max()) <= 1
    # the unseen seed owns no labels, so "inside its own labels" is undefined
    assert np.isnan(ds["in_own_set"].sel(eval_seed=module.UNSEEN_SEED)).all()
    assert result["claims"] == {"specialises_by_seed": True,
                                "foreign_inputs_mapped_to_own_labels": True,
                                "unseen_seed_below_half_own_task_accuracy": True}
    assert verdict_rows(result["summary"])[0][3] == "agrees"


def test_esp_beta(results):
    module, _, result = results["esp_beta"]
    ds = result["dataset"]
    assert ds["sigma1"].dims == ("seed", "layer", "matrix")
    assert list(ds["matrix"].values) == ["effective", "frozen"]
    assert list(ds["scale"].values) == list(module.SCALES)
    assert ds["beta_by_scale"].dims == ("scale", "seed", "layer")
    # the first layer maps 64 digits pixels to 128 units: rectangular, no radius
    assert np.isnan(ds["rho"].sel(layer="layer0")).all()
    assert np.isfinite(ds["rho"].sel(layer="layer1")).all()
    # before training β is exactly 1 (the adapters start as a no-op), under every scale
    np.testing.assert_array_equal(ds["beta_history_by_scale"].isel(epoch=0).values, 1.0)
    np.testing.assert_array_equal(ds["beta_history"].isel(epoch=-1).values, ds["beta"].values)
    np.testing.assert_array_equal(ds["beta"].values,
                                  ds["beta_by_scale"].sel(scale="fan_in").values)
    # He's scale is √2 × fan-in's, and σ₁ of a wide random matrix follows its scale
    np.testing.assert_allclose(ds["sigma1_frozen_by_scale"].sel(scale="he"),
                               np.sqrt(2) * ds["sigma1_frozen_by_scale"].sel(scale="fan_in"),
                               rtol=0.1)
    claims = result["claims"]
    assert claims["sufficient_esp_condition_fails_every_layer"]
    assert claims["beta_positive_every_layer"]
    assert claims["beta_positive_throughout_training"]
    rows = {row[0]: row for row in verdict_rows(result["summary"])}
    median = rows["β median"]
    assert median[3] == "setup effect" and "no MLP β median" in median[4]
    assert "none for an MLP" in median[1]


def test_intrinsic_dimension(results):
    module, _, result = results["intrinsic_dimension"]
    ds = result["dataset"]
    assert ds["planted_loss"].dims == ("k", "planted_rank", "planted_seed")
    assert list(ds["estimator"].values) == module.ESTIMATORS
    claims = result["claims"]
    assert claims["planted_k_recovered"]
    np.testing.assert_array_equal(ds["planted_r_star"].values[:, 0], ds["k"].values)
    assert claims["targets_pca_within_1_of_k"]
    assert claims["top_rank_beats_rank_1"]
    # trainable parameters grow with the rank
    assert np.all(np.diff(ds["trainable_parameters"].values) > 0)
    assert verdict_rows(result["summary"])[0][3] == "agrees"


@pytest.mark.parametrize("k", [1, 3, 5])
def test_planted_task_has_rank_k(k):
    module = load_study("intrinsic_dimension")
    x, y = module.planted_task(k, seed=0, noise=0.0)
    assert x.shape == (1200, 20) and y.shape == (1200, 12)
    assert np.linalg.matrix_rank(y.astype(np.float64), tol=1e-3) == k


def test_time_axis(results):
    module, _, result = results["time_axis"]
    ds = result["dataset"]
    assert list(ds["contender"].values) == module.CONTENDERS
    assert ds["score"].dims == ("task", "contender", "seed")
    assert np.isfinite(ds["score"]).all()
    # the closed-form ridge fit has no training loss
    assert np.isnan(ds["train_loss"].sel(contender="esn_ridge")).all()
    # the variant "as in this study" is the esn_ridge contender, re-run on more seeds
    np.testing.assert_allclose(
        ds["narma_variant_nmse"].sel(variant="as in this study").values[0],
        ds["score"].sel(task="narma10", contender="esn_ridge").values[0], rtol=1e-6)
    summary = result["summary"]
    assert "0.107" in summary and "textbook" in summary
    narma = verdict_rows(summary)[0]
    assert narma[0].startswith("NARMA-10") and narma[3] in VERDICTS
    assert result["claims"]["esn_ridge_best_on_narma10"]
    assert result["claims"]["esn_ridge_best_on_mackey_glass"]
    assert result["claims"]["lora_on_W_improves_on_gradient_readout"]


def test_narma10_follows_the_recurrence():
    from deepreservoir.datasets import narma10

    u, y = narma10(300, np.random.default_rng(3))
    assert u.shape == y.shape == (300, 1)
    assert u.min() >= 0 and u.max() <= 0.5
    # y holds y(t+1) for the input u(t): check the recurrence inside the window
    for t in range(20, 299):
        expected = (0.3 * y[t - 1, 0] + 0.05 * y[t - 1, 0] * y[t - 10: t, 0].sum()
                    + 1.5 * u[t - 9, 0] * u[t, 0] + 0.1)
        assert y[t, 0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kwargs, name", [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
                                          ({"seed": -1}, "seed"), ({"transient": 3}, "transient")])
def test_narma10_rejects_bad_arguments(kwargs, name):
    from deepreservoir.datasets import narma10

    arguments = {"steps": 10, **kwargs}
    with pytest.raises(ParameterError, match=f"'{name}' parameter of narma10"):
        narma10(**arguments)


def test_narma10_same_seed_same_series():
    from deepreservoir.datasets import narma10

    first, second = narma10(50, 7), narma10(50, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], narma10(50, 8)[0])
