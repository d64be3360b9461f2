"""Studies 1–4 (analysis/rank_sweep, families, scaffold_resampling, ablations), quick versions.

Each runs with ``quick=True`` into a temporary folder through the same runner as
``deepreservoir reproduce``; the tests check the files, the Dataset's structure
and internal consistency, the qualitative claims that hold on the quick data,
and the honesty rules of the summaries (a verdict table of the four kinds, no
zero spread from one seed, no path outside the repository, the recipe and the
run line). Runs on a user's ``.npz`` file and with the paper's recipe use a
400-sample file, so they cost a few seconds.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import deepreservoir as dr
from deepreservoir.families import FAMILIES
from deepreservoir.studies import load_helper, load_study, run_study

VERDICTS = ("agrees", "dataset effect", "setup effect", "real disagreement")
STUDIES = ("rank_sweep", "families", "scaffold_resampling", "ablations")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as ``deepreservoir reproduce`` uses (torch's default of one per
    core makes these tiny runs several times slower on a shared machine); restored after."""
    import torch

    from deepreservoir.threads import use_threads

    previous = torch.get_num_threads()
    use_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (run_study(name, out, quick=True, progress=False), out)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory):
    """400 scikit-learn digits as a user's file (X, y; the test split is drawn from it)."""
    digits = dr.datasets.load_digits()
    path = tmp_path_factory.mktemp("data") / "small_digits.npz"
    np.savez(path, X=digits["x_train"][:400], y=digits["y_train"][:400])
    return path


