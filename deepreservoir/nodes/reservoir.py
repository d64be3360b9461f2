"""The leaky echo state reservoir: a frozen random recurrent layer iterated over time."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir import step_kernels
from deepreservoir.constraints import AnyOf, Interval, OneOf, Predicate, is_array_like
from deepreservoir.errors import ParameterError
from deepreservoir.families import Binary, get_family, make_weight
from deepreservoir.kinds import (
    FrozenWeights,
    Gated,
    GradientTrained,
    LayerView,
    Stateful,
    WeightedLayer,
)
from deepreservoir.lora import LowRankAdapter
from deepreservoir.nodes import _reservoir_specs as S
from deepreservoir.nodes._reservoir_specs import DEFAULT_UNITS, TINY_LEAK, TinyLeakWarning
from deepreservoir.nodes.base import Node
from deepreservoir.seeding import fingerprint
from deepreservoir.spectral import radius, spectral_norm

__all__ = ["DEFAULT_UNITS", "TINY_LEAK", "Reservoir", "TinyLeakWarning"]

class Reservoir(Node, Stateful, FrozenWeights, LowRankAdapter, GradientTrained, Gated,
                WeightedLayer):
    r"""A leaky echo state network reservoir with seeded frozen weights.

    Update rule, for input ``u[t]`` of shape (F,) and state ``x[t]`` of shape (N,):

    .. math::

        x[t] = (1 - \mathrm{lr}) \odot x[t-1] + \mathrm{lr} \odot f(W x[t-1] + W_{in} u[t] + b)

    ``W`` is drawn from its family, masked to ``rc_connectivity`` and rescaled by
    its ``scaling`` rule to the target ``sr`` (by default: spectral radius
    exactly ``sr``); ``Win`` is drawn from its family (default ±1),
    masked to ``input_connectivity`` and multiplied by ``input_scaling``; ``b``
    is drawn from its family and multiplied by ``bias_scaling``. An explicit
    array for ``W``, ``Win`` or ``bias`` (dense, or a scipy.sparse matrix) is
    used as is, as in reservoirpy: ``sr``, ``scaling``, ``rc_connectivity``,
    ``input_scaling``, ``input_connectivity`` and ``bias_scaling`` do not apply to it.

    Shapes: input ``(B, T, F)`` → states ``(B, T, N)``; ``W`` (N, N),
    ``Win`` (N, F), ``bias`` (N,), ``lr`` a float or (N,).

    The first three parameters may be given positionally in reservoirpy's order,
    ``Reservoir(units, lr, sr)``; every other parameter is keyword-only.

    Parameters
    ----------
    units : int, optional
        Number of neurons N. ``None`` (the default) means ``W.shape[0]`` when ``W``
        is an explicit array, else :data:`DEFAULT_UNITS` = 100. Given together
        with an explicit ``W``, it must equal ``W.shape[0]``.
    lr : float in (0, 1], or array of shape (N,) with values in (0, 1]
        Leak rate; an array gives each unit its own rate (as in reservoirpy).
        It is stored with the model and follows the node's dtype and device.
        A rate below ``TINY_LEAK`` = 1e-4 issues a :class:`TinyLeakWarning` (the
        states barely move over a series shorter than ``1/lr`` steps); a rate
        for which ``1 − lr`` rounds to 1 in the node's dtype (float32:
        lr ≤ 2⁻²⁵ ≈ 3e-8, e.g. 1e-12; float64: lr ≤ 2⁻⁵⁴ ≈ 5.6e-17, e.g. 5e-324)
        is refused, at construction and again at build: the leak would have no
        effect and the model would return little but its readout's bias.
    sr : float or None
        Scale target of W for the ``scaling`` rule; ``None`` keeps the family's scale.
        Default 0.9 (reservoirpy: 1.0). Above the dtype's largest value it is
        refused, and a scaled W with an entry that overflows the dtype is refused
        at build.
    scaling : {"spectral_radius", "spectral_norm", "fan_in"} or None
        How W reaches ``sr``. ``"spectral_radius"``: exactly ρ(W) = sr, by an
        eigensolver. ``"spectral_norm"``: exactly σ_max(W) = sr, by an SVD.
        ``"fan_in"``: entries rescaled to mean square sr²/N, so that ρ(W) ≈ sr for
        large N by the circular law, with no eigensolver. ``None``: as ``sr=None``.
    input_scaling : float, or sequence of F floats
        Multiplier of a drawn Win; a sequence scales Win's columns, one scale per
        input feature (its length must equal the input size, checked at build).
    bias_scaling : float
        Multiplier of a drawn bias (0, the default, disables it). Must stay 0 when
        ``bias`` is a number.
    rc_connectivity, input_connectivity : float in (0, 1]
        Density of W and Win.
    W, Win : str, Family, dict, array or scipy.sparse matrix
        Weight family (``"normal"``, ``Cauchy(scale=.2)``, ``{"name": ...}``) or
        explicit matrix, (N, N) and (N, F). A sparse matrix is stored densified.
        An explicit array (and an explicit ``bias``) holding NaN or inf is refused.
        Initialiser functions (reservoirpy's ``mat_gen.normal``) are refused:
        pass the matrix they return, or a family name.
    bias : str, Family, dict, array of shape (N,), or float
        A family (drawn, times ``bias_scaling``), an explicit vector, or a real
        number: reservoirpy's constant bias, the same value for every unit, used
        as is (``bias_scaling`` must then stay 0).
    activation : str or callable
        ``"tanh"`` (default), ``"relu"``, ``"sigmoid"`` or ``"identity"`` (also
        reservoirpy's short names ``"re"``, ``"sig"``, ``"id"``). A callable is
        accepted when it is recognisably one of these (reservoirpy's
        ``activationsfunc.tanh``…, ``np.tanh``, ``torch.tanh``, ``torch.relu``,
        ``torch.sigmoid``, ``torch.nn.functional.relu``…) and stored by name; any
        other callable is refused, because a saved model names its activation
        and the analysis needs its derivative.
    r : int >= 0
        Rank of a LoRA adapter on ``W`` (0: none). With ``r > 0`` the recurrent
        term becomes ``β·W·x + scale·B·(A·x)`` (``W`` is never densified), with
        ``A`` (r, N) Kaiming-uniform from the seed, ``B`` (N, r) = 0 and ``β`` = 1
        trained by backpropagation through time (``Model.fit(..., epochs=...)``).
    alpha : float > 0, optional
        LoRA α; ``None`` means α = r (scale 1).
    rslora : bool
        Scale the adapter by ``α/√r`` instead of ``α/r``.
    seed : int, optional
        Root seed of the frozen weights.
    name : str, optional
    input_dim : int, optional
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.float64``, on every device; float16
        and bfloat16 are refused (see :data:`~deepreservoir.constraints.SUPPORTED_DTYPES`).

    Notes
    -----
    Running never returns NaN or inf silently: a state that overflows (e.g.
    ``activation="identity"`` with ``sr`` > 1) raises a
    :class:`~deepreservoir.errors.DataError` naming the node and the first
    non-finite step; ``deepreservoir.finite_check(False)`` turns the check off.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> reservoir = dr.Reservoir(50, sr=0.9, lr=0.3, seed=1)
    >>> states = reservoir.run(np.sin(np.linspace(0, 6, 100))[:, None])
    >>> states.shape
    (100, 50)
    >>> dr.Reservoir(seed=1).units  # units defaults to DEFAULT_UNITS
    100
    >>> reservoir = dr.Reservoir(20, 0.3, 0.8)  # units, lr, sr: reservoirpy's order
    >>> reservoir.lr, reservoir.sr
    (0.3, 0.8)
    """

    recurrent: ClassVar[bool] = True
    #: The name of the leak rate in messages (subclasses name it otherwise).
    _leak_parameter: ClassVar[str] = "lr"
    _constraints: ClassVar[dict] = {
        "units": Interval(int, 1, None),
        "sr": AnyOf((None, Interval(float, 0, None, closed="neither"))),
        "lr": Interval(float, 0, 1, closed="right"),
        "scaling": OneOf(("spectral_radius", "spectral_norm", "fan_in", None)),
        "input_scaling": Interval(float, None, None),
        "bias_scaling": Interval(float, None, None),
        "rc_connectivity": Interval(float, 0, 1, closed="right"),
        "input_connectivity": Interval(float, 0, 1, closed="right"),
        "W": Predicate(S.weight_spec, "a family name, a Family, a spec dict or an array"),
        "Win": Predicate(S.weight_spec, "a family name, a Family, a spec dict or an array"),
        "bias": Predicate(S.weight_spec,
                          "a family name, a Family, a spec dict, an array or a number"),
        "activation": OneOf(("tanh", "relu", "sigmoid", "identity")),
        "r": Interval(int, 0, None),
        "alpha": AnyOf((None, Interval(float, 0, None, closed="neither"))),
        "rslora": OneOf((True, False)),
    }

    def __init__(self, units: int | None = None, lr: Any = 1.0, sr: float | None = 0.9, *,
                 scaling: str | None = "spectral_radius",
                 input_scaling: Any = 1.0, bias_scaling: float = 0.0,
                 rc_connectivity: float = 0.1, input_connectivity: float = 0.1,
                 W: Any = "normal", Win: Any = None, bias: Any = None,
                 activation: Any = "tanh", seed: int | None = None, name: str | None = None,
                 input_dim: int | None = None, dtype: Any = torch.float32,
                 r: int = 0, alpha: float | None = None, rslora: bool = False) -> None:
        super().__init__(input_dim=input_dim, name=name, seed=seed, dtype=dtype)
        units_given = units is not None
        W, Win = S.dense_explicit(W), S.dense_explicit(Win)
        bias = S.dense_explicit(bias)
        for label, spec in (("W", W), ("Win", Win), ("bias", bias)):
            S.refuse_callable_weight(label, spec)
        units = S.resolve_units(units, W)
        activation = S.activation_name(activation)
        self._validate({"units": units, "bias_scaling": bias_scaling})
        if is_array_like(lr) and np.ndim(lr) == 0:
            lr = float(lr)  # np.float64(0.3) is a number already; np.array(0.3) too
        rates = S.leak_rates(lr, units)
        scales = S.input_scales(input_scaling)
        constant_bias = S.bias_number(bias, bias_scaling)
        checked = dict(units=units, sr=sr, lr=lr, scaling=scaling,
                       input_scaling=input_scaling, bias_scaling=bias_scaling,
                       rc_connectivity=rc_connectivity,
                       input_connectivity=input_connectivity, W=W, Win=Win, bias=bias,
                       activation=activation, r=r, alpha=alpha, rslora=rslora)
        if rates is not None:
            del checked["lr"]
        if scales is not None:
            del checked["input_scaling"]
        if constant_bias is not None:
            del checked["bias"]
        self._validate(checked)
        for label, spec in (("W", W), ("Win", Win), ("bias", bias)):
            if isinstance(spec, (str, dict)):
                get_family(spec, label)  # fail at construction, not at first data
            S.check_finite_array(label, spec)
        largest = torch.finfo(self.dtype).max
        if sr is not None and not is_array_like(W) and float(sr) > largest:
            raise ParameterError(
                f"The 'sr' parameter of Reservoir must be at most the largest {self.dtype} "
                f"({largest:.3g}): W scaled to it would not be finite. Got {sr!r}.")
        S.check_leak(lr if rates is None else rates, self.dtype, label=self._leak_parameter)
        if is_array_like(W):
            S.check_w_shape(W, units, units_given)
        if is_array_like(Win):
            if np.ndim(Win) != 2 or np.shape(Win)[0] != units:
                raise ParameterError(
                    f"The 'Win' parameter of Reservoir must have shape ({units}, F) for "
                    f"units={units}. Got shape {tuple(np.shape(Win))}."
                    + ("" if units_given or np.ndim(Win) != 2 else
                       f" 'units' defaults to {DEFAULT_UNITS} without an explicit W: pass "
                       f"units={np.shape(Win)[0]}.")
                )
            if input_dim is not None and np.shape(Win)[1] != input_dim:
                raise ParameterError(
                    f"The 'Win' parameter of Reservoir has {np.shape(Win)[1]} columns but "
                    f"input_dim={input_dim}."
                )
            self.input_dim = int(np.shape(Win)[1])
        if is_array_like(bias) and tuple(np.shape(bias)) != (units,):
            raise ParameterError(
                f"The 'bias' parameter of Reservoir must have shape ({units},). "
                f"Got shape {tuple(np.shape(bias))}."
            )
        if not is_array_like(Win):
            S.check_input_scales(scales, self.input_dim)
        self.units = int(units)
        self.sr = None if sr is None else float(sr)
        self.lr = float(lr) if rates is None else rates
        self.scaling = scaling
        self.input_scaling = float(input_scaling) if scales is None else scales
        self.bias_scaling = float(bias_scaling)
        self.rc_connectivity = float(rc_connectivity)
        self.input_connectivity = float(input_connectivity)
        self.W = W
        self.Win = Win if Win is not None else Binary(scale=1.0)
        if constant_bias is not None:
            self.bias = constant_bias
        else:
            self.bias = bias if bias is not None else Binary(scale=1.0)
        self.activation = activation
        self._init_adapter(r, alpha, rslora, gate=True)
        self.output_dim = self.units
        self.W_scale_: float | None = None
        self.W_fingerprint_: str | None = None
        self._operator_cache: tuple | None = None

    def hyperparameters(self) -> dict[str, Any]:
        scales = self.input_scaling
        return {
            "units": self.units, "sr": self.sr, "lr": S.spec_to_json(self.lr),
            "scaling": self.scaling,
            "input_scaling": list(scales) if isinstance(scales, tuple) else scales,
            "bias_scaling": self.bias_scaling,
            "rc_connectivity": self.rc_connectivity,
            "input_connectivity": self.input_connectivity,
            "W": S.spec_to_json(self.W), "Win": S.spec_to_json(self.Win),
            "bias": S.spec_to_json(self.bias), "activation": self.activation, "seed": self.seed,
            **({"r": self.r, "alpha": self.alpha, "rslora": self.rslora} if self.r else {}),
        }

    # -------------------------------------------------------------------- build
    def _recurrent_weight(self) -> np.ndarray:
        n = self.units
        if is_array_like(self.W):
            return np.asarray(torch.as_tensor(self.W).detach().cpu().double().numpy())
        raw = make_weight(self.W, self.seed_key_, "W", (n, n), fan_in=n, fan_out=n,
                          connectivity=self.rc_connectivity)
        self.W_fingerprint_ = fingerprint(raw)
        if self.sr is None or self.scaling is None:
            return raw
        if self.W_scale_ is None:
            if self.scaling == "spectral_radius":
                current = radius(raw, error_bound=False)[0]  # one ARPACK run when sparse
            elif self.scaling == "spectral_norm":
                current = spectral_norm(raw)
            else:
                current = float(np.sqrt(np.mean(raw**2) * n))
            if current == 0.0:
                raise ParameterError(
                    f"The recurrent matrix of Reservoir '{self.name}' has {self.scaling} 0 "
                    f"(units={n}, rc_connectivity={self.rc_connectivity}), so it cannot be "
                    f"rescaled to sr={self.sr}. Raise rc_connectivity or units."
                )
            self.W_scale_ = self.sr / current
        return raw * self.W_scale_

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        n = self.units
        W = self._recurrent_weight()
        if is_array_like(self.Win):
            Win = torch.as_tensor(self.Win).detach().cpu().double().numpy()
        elif isinstance(self.input_scaling, tuple):  # one scale per feature: Win's columns
            S.check_input_scales(self.input_scaling, input_dim)
            Win = make_weight(
                self.Win, self.seed_key_, "Win", (n, input_dim), fan_in=input_dim, fan_out=n,
                connectivity=self.input_connectivity) * np.asarray(self.input_scaling)
        else:
            Win = self.input_scaling * make_weight(
                self.Win, self.seed_key_, "Win", (n, input_dim), fan_in=input_dim, fan_out=n,
                connectivity=self.input_connectivity)
        if is_array_like(self.bias):
            bias = torch.as_tensor(self.bias).detach().cpu().double().numpy()
        elif isinstance(self.bias, float):  # reservoirpy's constant bias
            bias = np.full(n, self.bias)
        elif self.bias_scaling == 0.0:
            bias = np.zeros(n)
        else:
            bias = self.bias_scaling * make_weight(self.bias, self.seed_key_, "bias", (n,),
                                                   fan_in=1, fan_out=n)
        S.check_leak(self.lr, self.dtype, warn=False, label=self._leak_parameter)  # after .to()
        self.register_buffer("W_", self._new_tensor(W, "recurrent matrix W", self._w_hint()),
                             persistent=False)
        def hint(spec: Any, scale: str) -> str:
            lower = "its explicit values" if is_array_like(spec) else scale
            return f" Lower {lower}, or use dtype=torch.float64."

        self.register_buffer("Win_", self._new_tensor(Win, "input matrix Win",
                                                      hint(self.Win, "input_scaling")),
                             persistent=False)
        self.register_buffer("bias_", self._new_tensor(bias, "bias",
                                                       hint(self.bias, "bias_scaling")),
                             persistent=False)
        if isinstance(self.lr, np.ndarray):  # per-unit leak rates follow dtype and device
            self.register_buffer("lr_", self._new_tensor(self.lr), persistent=False)
        if self.r > 0:
            self._build_adapter(self.seed_key_, n, n, dtype=self.dtype, device=self.device,
                                owner=f"Reservoir '{self.name}'")
        else:
            self.A_ = self.B_ = self.beta_ = None

    def _w_hint(self) -> str:
        if is_array_like(self.W):
            return " Lower its explicit values, or use dtype=torch.float64."
        if self.W_scale_ is None:
            return " Its family drew values too large: lower its scale."
        return (f" W was scaled by {self.W_scale_:.3g} to sr={self.sr:g}: lower sr, or use "
                f"dtype=torch.float64.")

    def nonfinite_hint(self) -> str:
        """Why a reservoir's states turn NaN or inf, and what to change."""
        largest = f"{torch.finfo(self.dtype).max:.3g}"
        if self.activation in ("identity", "relu") and (self.sr is None or self.sr > 1):
            return (f"With the unbounded activation '{self.activation}' the states grow "
                    f"without limit when W amplifies them (sr={self.sr}), until they pass the "
                    f"largest {self.dtype} ({largest}): lower sr below 1, use "
                    f"activation='tanh', or scale the input down. ")
        return (f"{super().nonfinite_hint()}Scale its input down or lower input_scaling "
                f"({S.spec_to_json(self.input_scaling)}). ")

    # ------------------------------------------------------------------- kinds
    def _regenerate_frozen(self) -> Tensor:
        return self._new_tensor(self._recurrent_weight(), "recurrent matrix W", self._w_hint())

    def frozen_tensors(self) -> dict[str, Tensor]:
        """``W_`` (as drawn and scaled, even while an adapter is merged in), ``Win_``,
        ``bias_`` and per-unit leak rates ``lr_``."""
        self._require_built()
        tensors = {"W_": self._regenerate_frozen() if self.merged_ else self.W_,
                   "Win_": self.Win_, "bias_": self.bias_}
        if isinstance(self.lr, np.ndarray):
            tensors["lr_"] = self.lr_
        return tensors

    def source_fingerprint(self) -> str | None:
        """Fingerprint of the seeded W before scaling (``None`` for an explicit W)."""
        return self.W_fingerprint_

    def artifact_state(self) -> dict[str, Any]:
        return {"W_scale_": self.W_scale_, "W_fingerprint_": self.W_fingerprint_}

    def restore_artifact_state(self, state: dict[str, Any]) -> None:
        if state.get("W_scale_") is not None:
            self.W_scale_ = float(state["W_scale_"])

    def trains_by_gradient(self) -> bool:
        """Whether the node trains by gradients (a LoRA adapter on W, r > 0)."""
        return self.r > 0

    def gate(self) -> Tensor | None:
        """The adapter's gate β, or ``None`` without adapter."""
        return getattr(self, "beta_", None) if self.built else None

    def layer_view(self) -> LayerView:
        """The effective recurrent matrix, the frozen W when adapted, Win, bias and leak."""
        with torch.no_grad():
            weight = self.effective_weight().detach()
        frozen = self.W_.detach() if self.has_adapter() and not self.merged_ else None
        return LayerView(weight=weight, frozen=frozen, Win=self.Win_.detach(),
                         bias=self.bias_.detach(), lr=self.leak_rate(),
                         activation=self.activation, recurrent=True)

    def step_cost(self) -> int:
        """Multiply-adds of one step for one series: the stored entries of W and Win, and
        the adapter's ``2·N·r``."""
        self._require_built()
        density = self._density()
        return int(density * self.units**2 + self.Win_.numel() + 2 * self.units * self.rank_)

    def _lora_operator(self) -> Tensor:
        # Backpropagating through a CSR product works but is 2-8x slower than dense
        # on CPU (N = 40 to 1000), so training steps with the dense W.
        if torch.is_grad_enabled():
            return self.W_
        return self.recurrent_operator()

    def effective_weight(self) -> Tensor:
        """The recurrent matrix in use: ``β·W + scale·B·A`` (just ``W`` when r = 0), dense."""
        self._require_built()
        return self.adapted_weight(self.W_)

    def _adapted(self) -> bool:
        return self.has_adapter() and not self.merged_

    # ---------------------------------------------------------------- execution
    def recurrent_operator(self, batch_size: int = 1) -> Tensor:
        """W in the form fastest for stepping ``batch_size`` series at once.

        The form (sparse CSR, dense, or 8 × 8 blocks) is measured once per shape,
        batch size, dtype, device and thread count by
        :func:`deepreservoir.step_kernels.choose_kernel`, or pinned with
        :func:`deepreservoir.step_kernels.set_step_kernel`. All forms give the
        same product up to rounding. The density and each form are cached per W.
        """
        self._require_built()
        W = self.W_
        forms = self._operator_forms()
        memo = (batch_size, torch.get_num_threads(), step_kernels.settings_version())
        if forms.get("memo") == memo:  # the step path asks every step
            return forms["last"]
        kernel = step_kernels.choose_kernel(W, batch_size, forms["nnz"], forms)
        if kernel != "dense" and kernel not in forms:
            forms[kernel] = step_kernels.operator_for(W, kernel)
        forms["memo"], forms["last"] = memo, W if kernel == "dense" else forms[kernel]
        return forms["last"]

    def _operator_forms(self) -> dict[str, Any]:
        W = self.W_
        key = (W.data_ptr(), W._version, W.device, W.dtype)
        if self._operator_cache is None or self._operator_cache[0] != key:
            nnz = int(torch.count_nonzero(W)) if W.numel() else 0
            self._operator_cache = (key, nnz / max(W.numel(), 1), {"nnz": nnz})
        return self._operator_cache[2]

    def _density(self) -> float:
        self._operator_forms()
        return self._operator_cache[1]

    def initial_state(self, batch_size: int) -> Tensor:
        return torch.zeros(batch_size, self.units, dtype=self.dtype, device=self.device)

    def _activation_fn(self):
        return F.get_activation(self.activation)

    def leak_rate(self) -> float | Tensor:
        """The leak rate the update uses: a float, or the (N,) tensor ``lr_`` of per-unit rates."""
        return self.lr_ if isinstance(self.lr, np.ndarray) else self.lr

    def forward_sequence(self, x: Tensor, state: Tensor | None,
                         lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._require_built()
        if state is None:
            state = self.initial_state(x.shape[0])
        if self._adapted():
            drive = F.reservoir_drive(x, self.Win_, self.bias_)
            return F.run_lora_reservoir(state, drive, self._lora_operator(), self.A_,
                                        self.B_, self.beta_, self.scale, self.leak_rate(),
                                        self._activation_fn(), lengths)
        W = self.recurrent_operator(x.shape[0])
        if F._needs_grad(x, state, self.Win_, self.bias_, W):
            drive = F.reservoir_drive(x, self.Win_, self.bias_)
            W = self.W_ if W.layout == torch.sparse_bsr else W  # no autograd through BSR
            return F.run_reservoir(state, drive, W, self.leak_rate(), self._activation_fn(),
                                   lengths)
        if F._runs_every_step(lengths, x.shape[1]):  # the fused loop computes the drive
            drive = step_kernels.InputDrive(x, self.Win_, self.bias_)
            return step_kernels.run_inplace(state, drive, W, self.leak_rate(),
                                            self._activation_fn())
        # Ragged: add the bias in place and let the loop write each state over the
        # drive step it has just read, so the (B, T, N) drive is the output.
        drive = x @ self.Win_.T
        if self.bias_ is not None:
            drive.add_(self.bias_)
        return F.run_reservoir(state, drive, W, self.leak_rate(), self._activation_fn(),
                               lengths, out=drive)

    def forward_step(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        self._require_built()
        if state is None:
            state = self.initial_state(x.shape[0])
        if self._adapted():
            pre = (F.lora_recurrent_matmul(state, self._lora_operator(), self.A_, self.B_,
                                           self.beta_, self.scale)
                   + F.reservoir_drive(x, self.Win_, self.bias_))
            new_state = F.leaky_update(state, pre, self.leak_rate(), self._activation_fn())
            return new_state, new_state
        W = self.recurrent_operator(x.shape[0])
        new_state = F.reservoir_step(state, x, W, self.Win_, self.bias_, self.leak_rate(),
                                     self._activation_fn())
        return new_state, new_state
