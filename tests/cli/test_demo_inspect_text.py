"""What a user reads in ``deepreservoir demo`` and ``deepreservoir inspect``, and sees in the
demo's figures: learned-parameter counts, one "% trained", one ESP verdict, file permissions of
saved models, and figures a scientist can read."""

from __future__ import annotations

import io
import itertools
import os
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import deepreservoir as dr
from deepreservoir.cli import main
from deepreservoir.cli_report import footprint_text, model_report
from deepreservoir.demo import DemoConfig

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

DENSE = "% of the dense network's parameters"
MNIST1D_CLASSES = 10


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """The quick demo's printed text, output folder and the figures it saved (by file stem)."""
    from matplotlib.figure import Figure

    out = tmp_path_factory.mktemp("demo_text") / "out"
    figures: dict[str, Figure] = {}
    original = Figure.savefig

    def keep(self, fname, *args, **kwargs):
        figures[Path(fname).stem] = self
        return original(self, fname, *args, **kwargs)

    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(buffer):
        patch.setattr(Figure, "savefig", keep)
        code = main(["demo", "--quick", "--out", str(out), "--no-progress"])
    assert code == 0
    return buffer.getvalue(), out, figures


def _small_esn(units: int = 40):
    u = np.sin(0.3 * np.arange(400))[:, None]
    esn = dr.Reservoir(units, sr=0.9, lr=0.5, seed=1) >> dr.Ridge(1e-6)
    esn.fit(u[:-1], u[1:], warmup=20)
    return esn


# ------------------------------------------------- 1. a fitted readout is learned
def test_ridge_readout_is_reported_as_fitted_not_as_nothing_learned():
    esn = _small_esn(40)
    text = model_report(esn, title="esn", esp_maxiter=5).text
    fp = esn.footprint()
    fitted = 40 + 1  # Wout (1 × 40) and the bias of the Ridge readout
    assert fp.trainable == 0 and fp.dense == 40 * 40 + 40 + 40 + fitted
    assert f"fitted {fitted:,} (Ridge readout) + trained 0 of {fp.dense:,}" in text
    percent = 100 * fitted / fp.dense
    assert f"= {percent:.2f} {DENSE}" in text
    assert "trainable: 0 of" not in text


def test_saved_demo_esn_counts_its_fitted_readout(quick_demo):
    _, out, _ = quick_demo
    path = out / "esn_model"
    model = dr.load(path)
    text = footprint_text(model, path)  # the footprint part of inspect's report
    units = DemoConfig.quick().esn_units
    fp = model.footprint(path)
    assert f"fitted {units + 1:,} (Ridge readout) + trained 0 of {fp.dense:,}" in text
    assert "bytes (on disk)" in text


def test_gradient_trained_model_reports_trained_only():
    model = dr.scaffold_mlp((16, 8), 3, r=2, seed=3)
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(32, 12)).astype(np.float32), rng.integers(0, 3, 32), epochs=1,
              loss="cross_entropy", verbose=0)
    fp = model.footprint()
    text = model_report(model).text
    line = next(line for line in text.splitlines() if line.startswith("learned:"))
    assert line == (f"learned: trained {fp.trainable:,} of {fp.dense:,} = "
                    f"{100 * fp.trainable / fp.dense:.2f} {DENSE}")


# ------------------------------------------- 2. one "% trained" in demo and inspect
def _demo_rows(printed: str) -> dict[str, list[str]]:
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("rank"))
    rows = {}
    for line in lines[header + 2:]:
        cells = line.split()
        if not cells or not (cells[0] == "full" or cells[0].isdigit()):
            break
        rows[cells[0]] = cells
    return rows


