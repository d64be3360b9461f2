r"""Lyapunov exponents along time (Benettin) and the log-growth of Jacobian products along depth.

Time
----
For a map :math:`x_t = \Phi_t(x_{t-1})` with Jacobians
:math:`J_t = \partial x_t / \partial x_{t-1}`, the first ``k`` Lyapunov
exponents are (Benettin et al. 1980, with QR re-orthonormalisation)

.. math::

    Q_0 \text{ random orthonormal } (n, k), \qquad
    J_t Q_{t-1} = Q_t R_t, \qquad
    \lambda_i = \frac{1}{T\,\Delta t} \sum_{t=1}^{T} \log |(R_t)_{ii}|.

With ``k = 1`` this is the classic renormalised tangent vector:
:math:`\lambda_1 = \frac{1}{T} \sum_t \log \|J_t v_{t-1}\|`,
:math:`v_t = J_t v_{t-1} / \|J_t v_{t-1}\|`.

For a leaky reservoir :math:`x_t = (1-a)x_{t-1} + a f(W x_{t-1} + d_t)` the
Jacobian is exact: :math:`J_t = (1-a)I + a\,\mathrm{diag}(f'(\mathrm{pre}_t))\,W`
(:func:`deepreservoir.functional.reservoir_jacobian`), evaluated along the
trajectory computed by :func:`deepreservoir.functional.run_reservoir`.

Depth
-----
For a feedforward chain :math:`h_l = f_l(W_l h_{l-1} + b_l)`, the Jacobian of a
layer is :math:`J_l = \mathrm{diag}(f_l'(\mathrm{pre}_l))\,W_l` (rectangular in
general). A random unit tangent vector is pushed through the chain and
renormalised at each layer; the per-layer log-growth
:math:`g_l = \log \|J_l v_{l-1}\|` averaged over input samples, and its mean
over layers (the depth analogue of the maximal exponent), are reported together
with :math:`\sigma_1(W_l)` and :math:`\rho(W_l)`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.analysis._common import (
    ELEMENTWISE,
    Layer,
    as_tensor,
    check_finite,
    check_int,
    check_real,
    find_layers,
    make_attrs,
    recurrent_layer_drives,
)
from deepreservoir.analysis.spectra import _radius_of
from deepreservoir.errors import DataError, ParameterError
from deepreservoir.spectral import DENSE_LIMIT

__all__ = ["benettin", "depth_lyapunov", "lyapunov_exponents"]


def _orthonormal(n: int, k: int, seed: int, like: Tensor) -> Tensor:
    generator = torch.Generator().manual_seed(int(seed))
    random = torch.randn(n, k, generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(random)
    return q.to(device=like.device, dtype=like.dtype)


def _qr(z: Tensor) -> tuple[Tensor, Tensor]:
    """Reduced QR. On the CPU through numpy's LAPACK: for the small (n, k) blocks of
    a Benettin step, torch's threaded QR costs ~10x more in dispatch than the work."""
    if z.device.type == "cpu":
        q, r = np.linalg.qr(z.detach().numpy())
        return torch.from_numpy(q), torch.from_numpy(r)
    return torch.linalg.qr(z)


