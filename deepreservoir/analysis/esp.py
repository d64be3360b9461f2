r"""Echo state property: sufficient and necessary conditions, an empirical test, a verdict.

A reservoir ``x[t] = (1 − a)·x[t−1] + a·f(W x[t−1] + d[t])`` with an activation
whose slope is in [0, 1] (tanh, relu, sigmoid, identity) has the *echo state
property* (ESP) when two trajectories driven by the same input converge,
whatever their initial states.

Sufficient conditions (each guarantees the ESP for every input):

* :math:`\sigma_{\max}(W) < 1` — the update is a contraction in the 2-norm,
  with Lipschitz constant at most :math:`(1 - a) + a\,\sigma_{\max}(W)`;
* :math:`\rho(|W|) < 1` (``|W|`` elementwise), and its leaky form
  :math:`\rho(a|W| + (1 - a)I) = (1 - a) + a\,\rho(|W|) < 1`;
* Buehner & Young: :math:`\inf_D \sigma_{\max}(D W D^{-1}) < 1` over positive
  diagonal ``D``. We minimise over ``log D`` with L-BFGS, starting from the
  Perron scaling :math:`d_i = \sqrt{y_i / x_i}` of ``|W|`` (which already
  achieves :math:`\sigma_{\max}(D|W|D^{-1}) = \rho(|W|)`), so the bound found
  is never worse than the other two. Any ``D`` is a certificate, so the best
  ``D`` found is reported and the bound is an upper bound of the infimum.

Necessary conditions (for inputs that include 0):

* :math:`\rho(W) < 1` and the leaky form :math:`\rho(aW + (1 - a)I) < 1`;
* for a deep chain (Gallicchio & Micheli 2017),
  :math:`\max_l \rho((1 - a_l)I + a_l \hat W_l) < 1`.

Necessary is not sufficient: Yildiz, Jaeger & Kiebel (2012) give small
networks with ρ < 1 and no ESP; and with non-zero input the ESP can hold at
ρ > 1. So the verdict comes from the conditions *and* an empirical test:
``M`` random initial states plus the zero state are driven by the same input
(one batched call to :func:`deepreservoir.functional.run_reservoir`), and the
slope of :math:`\log \max_{i<j} \|x_i(t) - x_j(t)\|` over time is fitted.

Verdicts, per layer:

``"guaranteed"``
    a sufficient condition holds (never from necessary conditions alone);
``"violated"``
    a necessary condition fails *and* the trajectories did not contract on
    this input; the explanation names the condition that fails;
``"empirically contracting on this input"``
    no sufficient condition holds, but the trajectories contracted to ``tol``;
    evidence for this input only;
``"not contracting on this input"``
    the necessary conditions hold but the trajectories did not converge within
    ``steps`` (the Yildiz–Jaeger–Kiebel situation, or a slow contraction:
    raise ``steps`` to tell them apart).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse.linalg
import torch
import xarray as xr
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.analysis._common import (
    Layer,
    as_tensor,
    check_int,
    check_real,
    make_attrs,
    recurrent_layer_drives,
)
from deepreservoir.analysis.spectra import _radius_of
from deepreservoir.errors import DataError
from deepreservoir.spectral import DENSE_LIMIT

__all__ = [
    "CONTRACTING",
    "GUARANTEED",
    "NOT_CONTRACTING",
    "VIOLATED",
    "check_esp",
    "contraction_test",
    "diagonal_scaling_bound",
]

GUARANTEED = "guaranteed"
VIOLATED = "violated"
CONTRACTING = "empirically contracting on this input"
NOT_CONTRACTING = "not contracting on this input"
_SEVERITY = {GUARANTEED: 0, CONTRACTING: 1, NOT_CONTRACTING: 2, VIOLATED: 3}


# ------------------------------------------------------------ diagonal scaling
def _top_singular(matrix: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    n = min(matrix.shape)
    if n <= 128:
        u, s, vt = np.linalg.svd(matrix)
        return float(s[0]), u[:, 0], vt[0]
    u, s, vt = scipy.sparse.linalg.svds(matrix, k=1, which="LM", tol=1e-9,
                                        v0=np.ones(matrix.shape[1]), solver="arpack")
    return float(s[0]), u[:, 0], vt[0]


def _perron_log_scaling(absolute: np.ndarray) -> np.ndarray | None:
    """log d with d_i = sqrt(y_i / x_i) from the Perron vectors of a non-negative matrix."""
    values, right = np.linalg.eig(absolute)
    values_l, left = np.linalg.eig(absolute.T)
    x = np.abs(np.real(right[:, np.argmax(np.real(values))]))
    y = np.abs(np.real(left[:, np.argmax(np.real(values_l))]))
    if np.any(x <= 1e-300) or np.any(y <= 1e-300):
        return None  # reducible: the Perron vectors have zeros
    log_d = 0.5 * (np.log(y) - np.log(x))
    return log_d - log_d.mean()


def diagonal_scaling_bound(matrix: Any, *, maxiter: int = 100,
                           tol: float = 1e-10) -> tuple[float, np.ndarray]:
    r"""Buehner–Young bound :math:`\inf_D \sigma_{\max}(D W D^{-1})` over positive diagonal D.

    Minimises :math:`g(s) = \sigma_{\max}(e^{S} W e^{-S})`, ``S = diag(s)``,
    with L-BFGS. With ``u, v`` the top singular vectors of
    :math:`M = e^{S} W e^{-S}`, the gradient is
    :math:`\partial g / \partial s_k = \sigma (u_k^2 - v_k^2)`.
    The start is the better of ``s = 0`` and the Perron scaling of ``|W|``,
    so the result is at most :math:`\min(\sigma_{\max}(W), \rho(|W|))`; it is
    at least :math:`\rho(W)` since a similarity keeps the eigenvalues.

    Parameters
    ----------
    matrix : array_like, shape (N, N)
    maxiter : int
        L-BFGS iterations.
    tol : float
        L-BFGS gradient tolerance.

    Returns
    -------
    bound : float
        :math:`\sigma_{\max}(D W D^{-1})` for the best ``D`` found (recomputed
        with a dense SVD, so it is a certificate: bound < 1 guarantees the ESP).
    d : ndarray, shape (N,)
        The diagonal of the best ``D`` (normalised to geometric mean 1).
    """
    owner = "diagonal_scaling_bound"
    maxiter = check_int(maxiter, "maxiter", owner, low=0)
    tol = check_real(tol, "tol", owner, 0.0, None, closed="neither")
    W = as_tensor(matrix, "matrix", owner).cpu().numpy()
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise DataError(
            f"The 'matrix' argument of {owner} must be a square matrix (N, N). "
            f"Got shape {W.shape}."
        )
    if not np.all(np.isfinite(W)):
        raise DataError(f"The 'matrix' argument of {owner} must be finite.")
    n = W.shape[0]
    if n == 0:
        return 0.0, np.ones(0)

    def objective(s: np.ndarray) -> tuple[float, np.ndarray]:
        scaled = np.exp(s)[:, None] * W * np.exp(-s)[None, :]
        sigma, u, v = _top_singular(scaled)
        return sigma, sigma * (u**2 - v**2)

    starts = [np.zeros(n)]
    perron = _perron_log_scaling(np.abs(W)) if n <= DENSE_LIMIT else None
    if perron is not None:
        starts.append(perron)
    start = min(starts, key=lambda s: objective(s)[0])
    best = start
    if maxiter > 0 and n > 1:
        result = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                         options={"maxiter": maxiter, "gtol": tol})
        if objective(result.x)[0] < objective(start)[0]:
            best = result.x
    best = best - best.mean()
    d = np.exp(best)
    certified = float(np.linalg.svd(d[:, None] * W / d[None, :], compute_uv=False)[0]) \
        if n <= DENSE_LIMIT else objective(best)[0]
    return certified, d


# ------------------------------------------------------------ empirical test
def contraction_test(W: Tensor, drive: Tensor, lr: float, activation: str, *,
                     n_states: int = 8, scale: float = 1.0, tol: float = 1e-6,
                     seed: int = 0, floor: float = 1e-12) -> dict[str, Any]:
    r"""Drive ``n_states`` random initial states and the zero state with one input.

    Initial states are i.i.d. uniform on ``[-scale, scale]``. The batch of
    ``n_states + 1`` trajectories runs in one call to
    :func:`deepreservoir.functional.run_reservoir`. With
    :math:`D(t) = \max_{i<j} \|x_i(t) - x_j(t)\|`, the rate is the
    least-squares slope of :math:`\log D(t)` against ``t`` over the steps
    before ``D`` first falls below ``floor`` (where rounding takes over).

    Parameters
    ----------
    W : Tensor, shape (N, N)
    drive : Tensor, shape (T, N)
        ``Win·u[t] + b`` for every step.
    lr : float
    activation : str
    n_states : int
    scale : float
    tol : float
        Distance that counts as converged.
    seed : int
    floor : float

    Returns
    -------
    dict
        ``distance`` (T,) ndarray, ``rate`` (per step; negative contracts),
        ``time_to_tolerance`` (steps, NaN if never), ``final_distance``,
        ``contracting`` (bool: D reached ``tol``).
    """
    n = W.shape[0]
    generator = torch.Generator().manual_seed(int(seed))
    random = (2.0 * torch.rand(n_states, n, generator=generator, dtype=torch.float64) - 1.0)
    initial = torch.cat([random * scale, torch.zeros(1, n, dtype=torch.float64)])
    initial = initial.to(device=W.device, dtype=W.dtype)
    batch = drive.to(W.dtype)[None].expand(n_states + 1, -1, -1)
    with torch.no_grad():
        states, _ = F.run_reservoir(initial, batch, W, lr, F.get_activation(activation))
        by_time = states.transpose(0, 1)  # (T, B, N)
        distance = torch.cdist(by_time, by_time).amax(dim=(1, 2)).cpu().numpy()
    steps = np.arange(1, distance.size + 1)
    below_floor = np.flatnonzero(distance <= floor)
    stop = below_floor[0] if below_floor.size else distance.size
    rate = float("nan")
    if stop >= 2:
        rate = float(np.polyfit(steps[:stop], np.log(distance[:stop]), 1)[0])
    reached = np.flatnonzero(distance <= tol)
    time_to_tol = float(steps[reached[0]]) if reached.size else float("nan")
    return {"distance": distance, "rate": rate, "time_to_tolerance": time_to_tol,
            "final_distance": float(distance[-1]) if distance.size else float("nan"),
            "contracting": bool(reached.size)}


# ------------------------------------------------------------------ verdict
def _verdict(c: dict[str, Any], steps: int) -> tuple[str, str]:
    sufficient = []
    if c["sigma_max"] < 1:
        sufficient.append(f"σ_max(W) = {c['sigma_max']:.4g} < 1")
    if c["rho_abs"] < 1:
        sufficient.append(f"ρ(|W|) = {c['rho_abs']:.4g} < 1")
    elif c["leaky_rho_abs"] < 1:
        sufficient.append(f"ρ(a|W| + (1−a)I) = {c['leaky_rho_abs']:.4g} < 1")
    if c["diagonal_scaling_bound"] < 1:
        sufficient.append(f"σ_max(DWD⁻¹) = {c['diagonal_scaling_bound']:.4g} < 1 for the "
                          f"reported D (Buehner–Young)")
    failed = []
    if c["rho"] >= 1:
        failed.append(f"ρ(W) = {c['rho']:.4g} ≥ 1")
    if c["leaky_rho"] >= 1:
        failed.append(f"ρ(aW + (1−a)I) = {c['leaky_rho']:.4g} ≥ 1 (a = {c['lr']:g})")
    none_sufficient = (f"no sufficient condition holds (σ_max = {c['sigma_max']:.4g}, "
                       f"ρ(|W|) = {c['rho_abs']:.4g}, Buehner–Young bound "
                       f"{c['diagonal_scaling_bound']:.4g})")
    empirical = c["contracting"]
    if empirical:
        run = (f"trajectories from {c['n_states'] + 1} initial states contracted to "
               f"{c['tol']:g} in {c['time_to_tolerance']:.0f} steps (rate "
               f"{c['rate']:.3g} per step)")
    else:
        run = (f"trajectories from {c['n_states'] + 1} initial states did not converge: "
               f"max distance {c['final_distance']:.3g} after {steps} steps (rate "
               f"{c['rate']:.3g} per step)")
    if sufficient:
        return GUARANTEED, "Sufficient: " + "; ".join(sufficient) + f". Empirically, {run}."
    if failed and not empirical:
        return VIOLATED, (
            "Necessary condition violated: " + "; ".join(failed) + ", so the zero input has "
            "more than one response (no ESP for any input set that contains 0); and on this "
            f"input {run}. " + none_sufficient[0].upper() + none_sufficient[1:] + ".")
    if empirical:
        caveat = ("" if not failed else
                  " Note " + "; ".join(failed) + ": the ESP fails for inputs that include 0, "
                  "but it can hold on a non-zero input like this one.")
        return CONTRACTING, (none_sufficient[0].upper() + none_sufficient[1:]
                             + f"; on this input {run}. This is evidence for this input, not a "
                             f"guarantee." + caveat)
    return NOT_CONTRACTING, (
        f"The necessary conditions hold (ρ(W) = {c['rho']:.4g}, ρ(aW + (1−a)I) = "
        f"{c['leaky_rho']:.4g}) but {none_sufficient}, and on this input {run}. Necessary "
        "is not sufficient (Yildiz, Jaeger & Kiebel 2012): the ESP likely fails on this "
        "input; if the rate is negative, more steps may show a slow contraction.")


# ------------------------------------------------------------------ public
def check_esp(target: Any, *, inputs: Any = None, steps: int = 1000, n_states: int = 8,
              scale: float = 1.0, tol: float = 1e-6, seed: int = 0, lr: float = 1.0,
              activation: str = "tanh", maxiter: int = 100) -> xr.Dataset:
    r"""Echo-state-property report for every reservoir of a model, a node or a matrix.

    Parameters
    ----------
    target : Model, Reservoir node, or Tensor/ndarray of shape (N, N)
        A model is walked in topological order; each node with a recurrent
        matrix is one layer, driven by what it receives in a reference run.
    inputs : array_like, shape (T,) or (T, F), optional
        Input of the empirical test. For a model or node: its external input
        (default: ``steps`` i.i.d. uniform values on [-1, 1] per feature, from
        ``seed``). For a bare matrix: the drive ``Win·u[t] + b`` of shape
        (T, N) (default: zeros, the autonomous system).
    steps : int
        Length of the default input.
    n_states : int
        Number of random initial states ``M`` (the zero state is added).
    scale : float
        Initial states are uniform on ``[-scale, scale]``.
    tol : float
        Max pairwise distance that counts as converged.
    seed : int
        Seed of the initial states and of the default input.
    lr, activation :
        Leak rate and activation of a bare matrix (nodes use their own).
    maxiter : int
        Iterations of the Buehner–Young optimisation.

    Returns
    -------
    xarray.Dataset
        dims ``layer``, ``unit`` (the best ``D``), ``time`` (the distance trace).
        Variables per layer: ``sigma_max``, ``rho_abs``, ``leaky_rho_abs``,
        ``diagonal_scaling_bound``, ``diagonal_scaling`` (layer, unit),
        ``rho``, ``leaky_rho``, ``lr``, ``sufficient``, ``necessary``,
        ``contraction_rate``, ``time_to_tolerance``, ``final_distance``,
        ``contracting``, ``distance`` (layer, time), ``verdict`` and
        ``explanation`` (str). ``attrs``: ``kind="esp"``,
        ``deep_esn_radius`` (:math:`\max_l \rho((1-a_l)I + a_l \hat W_l)`),
        ``verdict`` (the worst layer's) and the parameters.

    Raises
    ------
    DataError
        Non-square or non-finite matrix, or inputs of the wrong shape.
    ParameterError
        A model with no reservoir, or a parameter out of range.

    Examples
    --------
    >>> import numpy as np
    >>> report = check_esp(np.diag([0.5, -0.3]), steps=50)
    >>> str(report.verdict.item())
    'guaranteed'
    """
    owner = "check_esp"
    steps = check_int(steps, "steps", owner, low=2)
    n_states = check_int(n_states, "n_states", owner, low=1)
    scale = check_real(scale, "scale", owner, 0.0, None, closed="neither")
    tol = check_real(tol, "tol", owner, 0.0, None, closed="neither")
    seed = check_int(seed, "seed", owner, low=0)
    maxiter = check_int(maxiter, "maxiter", owner, low=0)
    lr = check_real(lr, "lr", owner, 0.0, 1.0, closed="right")
    layers, drives = recurrent_layer_drives(target, inputs, steps, seed, lr=lr,
                                            activation=activation, owner=owner)

    rows = [_layer_report(layer, drives[layer.name], n_states=n_states, scale=scale,
                          tol=tol, seed=seed, maxiter=maxiter) for layer in layers]
    return _assemble(layers, rows, dict(steps=steps, n_states=n_states, scale=scale, tol=tol,
                                        seed=seed, maxiter=maxiter))


def _layer_report(layer: Layer, drive: Tensor, **options: Any) -> dict[str, Any]:
    W = layer.weight.to(torch.float64)
    a = layer.lr
    n = W.shape[0]
    eye = torch.eye(n, dtype=W.dtype, device=W.device)
    report: dict[str, Any] = {"lr": a, "n_states": options["n_states"], "tol": options["tol"]}
    report["sigma_max"] = float(torch.linalg.matrix_norm(W, ord=2)) if n else 0.0
    report["rho"] = _radius_of(W, "auto", DENSE_LIMIT)[0]
    report["leaky_rho"] = _radius_of(a * W + (1 - a) * eye, "auto", DENSE_LIMIT)[0]
    report["rho_abs"] = _radius_of(W.abs(), "auto", DENSE_LIMIT)[0]
    report["leaky_rho_abs"] = _radius_of(a * W.abs() + (1 - a) * eye, "auto", DENSE_LIMIT)[0]
    bound, d = diagonal_scaling_bound(W.cpu(), maxiter=options["maxiter"])
    report["diagonal_scaling_bound"] = bound
    report["diagonal_scaling"] = d
    test = contraction_test(W, drive.to(W.device), a, layer.activation,
                            n_states=options["n_states"], scale=options["scale"],
                            tol=options["tol"], seed=options["seed"])
    report.update(test)
    report["verdict"], report["explanation"] = _verdict(report, len(test["distance"]))
    report["sufficient"] = report["verdict"] == GUARANTEED
    report["necessary"] = report["rho"] < 1 and report["leaky_rho"] < 1
    return report


def _assemble(layers: list[Layer], rows: list[dict[str, Any]],
              params: dict[str, Any]) -> xr.Dataset:
    names = [layer.name for layer in layers]
    units = max(len(r["diagonal_scaling"]) for r in rows)
    steps = max(len(r["distance"]) for r in rows)
    scaling = np.full((len(rows), units), np.nan)
    distance = np.full((len(rows), steps), np.nan)
    for i, r in enumerate(rows):
        scaling[i, : len(r["diagonal_scaling"])] = r["diagonal_scaling"]
        distance[i, : len(r["distance"])] = r["distance"]
    scalar = ("sigma_max", "rho_abs", "leaky_rho_abs", "diagonal_scaling_bound", "rho",
              "leaky_rho", "lr", "time_to_tolerance", "final_distance")
    data: dict[str, Any] = {key: ("layer", [float(r[key]) for r in rows]) for key in scalar}
    data["contraction_rate"] = ("layer", [float(r["rate"]) for r in rows])
    for key in ("sufficient", "necessary", "contracting"):
        data[key] = ("layer", [bool(r[key]) for r in rows])
    data["verdict"] = ("layer", [r["verdict"] for r in rows])
    data["explanation"] = ("layer", [r["explanation"] for r in rows])
    data["diagonal_scaling"] = (("layer", "unit"), scaling)
    data["distance"] = (("layer", "time"), distance)
    deep = max(float(r["leaky_rho"]) for r in rows)
    worst = max((r["verdict"] for r in rows), key=_SEVERITY.__getitem__)
    attrs = make_attrs("esp", "conditions + empirical contraction", deep_esn_radius=deep,
                       verdict=worst, **params)
    return xr.Dataset(data, coords={"layer": names, "unit": np.arange(units),
                                    "time": np.arange(1, steps + 1)}, attrs=attrs)