def test_demo_and_inspect_print_the_same_percent_trained(quick_demo):
    printed, out, _ = quick_demo
    rank = max(DemoConfig.quick().ranks)
    demo_percent = float(_demo_rows(printed)[str(rank)][3])
    path = out / f"lottalora_r{rank}_model"
    model = dr.load(path)
    text = model_report(model, title=str(path), path=path).text
    inspect_percent = float(re.search(rf"= ([0-9.]+) {re.escape(DENSE)}", text).group(1))
    fp = model.footprint(path)
    assert demo_percent == inspect_percent == round(100 * fp.trainable / fp.dense, 2)
    assert DENSE in printed  # the demo says what the percentage is of
    with xr.open_dataset(out / "lottalora_mnist1d.nc") as runs:
        np.testing.assert_allclose(float(runs["percent_trained"].sel(rank=rank)),
                                   100 * fp.trainable / fp.dense)


# ---------------------------------------------------------- 3. one ESP verdict
def test_demo_prints_the_esn_verdict_once(quick_demo):
    printed, out, _ = quick_demo
    with xr.open_dataset(out / "esp_esn.nc") as esp:
        verdict = esp.attrs["verdict"]
    assert printed.count(verdict) == 1
    assert f"ESP verdict: {verdict}" in printed


def test_deep_esn_keeps_one_verdict_per_reservoir():
    u = np.sin(0.3 * np.arange(300))[:, None]
    deep = dr.Reservoir(20, sr=0.9, seed=1) >> dr.Reservoir(20, sr=1.5, seed=2) >> dr.Ridge(1e-6)
    deep.fit(u[:-1], u[1:], warmup=10)
    text = model_report(deep, footprint=False).text
    esp = dr.analysis.check_esp(deep)
    for layer, verdict in zip(esp["layer"].values, esp["verdict"].values, strict=True):
        row = next(line for line in text.splitlines() if line.startswith(str(layer)))
        assert row.rstrip().endswith(str(verdict))
    assert f"ESP verdict: {esp.attrs['verdict']}" in text


# ------------------------------------------------- 4. permissions of an artifact
@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_artifact_files_get_the_same_umask_permissions(tmp_path, umask):
    esn = _small_esn(10)
    old = os.umask(umask)
    try:
        path = esn.save(tmp_path / "model", key=b"k")
        with open(tmp_path / "plain.txt", "w") as handle:  # what a normal file gets
            handle.write("x")
    finally:
        os.umask(old)
    expected = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert expected == 0o666 & ~umask
    modes = {p.name: p.stat().st_mode & 0o777 for p in Path(path).iterdir()}
    assert set(modes) == {"spec.json", "tensors.safetensors", "signature.json"}
    assert modes == dict.fromkeys(modes, expected)


