"""One plot function for every analysis result, dispatching on ``result.attrs["kind"]``.

xarray objects cannot carry methods, so instead of result classes the analysis
functions return plain ``DataArray``/``Dataset`` objects tagged with
``attrs["kind"]``, and :func:`plot` draws any of them::

    report = dr.analysis.check_esp(model)
    fig = dr.analysis.plot(report)
    fig.savefig("esp.png")

matplotlib is an optional dependency (``pip install deepreservoir[plot]``),
imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from deepreservoir.errors import ParameterError, format_value

__all__ = ["plot"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting analysis results needs matplotlib, an optional dependency: "
            "pip install deepreservoir[plot]"
        ) from exc
    return plt


def _axes(ax: Any, count: int, size: tuple[float, float]):
    plt = _pyplot()
    if ax is None:
        figure, axes = plt.subplots(1, count, figsize=size, squeeze=False)
        return figure, list(axes[0])
    axes = list(np.atleast_1d(ax))
    if len(axes) != count:
        raise ParameterError(
            f"The 'ax' parameter of plot must be {count} matplotlib Axes for this result. "
            f"Got {len(axes)}."
        )
    return axes[0].figure, axes


def _layers(data: xr.DataArray | xr.Dataset) -> list[str]:
    return [str(v) for v in data["layer"].values] if "layer" in data.dims else [""]


def _bars(ax, labels: list[str], series: dict[str, np.ndarray], ylabel: str,
          threshold: float | None = None, threshold_label: str | None = None) -> list[str]:
    """Grouped bars, one group per label; a series with no finite value is not drawn
    (nor listed in the legend). Returns the names of the series left out."""
    drawn = {name: values for name, values in series.items()
             if np.isfinite(np.asarray(values, dtype=float)).any()}
    missing = [name for name in series if name not in drawn]
    width = 0.8 / max(len(drawn), 1)
    positions = np.arange(len(labels))
    for i, (name, values) in enumerate(drawn.items()):
        ax.bar(positions + i * width - 0.4 + width / 2, values, width, label=name,
               color=f"C{list(series).index(name)}")
    if threshold is not None:
        ax.axhline(threshold, color="black", lw=1, ls="--",
                   label=threshold_label if threshold_label is not None else "_threshold")
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=20 if len(labels) > 1 else 0,
                       ha="right" if len(labels) > 1 else "center")
    ax.set_ylabel(ylabel)
    if len(series) > 1 or threshold_label is not None:
        ax.legend(fontsize=8)
    return missing


def _plot_scalar_per_layer(result: xr.DataArray, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    data = result if result.ndim else result.expand_dims(layer=["matrix"])
    if "matrix" in data.dims:
        series = {str(m): data.sel(matrix=m).values for m in data["matrix"].values}
    else:
        series = {result.name or "value": np.atleast_1d(data.values)}
    _bars(axis, _layers(data), series, str(result.name).replace("_", " "), threshold=1.0)
    axis.set_title(f"{result.name} ({result.attrs.get('method', '')})")
    return figure


def _plot_singular_values(result: xr.DataArray, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    if result.ndim == 1:
        axis.semilogy(np.arange(1, result.size + 1), result.values, label="σ_i")
    else:
        for layer in result["layer"].values:
            for matrix in result["matrix"].values:
                values = result.sel(layer=layer, matrix=matrix).values
                values = values[np.isfinite(values)]
                axis.semilogy(np.arange(1, values.size + 1), values, label=f"{layer} {matrix}")
        axis.legend(fontsize=8)
    axis.axhline(1.0, color="black", lw=1, ls="--")
    axis.set_xlabel("index i")
    axis.set_ylabel("singular value σ_i")
    axis.set_title("singular values")
    return figure


def _plot_spectra(result: xr.Dataset, ax: Any):
    figure, (left, right) = _axes(ax, 2, (11, 4))
    effective = result.sel(matrix="effective")
    missing = _bars(left, _layers(result), {
        "ρ(W)": effective["spectral_radius"].values,
        "σ_max(W)": effective["spectral_norm"].values,
        "ρ(aW + (1−a)I)": effective["leaky_spectral_radius"].values,
    }, "value", threshold=1.0, threshold_label="threshold = 1")
    left.set_title("spectral radius and norm per layer (effective matrix)")
    if missing:  # ρ is defined for square matrices only
        left.set_xlabel(f"not drawn (no square matrix): {', '.join(missing)}", fontsize=9)
    _plot_singular_values(result["singular_values"].sel(matrix=["effective"]), right)
    return figure


def _plot_esp(result: xr.Dataset, ax: Any):
    figure, (left, right) = _axes(ax, 2, (12, 4.6))
    several = result.sizes.get("layer", 1) > 1
    for layer in result["layer"].values:
        trace = result["distance"].sel(layer=layer).values
        trace = trace[np.isfinite(trace)]
        verdict = str(result["verdict"].sel(layer=layer).values)
        left.semilogy(np.arange(1, trace.size + 1), np.maximum(trace, 1e-300),
                      label=f"{layer}: {verdict}" if several else str(layer))
    tol = float(result.attrs["tol"])
    left.axhline(tol, color="black", lw=1, ls="--", label=f"tolerance {tol:.0e}")
    left.set_xlabel("time step")
    left.set_ylabel("max pairwise distance")
    left.set_title("empirical contraction")
    left.legend(fontsize=9)
    _bars(right, _layers(result), {
        "σ_max(W)  (sufficient)": result["sigma_max"].values,
        "ρ(|W|)  (sufficient)": result["rho_abs"].values,
        "inf_D σ_max(DWD⁻¹)  (sufficient)": result["diagonal_scaling_bound"].values,
        "ρ(W)  (necessary)": result["rho"].values,
        "ρ(aW + (1−a)I)  (necessary)": result["leaky_rho"].values,
    }, "value", threshold=1.0, threshold_label="threshold = 1 (a condition holds below)")
    right.set_title("conditions per reservoir")
    figure.suptitle(f"echo state property: {result.attrs['verdict']}", fontsize=13)
    return figure


def _plot_lyapunov(result: xr.Dataset, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    running = result["running"]
    if "layer" not in running.dims:
        running = running.expand_dims(layer=["map"])
    for layer in running["layer"].values:
        values = running.sel(layer=layer).values
        values = values[np.isfinite(values)]
        axis.plot(np.arange(1, values.size + 1), values, label=str(layer))
    axis.axhline(0.0, color="black", lw=1, ls="--")
    axis.set_xlabel("steps averaged")
    axis.set_ylabel("running estimate of λ₁")
    axis.set_title("maximal Lyapunov exponent (Benettin)")
    axis.legend(fontsize=8)
    return figure


def _plot_depth(result: xr.Dataset, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    positions = np.arange(result.sizes["layer"])
    axis.errorbar(positions, result["growth"].values, yerr=result["growth_std"].values,
                  fmt="o-", label="log ‖J_l v‖")
    axis.plot(positions, np.log(result["sigma_max"].values), "s--", label="log σ₁(W_l)")
    axis.axhline(0.0, color="black", lw=1, ls="--")
    axis.set_xticks(positions)
    axis.set_xticklabels(_layers(result), rotation=20, ha="right")
    axis.set_ylabel("log-growth per layer")
    axis.set_title(f"Jacobian log-growth along depth (mean {result.attrs['mean_growth']:.3g})")
    axis.legend(fontsize=8)
    return figure


def _plot_memory(result: xr.Dataset, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    for layer in result["layer"].values:
        values = result["memory_capacity"].sel(layer=layer)
        total = float(result["total"].sel(layer=layer))
        axis.plot(values["k"].values, values.values, "o-", ms=3,
                  label=f"{layer}: MC = {total:.2f}")
    axis.set_xlabel("delay k")
    axis.set_ylabel("MC_k (held-out corr²)")
    axis.set_ylim(-0.02, 1.05)
    axis.set_title("memory capacity")
    axis.legend(fontsize=8)
    return figure


def _plot_dimension(result: xr.DataArray, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    data = result if "layer" in result.dims else result.expand_dims(layer=["data"])
    series = {str(m): data.sel(estimator=m).values for m in data["estimator"].values}
    _bars(axis, _layers(data), series, "estimated dimension")
    axis.set_title(f"intrinsic dimension (PCA at {result.attrs.get('variance')} of variance)")
    return figure


def _plot_sweep(result: xr.Dataset, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    metric = str(result.attrs.get("metric", next(iter(result.data_vars))))
    data = result[metric] if metric in result else result[next(iter(result.data_vars))]
    ranks = data["rank"].values
    mean, spread = data.mean("seed").values, data.std("seed").values
    axis.errorbar(ranks, mean, yerr=spread, fmt="o-", label=f"{data.name} (mean ± sd over seeds)")
    if f"{data.name}_full" in result:
        axis.axhline(float(result[f"{data.name}_full"].mean()), color="black", ls="--", lw=1,
                     label="full training")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("rank r")
    axis.set_ylabel(str(data.name))
    axis.set_title("rank sweep")
    axis.legend(fontsize=8)
    return figure


def _plot_saturation(result: xr.Dataset, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    eps = result["epsilon"].values
    axis.plot(eps, result["r_star"].values, "o-", label="r*(ε) pooled")
    if "r_star_seed" in result:
        low = result["r_star_seed"].quantile(0.1, dim="seed").values
        high = result["r_star_seed"].quantile(0.9, dim="seed").values
        axis.fill_between(eps, low, high, alpha=0.3, label="per-seed 10–90 %")
    axis.set_xscale("log")
    axis.set_xlabel("ε")
    axis.set_ylabel("saturation rank r*(ε)")
    axis.set_title("smallest rank with loss ≤ loss(full) + ε")
    axis.legend(fontsize=8)
    return figure


def _plot_beta(result: xr.DataArray, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    _bars(axis, _layers(result), {"β": np.atleast_1d(result.values)}, "β", threshold=1.0)
    axis.axhline(0.0, color="grey", lw=0.8)
    axis.set_title("gate β per layer")
    return figure


def _plot_beta_history(result: xr.DataArray, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    epochs = result["epoch"].values
    for layer in result["layer"].values:
        axis.plot(epochs, result.sel(layer=layer).values, marker="o", ms=3, label=str(layer))
    axis.axhline(1.0, color="black", lw=1, ls="--")
    axis.axhline(0.0, color="grey", lw=0.8)
    axis.set_xlabel("epoch")
    axis.set_ylabel("β")
    axis.set_title("β per layer over training")
    axis.legend(fontsize=8)
    return figure


def _plot_scaffold_share(result: xr.Dataset, ax: Any):
    figure, (axis,) = _axes(ax, 1, (6, 4))
    _bars(axis, _layers(result), {
        "‖βW_seed h‖ / ‖z‖": result["share"].values,
        "‖βW_seed h‖ / ‖βW_seed h + (α/r)BAh‖": result["weight_share"].values,
    }, "share", threshold=1.0)
    axis.set_title("scaffold share of the pre-activation z")
    return figure


def _plot_beta_ablation(result: xr.Dataset, ax: Any):
    metrics = [str(name) for name in result.data_vars if "ablation" in result[name].dims]
    figure, axes = _axes(ax, len(metrics), (5 * len(metrics), 4))
    labels = [str(v) for v in result["ablation"].values]
    for axis, metric in zip(axes, metrics, strict=True):
        values = result[metric].values
        colors = ["grey"] + ["C0"] * (len(labels) - 2) + ["C3"]
        axis.bar(np.arange(len(labels)), values, color=colors)
        axis.axhline(float(values[0]), color="black", lw=1, ls="--")
        axis.set_xticks(np.arange(len(labels)))
        axis.set_xticklabels(labels, rotation=20, ha="right")
        axis.set_ylabel(metric)
        axis.set_title(f"{metric} with β = 0 in the layer")
    return figure


_PLOTTERS: dict[str, Callable[[Any, Any], Any]] = {
    "spectral_radius": _plot_scalar_per_layer,
    "spectral_norm": _plot_scalar_per_layer,
    "leaky_spectral_radius": _plot_scalar_per_layer,
    "singular_values": _plot_singular_values,
    "spectra": _plot_spectra,
    "esp": _plot_esp,
    "lyapunov": _plot_lyapunov,
    "depth_lyapunov": _plot_depth,
    "memory_capacity": _plot_memory,
    "intrinsic_dimension": _plot_dimension,
    "rank_sweep": _plot_sweep,
    "saturation_rank": _plot_saturation,
    "beta": _plot_beta,
    "beta_history": _plot_beta_history,
    "scaffold_share": _plot_scaffold_share,
    "beta_ablation": _plot_beta_ablation,
}


def plot(result: xr.DataArray | xr.Dataset, *, ax: Any = None):
    """Plot any analysis result.

    Parameters
    ----------
    result : xarray.DataArray or xarray.Dataset
        A result of a :mod:`deepreservoir.analysis` function; its
        ``attrs["kind"]`` selects the plot.
    ax : matplotlib Axes or sequence of Axes, optional
        Where to draw (two Axes for ``"spectra"`` and ``"esp"`` results);
        a new figure is made when omitted.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install deepreservoir[plot]``).
    ParameterError
        If ``result`` is not an analysis result.
    """
    kind = getattr(result, "attrs", {}).get("kind") if hasattr(result, "attrs") else None
    if kind not in _PLOTTERS:
        got = format_value(result) if kind is None else f"kind {kind!r}"
        raise ParameterError(
            f"The 'result' parameter of plot must be an analysis result with attrs['kind'] "
            f"in {', '.join(sorted(_PLOTTERS))}. Got {got}."
        )
    figure = _PLOTTERS[kind](result, ax)
    figure.tight_layout()
    return figure
