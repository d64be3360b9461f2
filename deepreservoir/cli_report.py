"""Plain-text reports of a model for the command line: footprint, spectra, ESP, β.

:func:`model_report` is what ``deepreservoir inspect`` prints and what
``deepreservoir demo`` prints for its two models. Recurrent models get
:func:`deepreservoir.analysis.check_esp` (sufficient and necessary conditions,
the empirical contraction test and the verdict); feedforward scaffolds get,
per layer, σ₁ of the frozen and of the effective matrix, β, whether the
sufficient contraction condition σ₁ < 1 holds, and the depth analogue of the
Lyapunov exponent (:func:`deepreservoir.analysis.depth_lyapunov`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from deepreservoir.kinds import Gated, Stateful

__all__ = ["ModelReport", "betas", "model_report"]


class ModelReport:
    """A report's text and the xarray results behind it.

    Attributes
    ----------
    text : str
    results : dict[str, xarray.Dataset]
        ``"spectra"``, and ``"esp"`` (recurrent) or ``"depth_lyapunov"`` (feedforward).
    """

    def __init__(self, text: str, results: dict[str, xr.Dataset]):
        self.text = text
        self.results = results

    def __str__(self) -> str:
        return self.text


def betas(model) -> dict[str, float]:
    """β of every gated node, by node name."""
    found = {}
    for name, node in model.nodes.items():
        beta = node.gate() if isinstance(node, Gated) and node.built else None
        if beta is not None:
            found[name] = float(beta.detach().reshape(()))
    return found


def _fmt(value: float, spec: str = ".3g") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def _has_recurrence(model) -> bool:
    return any(isinstance(node, Stateful) for node in model.nodes.values())


def _input_dim(model) -> int | None:
    for name in model.input_names:
        dim = getattr(model.nodes[name], "output_dim", None)
        if dim:
            return int(dim)
    return None


def model_report(model, *, title: str = "model", inputs: Any = None,
                 footprint: bool = True, esp_maxiter: int = 100) -> ModelReport:
    """Footprint, spectra, echo-state verdicts and β of a built model.

    Parameters
    ----------
    model : Model
        Built (fitted, run or loaded).
    title : str
        First line of the text.
    inputs : array_like, optional
        Recurrent models: the input of the empirical contraction test, ``(T, F)``;
        feedforward models: samples ``(n, F)`` for the depth Lyapunov growth.
        Default: random inputs from seed 0.
    footprint : bool
        Include :meth:`Model.footprint`.
    esp_maxiter : int
        Iterations of the Buehner–Young search in :func:`~deepreservoir.analysis.check_esp`
        (fewer is faster and gives a looser, still valid, bound).

    Returns
    -------
    ModelReport
    """
    from deepreservoir import analysis

    lines = [f"== {title} =="]
    results: dict[str, xr.Dataset] = {}
    if footprint:
        lines += [str(model.footprint()), ""]
    gates = betas(model)
    spectra = analysis.spectra(model)
    results["spectra"] = spectra
    if _has_recurrence(model):
        esp = analysis.check_esp(model, inputs=inputs, maxiter=esp_maxiter)
        results["esp"] = esp
        lines.append(f"{'reservoir':<14}{'rho':>8}{'sigma_max':>11}{'rho(|W|)':>10}"
                     f"{'B-Y bound':>11}{'leaky rho':>11}  verdict")
        for i, layer in enumerate(esp["layer"].values):
            lines.append(
                f"{layer!s:<14}{_fmt(float(esp['rho'][i])):>8}"
                f"{_fmt(float(esp['sigma_max'][i])):>11}{_fmt(float(esp['rho_abs'][i])):>10}"
                f"{_fmt(float(esp['diagonal_scaling_bound'][i])):>11}"
                f"{_fmt(float(esp['leaky_rho'][i])):>11}  {esp['verdict'].values[i]}")
        lines.append(f"ESP verdict: {esp.attrs['verdict']}")
        if gates:
            lines.append("β: " + ", ".join(f"{k} {v:.3g}" for k, v in gates.items()))
    else:
        sample = inputs
        if sample is None:
            dim = _input_dim(model)
            if dim is not None:
                sample = np.random.default_rng(0).normal(size=(256, dim))
        depth = analysis.depth_lyapunov(model, sample)
        results["depth_lyapunov"] = depth
        frozen = spectra["spectral_norm"].sel(matrix="frozen")
        effective = spectra["spectral_norm"].sel(matrix="effective")
        lines.append(f"{'layer':<10}{'σ₁(W_seed)':>12}{'σ₁(W_eff)':>11}{'β':>8}"
                     f"{'σ₁<1 (sufficient)':>19}{'log-growth':>12}")
        for layer in spectra["layer"].values:
            s_frozen = float(frozen.sel(layer=layer))
            s_eff = float(effective.sel(layer=layer))
            growth = float(depth["growth"].sel(layer=layer)) if layer in depth["layer"] \
                else math.nan
            holds = "—" if math.isnan(s_eff) else ("holds" if s_eff < 1 else "fails")
            lines.append(f"{layer!s:<10}{_fmt(s_frozen):>12}{_fmt(s_eff):>11}"
                         f"{_fmt(gates.get(str(layer), math.nan)):>8}{holds:>19}"
                         f"{_fmt(growth, '.3f'):>12}")
        failing = [str(la) for la in spectra["layer"].values
                   if float(effective.sel(layer=la)) >= 1]
        lines.append(
            f"Sufficient contraction condition σ₁ < 1 fails at {len(failing)} of "
            f"{spectra.sizes['layer']} layers; mean log-growth of the Jacobian product per "
            f"layer {depth.attrs['mean_growth']:.3f} "
            f"({'contracting' if depth.attrs['mean_growth'] < 0 else 'expanding'} on average).")
    return ModelReport("\n".join(lines), results)