def _qr_benettin(jacobians: Iterable[Tensor], q: Tensor, warmup: int,
                 dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Accumulate log|diag R| over the Jacobian sequence after ``warmup`` steps.

    Returns the exponents (k,) and the running estimate of the first one (T,).
    """
    k = q.shape[1]
    total = torch.zeros(k, dtype=torch.float64, device=q.device)
    running = []
    first = 0.0
    counted = 0
    for index, jacobian in enumerate(jacobians):
        z = jacobian @ q
        if k == 1:
            norm = torch.linalg.vector_norm(z)
            q = z / norm
            logs = torch.log(norm).reshape(1)
        else:
            q, r = _qr(z)
            logs = torch.log(torch.diagonal(r).abs())
        if index < warmup:
            continue
        total += logs.to(torch.float64)
        counted += 1
        first += float(logs[0])
        running.append(first / (counted * dt))
    if counted == 0:
        return np.full(k, np.nan), np.zeros(0)
    exponents = (total / (counted * dt)).cpu().numpy()
    return exponents, np.asarray(running)


def _check_options(owner: str, steps: Any, warmup: Any, n_exponents: Any, seed: Any,
                   dt: Any = 1.0) -> tuple[int, int, int, int, float]:
    return (check_int(steps, "steps", owner, low=1), check_int(warmup, "warmup", owner, low=0),
            check_int(n_exponents, "n_exponents", owner, low=1),
            check_int(seed, "seed", owner, low=0),
            check_real(dt, "dt", owner, 0.0, None, closed="neither"))


def benettin(step: Callable[[Tensor, int], Tensor], jacobian: Callable[[Tensor, int], Tensor],
             x0: Any, steps: int, *, n_exponents: int = 1, warmup: int = 0, dt: float = 1.0,
             seed: int = 0) -> xr.Dataset:
    r"""Lyapunov exponents of any map from its step and its Jacobian (Benettin, QR).

    Parameters
    ----------
    step : callable ``(x, t) -> x_next``
        One step of the map; ``x`` is a Tensor of shape (n,).
    jacobian : callable ``(x, t) -> J``
        :math:`\partial\,\mathrm{step}(x, t) / \partial x`, a Tensor (n, n), at the
        state *before* the step.
    x0 : array_like, shape (n,)
        Initial state.
    steps : int
        Steps averaged (after ``warmup``).
    n_exponents : int
        How many exponents (QR when more than 1).
    warmup : int
        Steps run first, aligning the tangent vectors, and not averaged.
    dt : float
        Time per step (exponents are per unit time).
    seed : int
        Seed of the initial tangent vectors.

    Returns
    -------
    xarray.Dataset
        ``exponents`` (exponent), sorted descending, and ``running``
        (time): the running estimate of the first exponent.
        ``attrs["kind"] = "lyapunov"``.

    Examples
    --------
    The logistic map at r = 4 has exponent ln 2:

    >>> import torch
    >>> result = benettin(lambda x, t: 4 * x * (1 - x),
    ...                   lambda x, t: (4 - 8 * x).reshape(1, 1),
    ...                   [0.3], steps=20000, warmup=100)
    >>> abs(float(result.exponents[0]) - 0.6931) < 0.03
    True
    """
    owner = "benettin"
    steps, warmup, n_exponents, seed, dt = _check_options(owner, steps, warmup, n_exponents,
                                                          seed, dt)
    x = check_finite(as_tensor(x0, "x0", owner).reshape(-1), "x0", owner)
    if n_exponents > x.numel():
        raise ParameterError(
            f"The 'n_exponents' parameter of {owner} must be <= the state size {x.numel()}. "
            f"Got {n_exponents}."
        )
    q = _orthonormal(x.numel(), n_exponents, seed, x)

    def jacobians():
        nonlocal x
        for t in range(warmup + steps):
            jac = torch.as_tensor(jacobian(x, t), dtype=x.dtype, device=x.device)
            x = torch.as_tensor(step(x, t), dtype=x.dtype, device=x.device).reshape(-1)
            yield jac.reshape(x.numel(), x.numel())

    exponents, running = _qr_benettin(jacobians(), q, warmup, dt)
    return _lyapunov_dataset(["map"], [exponents], [running], make_attrs(
        "lyapunov", "benettin-qr", steps=steps, warmup=warmup, n_exponents=n_exponents, dt=dt,
        seed=seed))


def _lyapunov_dataset(names: list[str], exponents: list[np.ndarray],
                      running: list[np.ndarray], attrs: dict) -> xr.Dataset:
    k = max(e.size for e in exponents)
    steps = max(r.size for r in running)
    values = np.full((len(names), k), np.nan)
    trace = np.full((len(names), steps), np.nan)
    for i, (e, r) in enumerate(zip(exponents, running, strict=True)):
        values[i, : e.size] = np.sort(e)[::-1]
        trace[i, : r.size] = r
    data = xr.Dataset(
        {"exponents": (("layer", "exponent"), values), "running": (("layer", "time"), trace)},
        coords={"layer": names, "exponent": np.arange(1, k + 1), "time": np.arange(1, steps + 1)},
        attrs=attrs)
    if names == ["map"]:
        data = data.isel(layer=0, drop=True)
    return data


def lyapunov_exponents(target: Any, *, inputs: Any = None, steps: int = 1000,
                       warmup: int = 100, n_exponents: int = 1, seed: int = 0,
                       lr: float = 1.0, activation: str = "tanh") -> xr.Dataset:
    r"""Lyapunov exponents along time of each reservoir, driven by an input.

    The trajectory is computed once with
    :func:`deepreservoir.functional.run_reservoir` from the zero state; the
    pre-activations :math:`\mathrm{pre}_t = W x_{t-1} + d_t` give the exact
    Jacobians :math:`J_t = (1-a)I + a\,\mathrm{diag}(f'(\mathrm{pre}_t))\,W`
    (:func:`deepreservoir.functional.reservoir_jacobian`), fed to the
    Benettin–QR recursion (see the module docstring).

    Parameters
    ----------
    target : Model, Reservoir node, or Tensor/ndarray (N, N)
    inputs : array_like, optional
        For a model or node: its external input, (T,) or (T, F) with
        ``T = warmup + steps`` (default i.i.d. uniform on [-1, 1] from ``seed``).
        For a bare matrix: the drive (T, N) (default zeros).
    steps, warmup : int
        Steps averaged, after ``warmup`` steps that are not.
    n_exponents : int
        Number of exponents (QR when more than 1).
    seed : int
    lr, activation :
        Leak rate and activation of a bare matrix.

    Returns
    -------
    xarray.Dataset
        ``exponents`` (layer, exponent), descending, per step; ``running``
        (layer, time), the running estimate of the largest.
        ``attrs["kind"] = "lyapunov"``.
    """
    owner = "lyapunov_exponents"
    steps, warmup, n_exponents, seed, _ = _check_options(owner, steps, warmup, n_exponents,
                                                         seed)
    lr = check_real(lr, "lr", owner, 0.0, 1.0, closed="right")
    total = warmup + steps
    layers, drives = recurrent_layer_drives(target, inputs, total, seed, lr=lr,
                                            activation=activation, owner=owner)
    exponents, running = [], []
    for layer in layers:
        drive = drives[layer.name]
        if drive.shape[0] <= warmup:
            raise ParameterError(
                f"The 'warmup' parameter of {owner} must be smaller than the input length "
                f"{drive.shape[0]}. Got {warmup}."
            )
        e, r = _reservoir_exponents(layer, drive, n_exponents, warmup, seed)
        exponents.append(e)
        running.append(r)
    return _lyapunov_dataset([layer.name for layer in layers], exponents, running, make_attrs(
        "lyapunov", "benettin-qr, exact leaky Jacobian", steps=steps, warmup=warmup,
        n_exponents=n_exponents, seed=seed))


def _reservoir_exponents(layer: Layer, drive: Tensor, n_exponents: int, warmup: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
    W = layer.weight.to(torch.float64)
    n = W.shape[0]
    if n_exponents > n:
        raise ParameterError(
            f"The 'n_exponents' parameter of lyapunov_exponents must be <= the reservoir "
            f"size {n} of layer '{layer.name}'. Got {n_exponents}."
        )
    drive = drive.to(device=W.device, dtype=W.dtype)
    activation = F.get_activation(layer.activation)
    start = torch.zeros(1, n, dtype=W.dtype, device=W.device)
    with torch.no_grad():
        states, _ = F.run_reservoir(start, drive[None], W, layer.lr, activation)
        previous = torch.cat([start, states[0, :-1]])
        pre = F.recurrent_matmul(previous, W) + drive
    q = _orthonormal(n, n_exponents, seed, W)
    jacobians = (F.reservoir_jacobian(pre[t], W, layer.lr, layer.activation)
                 for t in range(pre.shape[0]))
    return _qr_benettin(jacobians, q, warmup, 1.0)


def depth_lyapunov(target: Any, inputs: Any = None, *, n_samples: int = 256, seed: int = 0,
                   activation: str = "tanh") -> xr.Dataset:
    r"""Per-layer log-growth of the Jacobian product through a feedforward chain.

    For :math:`h_l = f_l(W_l h_{l-1} + b_l)`, with
    :math:`J_l = \mathrm{diag}(f_l'(\mathrm{pre}_l))\,W_l` and a random unit
    tangent vector :math:`v_0` per sample,

    .. math::

        g_l = \log \|J_l v_{l-1}\|, \qquad v_l = J_l v_{l-1} / \|J_l v_{l-1}\|,

    averaged over samples; the mean over layers :math:`\bar g = \frac1L \sum_l g_l`
    is :math:`\frac1L \log \|J_L \cdots J_1 v_0\|`.

    Parameters
    ----------
    target : sequence of matrices, of ``(W, activation)`` pairs, or of nodes; or a Model
        Layer ``l`` maps ``d_{l-1}`` to ``d_l`` features, ``W_l`` of shape
        (d_l, d_{l-1}). Nodes use ``effective_weight()`` when they have it
        (LoRA scaffolds), else ``W_``; their ``bias_`` is added.
    inputs : array_like, shape (n_samples, d_0), optional
        Input samples (default i.i.d. standard normal from ``seed``).
    n_samples : int
        Number of default samples.
    seed : int
    activation : str
        Activation of bare matrices.

    Returns
    -------
    xarray.Dataset
        Per layer: ``growth`` (mean g_l), ``growth_std`` (over samples),
        ``sigma_max`` (σ₁(W_l)), ``rho`` (ρ(W_l), NaN if rectangular).
        ``attrs``: ``kind="depth_lyapunov"``, ``mean_growth`` (:math:`\bar g`).
    """
    owner = "depth_lyapunov"
    n_samples = check_int(n_samples, "n_samples", owner, low=1)
    seed = check_int(seed, "seed", owner, low=0)
    if activation not in ELEMENTWISE:
        raise ParameterError(
            f"The 'activation' parameter of {owner} must be one of {', '.join(ELEMENTWISE)}. "
            f"Got {activation!r}."
        )
    if isinstance(target, (Tensor, np.ndarray)) and np.ndim(target) == 2:
        target = [target]
    layers = find_layers(target, owner, activation=activation)
    for previous, layer in itertools.pairwise(layers):
        if layer.weight.shape[1] != previous.weight.shape[0]:
            raise DataError(
                f"The layers passed to {owner} do not chain: '{previous.name}' outputs "
                f"{previous.weight.shape[0]} features but '{layer.name}' takes "
                f"{layer.weight.shape[1]}."
            )
    device = layers[0].weight.device
    width = layers[0].weight.shape[1]
    generator = torch.Generator().manual_seed(seed)
    if inputs is None:
        h = torch.randn(n_samples, width, generator=generator, dtype=torch.float64)
    else:
        h = check_finite(as_tensor(inputs, "inputs", owner), "inputs", owner)
        if h.ndim != 2 or h.shape[1] != width:
            raise DataError(
                f"The 'inputs' argument of {owner} must have shape (n_samples, {width}). "
                f"Got shape {tuple(h.shape)}."
            )
    h = h.to(device=device, dtype=torch.float64)
    v = torch.randn(h.shape[0], width, generator=generator, dtype=torch.float64).to(device)
    v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
    growth, spread, sigma, rho = [], [], [], []
    with torch.no_grad():
        for layer in layers:
            if layer.activation not in ELEMENTWISE:
                raise ParameterError(
                    f"The activation of layer '{layer.name}' must be elementwise "
                    f"({', '.join(ELEMENTWISE)}) for a Jacobian. Got {layer.activation!r}."
                )
            W = layer.weight.to(device=device, dtype=torch.float64)
            bias = None if layer.bias is None else layer.bias.to(device, torch.float64)
            pre = h @ W.T if bias is None else h @ W.T + bias
            slope = F.activation_derivative(layer.activation, pre)
            z = slope * (v @ W.T)  # J_l v = diag(f'(pre)) W v, for every sample at once
            norms = torch.linalg.vector_norm(z, dim=1)
            logs = torch.log(norms)
            growth.append(float(logs.mean()))
            spread.append(float(logs.std()) if logs.numel() > 1 else 0.0)
            v = z / norms[:, None]
            h = F.get_activation(layer.activation)(pre)
            sigma.append(float(torch.linalg.matrix_norm(W, ord=2)))
            rho.append(_radius_of(W, "auto", DENSE_LIMIT)[0]
                       if W.shape[0] == W.shape[1] else float("nan"))
    mean_growth = float(np.mean(growth))
    return xr.Dataset(
        {"growth": ("layer", growth), "growth_std": ("layer", spread),
         "sigma_max": ("layer", sigma), "rho": ("layer", rho)},
        coords={"layer": [layer.name for layer in layers]},
        attrs=make_attrs("depth_lyapunov", "renormalised tangent vector per sample",
                         mean_growth=mean_growth, n_samples=int(h.shape[0]), seed=seed))
