"""Plain-text reports of a model for the command line: footprint, spectra, ESP, β.

:func:`model_report` is what ``deepreservoir inspect`` prints and what
``deepreservoir demo`` prints for its two models. Recurrent models get
:func:`deepreservoir.analysis.check_esp` (sufficient and necessary conditions,
the empirical contraction test and the verdict); feedforward scaffolds get,
per layer, σ₁ of the frozen and of the effective matrix, β, whether the
sufficient contraction condition σ₁ < 1 holds, and the depth analogue of the
Lyapunov exponent (:func:`deepreservoir.analysis.depth_lyapunov`).

What a model learned is counted once, here, for both commands: tensors trained by
gradients, plus tensors fitted in closed form or online (a Ridge readout) and
adapted without targets (intrinsic plasticity), over the elements of the dense
network (:attr:`deepreservoir.footprint.Footprint.dense`); see :func:`learned`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from deepreservoir.kinds import ClosedForm, Gated, Online, Stateful, Unsupervised

__all__ = ["DENSE_SHARE", "Learned", "ModelReport", "betas", "experiment_grid_text",
           "footprint_text", "learned", "lottalora_grid_text", "model_report"]

#: What every "% trained" of the command line is a percentage of.
DENSE_SHARE = "% of the dense network's parameters"


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


class Learned:
    """What a model learned, from its footprint: trained, fitted and adapted elements.

    Attributes
    ----------
    trained : int
        Elements trained by gradients (``Footprint.trainable``).
    fitted : dict[str, int]
        Elements of closed-form or online nodes (Ridge, RLS, ...), by node name.
    adapted : dict[str, int]
        Elements adapted without targets (intrinsic plasticity), by node name.
    dense : int
        Elements of the dense network (``Footprint.dense``).
    kinds : dict[str, str]
        Class name of every node in ``fitted`` and ``adapted``.
    """

    def __init__(self, trained: int, fitted: dict[str, int], adapted: dict[str, int],
                 dense: int, kinds: dict[str, str]):
        self.trained = trained
        self.fitted = fitted
        self.adapted = adapted
        self.dense = dense
        self.kinds = kinds

    @property
    def total(self) -> int:
        """Trained, fitted and adapted elements together."""
        return self.trained + sum(self.fitted.values()) + sum(self.adapted.values())

    @property
    def percent(self) -> float:
        """:attr:`total` as a percentage of the dense network's elements (:data:`DENSE_SHARE`)."""
        return 100 * self.total / self.dense if self.dense else 0.0

    def _part(self, verb: str, counts: dict[str, int], suffix: str) -> str:
        kinds = list(dict.fromkeys(self.kinds[name] for name in counts))
        return f"{verb} {sum(counts.values()):,} ({', '.join(kinds)}{suffix})"

    def __str__(self) -> str:
        parts = []
        if self.adapted:
            parts.append(self._part("adapted", self.adapted, ""))
        if self.fitted:
            parts.append(self._part("fitted", self.fitted, " readout"))
        parts.append(f"trained {self.trained:,}")
        return (f"learned: {' + '.join(parts)} of {self.dense:,} = {self.percent:.2f} "
                f"{DENSE_SHARE}")


def learned(model, footprint=None) -> Learned:
    """What ``model`` learned, counted from its footprint (the one definition of "% trained").

    Closed-form and online nodes store their fitted tensors as buffers that
    require no gradient, so ``Footprint.trainable`` leaves them out; they are
    learned from data all the same, and counted here as *fitted* (their stored
    elements). Unsupervised nodes' stored elements are counted as *adapted*.

    Parameters
    ----------
    model : Model
        A built model.
    footprint : Footprint, optional
        ``model.footprint()`` (or of a saved artifact), if already computed.

    An online node counts only its readout (``Online.fitted_elements``: ``Wout`` and
    the bias), not its learner's working state such as RLS's P matrix.
    """
    fp = model.footprint() if footprint is None else footprint
    fitted: dict[str, int] = {}
    adapted: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for name, node in getattr(model, "nodes", {}).items():
        row = fp.per_node.get(name)
        if row is None:
            continue
        extra = row["stored"] - row["trainable"]
        if extra <= 0:
            continue
        if isinstance(node, Online) and node.fitted_elements() is not None:
            fitted[name] = node.fitted_elements()
        elif isinstance(node, (ClosedForm, Online)):
            fitted[name] = extra
        elif isinstance(node, Unsupervised):
            adapted[name] = extra
        else:
            continue
        kinds[name] = type(node).__name__
    return Learned(fp.trainable, fitted, adapted, fp.dense, kinds)