def verdict_rows(text: str) -> list[list[str]]:
    """The rows of the verdict table under "## Where we differ"."""
    section = text.split("## Where we differ", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines, "no verdict table"
    assert lines[0].startswith("| comparison | paper (docs/paper.md) | ours | verdict |")
    rows = [line.strip("| ").split(" | ") for line in lines[1:]]
    for row in rows:
        assert len(row) == 5, row
    return rows


def check_honest(text: str, recipe: str = "default") -> None:
    """The summary rules every study keeps."""
    assert "## Where we differ" in text
    rows = verdict_rows(text)
    assert rows and all(row[3] in VERDICTS for row in rows)
    assert "REFERENCE.md" not in text
    assert "/work/" not in text and "/tmp/" not in text
    # no zero spread from a single value: every "± 0.0" belongs to n >= 2
    for match in re.finditer(r"± 0\.0+(?![0-9])", text):
        rest = re.split(r"[|\n]", text[match.end():], maxsplit=1)[0]
        count = re.search(r"\(n = (\d+)\)", rest)
        assert count and int(count.group(1)) >= 2, text[match.start() - 20:match.end() + 30]
    assert f"Recipe '{recipe}'" in text and "steps per run" in text
    last = [line for line in text.splitlines() if line.strip()][-1]
    assert last.startswith("Run time:") and "s wall" in last and "torch thread" in last


def check_files(name, result, out, recipe="default"):
    for suffix in ("nc", "png", "md"):
        path = out / f"{name}.{suffix}"
        assert path.is_file() and path.stat().st_size > 0
        assert path in result["files"]
    with xr.open_dataset(out / f"{name}.nc") as on_disk:
        on_disk = on_disk.load()
    assert on_disk.attrs["study"] == name
    assert on_disk.attrs["quick"] == 1
    assert on_disk.attrs["recipe"] == recipe
    assert on_disk.attrs["run_time_seconds"] > 0
    xr.testing.assert_allclose(on_disk, result["dataset"])
    text = (out / f"{name}.md").read_text()
    assert text == result["summary"] + ("" if result["summary"].endswith("\n") else "\n")
    assert text.startswith("# ") and "(quick)" in text.splitlines()[0]
    assert "paper" in text.lower() and "Where we differ" in text
    assert "docs/paper.md" in text
    check_honest(text, recipe)
    for claim, value in result["claims"].items():
        assert f"{claim} = {value}" in text
    return on_disk


def test_rank_sweep(results):
    result, out = results("rank_sweep")
    ds = check_files("rank_sweep", result, out)
    assert list(ds["dataset"].values) == ["mnist1d", "digits"]
    assert dict(ds["accuracy"].sizes) == {"dataset": 2, "rank": 3, "seed": 2}
    assert ds["accuracy_full"].dims == ("dataset", "seed")
    assert np.isfinite(ds["accuracy"]).all() and np.isfinite(ds["accuracy_full"]).all()
    np.testing.assert_allclose(ds["percent_of_full"],
                               100 * ds["accuracy"].mean("seed") / ds["accuracy_full"].mean("seed"))
    features = {"mnist1d": 40, "digits": 64}
    for name, d_in in features.items():
        for r in ds["rank"].values:
            assert int(ds["trainable"].sel(dataset=name, rank=r)) == dr.paper_param_count(
                d_in, dr.PRESETS["tiny"], 10, int(r))
    np.testing.assert_allclose(ds["paper_mnist_percent_of_full"].sel(rank=4),
                               100 * 95.44 / 98.38)
    # learning curves on an integer epoch axis
    assert ds["val_accuracy_curve"].dims == ("dataset", "rank", "seed", "epoch")
    assert list(ds["epoch"].values) == list(range(1, ds.sizes["epoch"] + 1))
    claims = result["claims"]
    assert "accuracy_grows_with_rank" not in claims  # it compared only the ends: renamed
    assert claims["top_rank_beats_rank1"]
    assert "accuracy_rises_at_every_rank_step_within_tolerance" in claims
    assert claims["rank1_below_full"]
    assert claims["rank4_trains_under_20pct_of_parameters"]
    text = result["summary"]
    assert "Tolerances:" in text and "twice the standard error" in text
    # a quick run describes its own set-up, not the full one
    assert "tiny preset" in text and "medium" not in text.split("## Where we differ")[0]
    rows = verdict_rows(text)
    assert {row[0] for row in rows} >= {"% of full training at r = 1, MNIST-1D",
                                       "% of full training at r = 1, digits",
                                       "accuracy rises with rank, digits"}


def test_families(results):
    result, out = results("families")
    ds = check_files("families", result, out)
    assert list(ds["family"].values) == list(FAMILIES)
    assert len(FAMILIES) == 22
    assert ds["accuracy"].dims == ("family", "seed")
    assert np.isfinite(ds["accuracy"]).all()
    assert ds.sizes["layer"] == len(dr.PRESETS["tiny"])
    # the seed-noise reference repeats the 'normal' family's run for its first seed
    first = int(ds["seed"].values[0])
    assert float(ds["normal_accuracy_over_seeds"].sel(noise_seed=first)) == float(
        ds["accuracy"].sel(family="normal", seed=first))
    spread = float(100 * (ds["accuracy"].max() - ds["accuracy"].min()))
    assert ds.attrs["spread_points"] == pytest.approx(spread)
    # N(0, 1/d_in) has gain σ·√d_in ≈ 1; cauchy's fixed scale is far larger
    np.testing.assert_allclose(ds["scaffold_gain"].sel(family="normal"), 1, atol=0.1)
    assert float(ds["scaffold_gain"].sel(family="cauchy").min()) > 2
    assert "retry_accuracy_at_paper_lr" in ds
    claims = result["claims"]
    assert claims["every_family_trains"]
    assert claims["beta_positive_for_every_family"]
    text = result["summary"]
    assert "one seed" in text and "Spearman" in text
    names = [row[0] for row in verdict_rows(text)]
    assert "spread over the 22 families" in names and "β > 0 with a static scaffold" in names


def test_scaffold_resampling(results):
    result, out = results("scaffold_resampling")
    ds = check_files("scaffold_resampling", result, out)
    assert list(ds["mode"].values) == ["static", "epoch", "batch"]
    assert ds["beta"].dims == ("mode", "rank", "seed", "layer")
    assert np.isfinite(ds["beta"]).all() and np.isfinite(ds["accuracy"]).all()
    assert ds["beta_history"].dims == ("mode", "rank", "seed", "epoch", "layer")
    # the last epoch's β is the β after training
    np.testing.assert_allclose(ds["beta_history"].isel(epoch=-1), ds["beta"], rtol=1e-6)
    assert float(ds["paper_accuracy"].sel(mode="batch", rank=2)) == 42.46
    claims = result["claims"]
    assert claims["static_beta_positive"]
    assert claims["resampled_beta_below_static"]
    assert claims["static_beats_batch_resampling_at_low_rank"]
    names = [row[0] for row in verdict_rows(result["summary"])]
    assert "abs(β) resampled every batch" in names and "epoch beats batch (points, r = 2/8)" \
        in names


def test_ablations(results):
    result, out = results("ablations")
    ds = check_files("ablations", result, out)
    assert list(ds["variant"].values) == ["static", "removed", "w0", "bottleneck"]
    # 'removed' scores the very models of 'static' again: the same β
    np.testing.assert_array_equal(ds["beta"].sel(variant="static"),
                                  ds["beta"].sel(variant="removed"))
    # the scaffold/adapter size ratio per layer, after training
    ratio = ds["scaffold_adapter_ratio"]
    assert ratio.dims == ("rank", "seed", "layer")
    assert ratio.sizes["layer"] == len(dr.PRESETS["tiny"])
    assert (np.isfinite(ratio) & (ratio > 0)).all()
    # the width-r bottleneck ceiling, for every rank, and full training
    assert np.isfinite(ds["accuracy"].sel(variant="bottleneck")).all()
    assert np.isfinite(ds["accuracy_full"]).all()
    # W_seed = 0 with B = 0 and no bias is refused as a dead start, never trained
    assert ds["w0_zero_b_refused"].all()
    assert "dead start" in ds.attrs["w0_zero_b_refusal"]
    assert "b_init='kaiming'" in ds.attrs["w0_variant"]
    claims = result["claims"]
    assert claims["w0_with_zero_B_refused_as_dead_start"]
    assert claims["w0_kaiming_learns"]
    assert claims["scaffold_helps_at_rank1"]
    assert claims["removed_and_w0_within_bottleneck_ceiling"]
    text = result["summary"]
    assert "‖β·W_seed·x‖ / ‖scale·B·A·x‖" in text and "bottleneck" in text
    names = [row[0] for row in verdict_rows(text)]
    assert "scaffold removed after training, r = 1, % of full" in names
    assert "W_seed = 0 with B = 0 and no hidden bias, as a LoRA start" in names


def test_bottleneck_mlp_has_a_width_r_linear_bottleneck():
    ablations = load_study("ablations")
    model = ablations.bottleneck_mlp(3, (16, 8), 10, 0.0, seed=0)
    out = model.run(np.ones((5, 7), dtype=np.float32))
    assert out.shape == (5, 10)
    first = model.nodes["bottleneck"]
    assert first.units == 3 and first.activation == "identity" and not first.use_bias


def test_rank_sweep_on_a_user_file_with_the_paper_recipe(small_npz, tmp_path):
    """data= replaces both built-in sets; recipe='paper' records the lr chosen per method."""
    common = load_helper("_common")
    result = run_study("rank_sweep", tmp_path, quick=True, progress=False, data=small_npz,
                       recipe="paper")
    ds = check_files("rank_sweep", result, tmp_path, recipe="paper")
    assert list(ds["dataset"].values) == ["small_digits.npz"]
    text = result["summary"]
    assert "file small_digits.npz" in text
    assert "MNIST-1D" not in text.split("## Where we differ")[0]
    grid = set(common.LR_GRID[True])
    assert set(np.unique(ds["lr"].values)) <= grid and set(np.unique(ds["lr_full"].values)) <= grid
    assert ds["lr"].dims == ("dataset", "rank", "seed")
    assert "Learning rates chosen" in text and "α = 1 (scale α/r)" in text
    assert ds.attrs["recipe"] == "paper"
    assert '"alpha": 1.0' in ds.attrs["train"]


@pytest.mark.parametrize("name", ["families", "scaffold_resampling", "ablations"])
def test_study_on_a_user_file(name, small_npz, tmp_path):
    result = run_study(name, tmp_path, quick=True, progress=False, data=small_npz)
    ds = check_files(name, result, tmp_path)
    assert ds.attrs["data"] == "file small_digits.npz"
    text = result["summary"]
    assert "file small_digits.npz" in text
    assert "MNIST-1D" not in text.split("## Where we differ")[0]


@pytest.mark.parametrize("name", STUDIES)
def test_study_refuses_an_unknown_recipe_before_training(name, tmp_path):
    with pytest.raises(ValueError, match="recipe"):
        load_study(name).run(tmp_path, quick=True, progress=False, recipe="fast")
    assert not list(tmp_path.iterdir())