# ------------------------------------------------------------------ 5. figures
def _drawn(figure):
    """``figure`` drawn on an Agg canvas (a closed pyplot figure keeps a bare one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _labelled(ax) -> dict[str, object]:
    """Colour of every labelled line or marker set of an Axes, by label."""
    from matplotlib.colors import to_hex

    found = {}
    for line in ax.get_lines():
        if not line.get_label().startswith("_"):
            found[line.get_label()] = to_hex(line.get_color())
    for collection in ax.collections:
        if not collection.get_label().startswith("_"):
            found[collection.get_label()] = to_hex(collection.get_facecolor()[0])
    return found


def test_lottalora_figure_one_colour_per_rank(quick_demo):
    _, _, figures = quick_demo
    figure = figures["lottalora_mnist1d"]
    labels = [f"r={r}" for r in DemoConfig.quick().ranks]
    colours = {label: [] for label in labels}
    for ax in figure.axes:
        for label, colour in _labelled(ax).items():
            if label in colours:
                colours[label].append(colour)
    for label in labels:  # every panel that shows a rank shows it in one colour
        assert len(colours[label]) == len(figure.axes), (label, colours)
        assert len(set(colours[label])) == 1, (label, colours)
    assert len({c[0] for c in colours.values()}) == len(labels)  # and ranks differ


def test_lottalora_figure_integer_epochs_and_chance_line(quick_demo):
    _, _, figures = quick_demo
    figure = figures["lottalora_mnist1d"]
    _drawn(figure)
    chance = 1 / MNIST1D_CLASSES
    accuracy_axes = [ax for ax in figure.axes if "accuracy" in ax.get_ylabel()]
    assert len(accuracy_axes) == 2
    for ax in accuracy_axes:
        lines = [line for line in ax.get_lines() if "chance" in line.get_label()]
        assert len(lines) == 1, [line.get_label() for line in ax.get_lines()]
        np.testing.assert_allclose(lines[0].get_ydata(), chance)
        low, high = ax.get_ylim()
        highest = max(np.nanmax(np.asarray(line.get_ydata(), dtype=float))
                      for line in ax.get_lines())
        assert low <= 0 and high >= highest
    (epochs,) = [ax for ax in figure.axes if ax.get_xlabel() == "epoch"]
    low, high = epochs.get_xlim()
    ticks = [t for t in epochs.get_xticks() if low <= t <= high]
    assert len(ticks) >= 2
    assert all(float(t).is_integer() for t in ticks), ticks


def test_spectra_figure_has_no_legend_for_bars_not_drawn(quick_demo):
    _, _, figures = quick_demo
    figure = figures["spectra_lottalora"]
    bars = [ax for ax in figure.axes if ax.containers]
    assert bars
    for ax in bars:
        drawn = {c.get_label() for c in ax.containers
                 if any(np.isfinite(p.get_height()) for p in c.patches)}
        all_bars = {c.get_label() for c in ax.containers} | {"ρ(W)", "ρ(aW + (1−a)I)"}
        legend = {t.get_text() for t in ax.get_legend().get_texts()}
        assert "σ_max(W)" in legend
        assert legend & all_bars <= drawn, legend


def _overlaps(figure) -> list[tuple[str, str]]:
    renderer = _drawn(figure)
    boxes = []
    if figure._suptitle is not None and figure._suptitle.get_text():
        boxes.append(("suptitle", figure._suptitle.get_window_extent(renderer)))
    for i, ax in enumerate(figure.axes):
        for name, text in (("title", ax.title), ("xlabel", ax.xaxis.label),
                           ("ylabel", ax.yaxis.label)):
            if text.get_text():
                boxes.append((f"axes{i} {name}", text.get_window_extent(renderer)))
        if ax.get_legend() is not None:
            boxes.append((f"axes{i} legend", ax.get_legend().get_window_extent(renderer)))
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
            if box_a.overlaps(box_b)]


def test_esp_figure_threshold_labelled_and_title_readable(quick_demo):
    _, _, figures = quick_demo
    figure = figures["esp_esn"]
    threshold = []
    for ax in figure.axes:
        legend = {t.get_text() for t in ax.get_legend().get_texts()} if ax.get_legend() else set()
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            if y.size and np.all(y == 1.0) and line.get_label() in legend:
                threshold.append(line.get_label())
    assert threshold and all("1" in label for label in threshold), threshold
    title = figure._suptitle
    assert title is not None and "echo state property" in title.get_text()
    sizes = [ax.title.get_fontsize() for ax in figure.axes if ax.title.get_text()]
    assert title.get_fontsize() >= max(sizes) >= 11  # readable at 100 dpi
    assert not _overlaps(figure)


def test_inspect_command_prints_the_demos_percent_trained(quick_demo, capsys):
    printed, out, _ = quick_demo
    rank = max(DemoConfig.quick().ranks)
    assert main(["inspect", str(out / f"lottalora_r{rank}_model")]) == 0
    text = capsys.readouterr().out
    inspect_percent = float(re.search(rf"= ([0-9.]+) {re.escape(DENSE)}", text).group(1))
    assert inspect_percent == float(_demo_rows(printed)[str(rank)][3])
    assert "bytes (on disk)" in text


def test_an_online_readout_counts_its_readout_not_its_working_state():
    import deepreservoir as dr
    from deepreservoir.cli_report import learned

    model = dr.Reservoir(20, seed=1) >> dr.RLS(1e-3)
    series = np.random.default_rng(0).random((100, 1))
    model.fit(series[:-1], series[1:])
    found = learned(model)
    # Wout (1 × 20) and the bias: 21, not the 400 elements of RLS's P as well
    assert sum(found.fitted.values()) == 21