def footprint_text(model, path: Any = None) -> str:
    """The footprint table of ``model``: per node, trainable, fitted, frozen and stored
    elements; what the model learned (:func:`learned`); stored bytes against the dense
    checkpoint (measured on disk when ``path``, a saved artifact of it, is given)."""
    fp = model.footprint() if path is None else model.footprint(path)
    found = learned(model, fp)
    extra = {**found.fitted, **found.adapted}
    lines = [f"{'node':<20}{'trainable':>12}{'fitted':>12}{'frozen':>12}{'stored':>12}"]
    for name, row in fp.per_node.items():
        lines.append(f"{name:<20}{row['trainable']:>12,}{extra.get(name, 0):>12,}"
                     f"{row['frozen']:>12,}{row['stored']:>12,}")
    lines.append(f"{'total':<20}{fp.trainable:>12,}{sum(extra.values()):>12,}"
                 f"{fp.frozen:>12,}{fp.stored:>12,}")
    lines.append(str(found))
    how = "on disk" if fp.measured else "estimated"
    lines.append(f"bytes ({how}): {fp.stored_bytes:,} vs dense {fp.dense_bytes:,} "
                 f"({100 * fp.bytes_ratio:.2f} %)")
    return "\n".join(lines)


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
                 footprint: bool = True, esp_maxiter: int = 100,
                 path: Any = None) -> ModelReport:
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
        Include the footprint (:func:`footprint_text`).
    esp_maxiter : int
        Iterations of the Buehner–Young search in :func:`~deepreservoir.analysis.check_esp`
        (fewer is faster and gives a looser, still valid, bound).
    path : str or Path, optional
        The saved artifact ``model`` was loaded from: the footprint's bytes are then
        measured on disk.

    Returns
    -------
    ModelReport
    """
    from deepreservoir import analysis

    lines = [f"== {title} =="]
    results: dict[str, xr.Dataset] = {}
    if footprint:
        lines += [footprint_text(model, path), ""]
    gates = betas(model)
    spectra = analysis.spectra(model)
    results["spectra"] = spectra
    if _has_recurrence(model):
        esp = analysis.check_esp(model, inputs=inputs, maxiter=esp_maxiter)
        results["esp"] = esp
        # one reservoir: its verdict is the model's, printed once, on the last line
        per_layer = esp.sizes["layer"] > 1
        lines.append(f"{'reservoir':<14}{'rho':>8}{'sigma_max':>11}{'rho(|W|)':>10}"
                     f"{'B-Y bound':>11}{'leaky rho':>11}" + ("  verdict" if per_layer else ""))
        for i, layer in enumerate(esp["layer"].values):
            lines.append(
                f"{layer!s:<14}{_fmt(float(esp['rho'][i])):>8}"
                f"{_fmt(float(esp['sigma_max'][i])):>11}{_fmt(float(esp['rho_abs'][i])):>10}"
                f"{_fmt(float(esp['diagonal_scaling_bound'][i])):>11}"
                f"{_fmt(float(esp['leaky_rho'][i])):>11}"
                + (f"  {esp['verdict'].values[i]}" if per_layer else ""))
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


def lottalora_grid_text(merged) -> str:
    """The LottaLoRA grid's mean test accuracy per preset, family and rank (lines)."""
    lines = []
    accuracy = merged["test_accuracy"].mean("seed")
    for preset in merged["preset"].values:
        full = ""
        if "full_test_accuracy" in merged:
            value = float(merged["full_test_accuracy"].sel(preset=preset).mean())
            full = f", full training {value:.3f}"
        lines.append(f"{preset}{full}")
        for family in merged["family"].values:
            values = accuracy.sel(preset=preset, family=family).values
            cells = "  ".join(f"r={int(r)}: {v:.3f}" for r, v in zip(merged["rank"].values,
                                                                      values, strict=True))
            lines.append(f"  {family:<20} {cells}")
    return "\n".join(lines)


def experiment_grid_text(merged, best: int = 5) -> str:
    """An experiment grid's metric (mean over seeds) at its ``best`` cells, best first."""
    metric, direction = merged.attrs["metric"], merged.attrs["direction"]
    axes = [d for d in merged[metric].dims if d != "seed"]
    if not axes:  # seeds only
        values = merged[metric].values
        return (f"{metric} over {merged.sizes['seed']} seeds: mean {float(values.mean()):.4g}, "
                f"min {float(values.min()):.4g}, max {float(values.max()):.4g}")
    table = merged[metric].mean("seed").to_series().dropna()
    table = table.sort_values(ascending=direction == "minimize")
    lines = [f"{metric} (mean over {merged.sizes['seed']} seeds, {direction}d), best "
             f"{min(best, len(table))} of {len(table)} cells:"]
    for index, value in table.head(best).items():
        index = index if isinstance(index, tuple) else (index,)
        point = ", ".join(f"{a} = {v}" for a, v in zip(axes, index, strict=True))
        lines.append(f"  {value:.4g}   {point}")
    return "\n".join(lines)
