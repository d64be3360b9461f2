"""Parsing of :class:`~deepreservoir.Reservoir`'s constructor arguments.

Weight specs, explicit (dense or scipy.sparse) arrays, per-unit leak rates,
per-feature input scales and activation functions, including the forms that
reservoirpy 0.4 accepts. Every function raises
:class:`~deepreservoir.errors.ParameterError` in the library's one format,
naming the parameter, the value and what to write instead.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import torch

from deepreservoir import functional as F
from deepreservoir.constraints import is_array_like
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families import Family

__all__ = [
    "DEFAULT_UNITS",
    "TINY_LEAK",
    "TinyLeakWarning",
    "activation_name",
    "bias_number",
    "check_finite_array",
    "check_input_scales",
    "check_leak",
    "check_w_shape",
    "dense_explicit",
    "input_scales",
    "leak_rates",
    "refuse_callable_weight",
    "resolve_units",
    "spec_to_json",
    "weight_spec",
]

#: Number of units of a ``Reservoir`` built with ``units=None`` and no explicit ``W``.
DEFAULT_UNITS = 100

_OWNER = "Reservoir"
_ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
# reservoirpy's short names (reservoirpy.activationsfunc.get_function).
_ALIASES = {"id": "identity", "re": "relu", "sig": "sigmoid"}


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# ------------------------------------------------------------------- weights
def weight_spec(value: Any) -> bool:
    """Whether ``value`` is a family name, a Family, a spec dict, an array or None."""
    if value is None or isinstance(value, (str, Family, dict)):
        return True
    return is_array_like(value)


def spec_to_json(value: Any) -> Any:
    """The JSON form of a weight spec; an explicit array becomes ``{"array": shape}``."""
    if isinstance(value, Family):
        return value.spec()
    if is_array_like(value):
        return {"array": list(np.shape(value))}
    return value


def dense_explicit(value: Any) -> Any:
    """A scipy.sparse matrix or sparse torch tensor as a dense array; anything else as is.

    The dense form is what the node stores, so that saving (``torch.as_tensor``
    of the attribute) and shape checks treat it like any explicit array.
    """
    if type(value).__module__.startswith("scipy.sparse"):  # scipy loads only when used
        return np.asarray(value.toarray(), dtype=np.float64)
    if isinstance(value, torch.Tensor) and value.layout != torch.strided:
        return value.to_dense()
    return value


def check_finite_array(label: str, value: Any) -> None:
    """Refuse an explicit ``W``, ``Win`` or ``bias`` array holding NaN or inf, or complex.

    Raises
    ------
    ParameterError
        Naming the parameter, the number of NaN and inf entries and the first one.
    """
    if not is_array_like(value):
        return
    if value.is_complex() if isinstance(value, torch.Tensor) else np.iscomplexobj(value):
        raise ParameterError(
            f"The '{label}' parameter of {_OWNER} must be an array of real numbers. Got "
            f"{format_value(value)}: a complex matrix has no real counterpart to use; pass "
            f"its real part explicitly if that is what you mean.")
    try:
        if isinstance(value, torch.Tensor):
            array = value.detach().cpu().to(torch.float64).numpy()
        else:
            array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterError(
            f"The '{label}' parameter of {_OWNER} must be an array of real numbers. "
            f"Got {format_value(value)}.") from None
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    nan = int(np.isnan(array).sum())
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ParameterError(
        f"The '{label}' parameter of {_OWNER} must hold finite values only. Got an array of "
        f"shape {array.shape} with {nan} NaN and {int(bad.sum()) - nan} inf entries (of "
        f"{array.size}), the first at index {first}.")


def refuse_callable_weight(label: str, value: Any) -> None:
    """Refuse an initialiser function (reservoirpy's ``mat_gen.normal``, ``bernoulli``...)."""
    if value is None or is_array_like(value) or not callable(value):
        return
    family = {"W": "normal", "Win": "binary", "bias": "binary"}[label]
    raise ParameterError(
        f"The '{label}' parameter of {_OWNER} must be a family name, a Family, a spec dict "
        f"or an array (dense or scipy.sparse). Got the callable {format_value(value)}. "
        f"deepreservoir draws its weights from the seed, so an initialiser function such "
        f"as reservoirpy.mat_gen.normal cannot be used: write {label}={family!r} (a seeded "
        f"family) or pass the matrix it returns, e.g. "
        f"W=reservoirpy.mat_gen.normal(units, units, connectivity=0.1) (used as is)."
    )


def resolve_units(units: Any, W: Any) -> Any:
    """``units``, or ``W.shape[0]`` for an explicit W, or :data:`DEFAULT_UNITS`."""
    if units is not None:
        return units
    if is_array_like(W):
        shape = tuple(np.shape(W))
        if len(shape) != 2 or shape[0] != shape[1] or shape[0] == 0:
            raise ParameterError(
                f"The 'W' parameter of {_OWNER} must be a non-empty square array of shape "
                f"(N, N). Got shape {shape}."
            )
        return int(shape[0])
    return DEFAULT_UNITS


def check_w_shape(W: Any, units: int, units_given: bool) -> None:
    """An explicit W must be (units, units)."""
    shape = tuple(np.shape(W))
    if shape == (units, units):
        return
    hint = ""
    if units_given and len(shape) == 2 and shape[0] == shape[1]:
        hint = (f" Omit 'units' (it defaults to W.shape[0] = {shape[0]}) or pass "
                f"units={shape[0]}.")
    raise ParameterError(
        f"The 'W' parameter of {_OWNER} must have shape ({units}, {units}) for "
        f"units={units}. Got shape {shape}.{hint}"
    )


def bias_number(bias: Any, bias_scaling: float) -> float | None:
    """A real-number bias as a float (reservoirpy's constant bias); None for other specs."""
    if not _is_real(bias):
        return None
    value = float(bias)
    if not np.isfinite(value):
        raise ParameterError(
            f"The 'bias' parameter of {_OWNER} must be finite when it is a number (a "
            f"constant bias for every unit). Got {format_value(bias)}."
        )
    if bias_scaling != 0.0:
        raise ParameterError(
            f"The 'bias_scaling' parameter of {_OWNER} must be 0 (its default) when 'bias' "
            f"is a number: bias={value:g} is a constant bias used as is, so "
            f"bias_scaling={bias_scaling:g} would have no effect. Write bias={value:g} "
            f"alone for a constant bias, or bias='binary' (or another family) with "
            f"bias_scaling={bias_scaling:g} for a seeded draw scaled by {bias_scaling:g}."
        )
    return value


# ---------------------------------------------------------------- leak rates
def leak_rates(lr: Any, units: int) -> np.ndarray | None:
    """A per-unit leak rate as a float64 array of shape (units,); None for a scalar.

    Lists, tuples, numpy arrays and torch tensors are accepted; a 0-d array is a
    scalar (None is returned and the caller validates it as a float).
    """
    if isinstance(lr, (list, tuple)):
        try:
            lr = np.asarray(lr, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterError(
                f"The 'lr' parameter of {_OWNER} must be a float in (0, 1] or an array of "
                f"shape (units,) = ({units},) of per-unit leak rates in (0, 1]. "
                f"Got {format_value(lr)}."
            ) from None
    if not is_array_like(lr) or np.ndim(lr) == 0:
        return None
    if isinstance(lr, torch.Tensor):
        rates = lr.detach().cpu().to(torch.float64).numpy().copy()
    else:
        rates = np.array(lr, dtype=np.float64)
    if rates.shape != (units,):
        raise ParameterError(
            f"The 'lr' parameter of {_OWNER} must be a float in (0, 1] or an array of shape "
            f"(units,) = ({units},) of per-unit leak rates. Got an array of shape "
            f"{rates.shape}."
        )
    bad = ~(np.isfinite(rates) & (rates > 0.0) & (rates <= 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ParameterError(
            f"The 'lr' parameter of {_OWNER} must have every per-unit leak rate in (0, 1]. "
            f"Got {int(bad.sum())} value(s) outside it, the first lr[{first}] = "
            f"{float(rates[first])!r}. Clip the rates into (0, 1] (a rate of 0 would freeze its "
            f"unit)."
        )
    return rates


#: Leak rates below this warn (:class:`TinyLeakWarning`): a memory of 10⁴ steps or more.
TINY_LEAK = 1e-4


class TinyLeakWarning(UserWarning):
    """A leak rate below :data:`TINY_LEAK`: the states barely move from their start.

    A state then follows ``x' ≈ x + lr·f(...)``: over a series shorter than
    ``1/lr`` steps it stays near zero and a readout sees little but its own bias.
    """


def check_leak(lr: float | np.ndarray, dtype: torch.dtype, *, warn: bool = True,
               label: str = "lr") -> None:
    """Refuse leak rates with no effect in ``dtype``; warn below :data:`TINY_LEAK`.

    A rate is refused when ``1 − lr`` rounds to 1 in the node's dtype (float32:
    lr ≤ 2⁻²⁵ ≈ 3e-8; float64: lr ≤ 2⁻⁵⁴ ≈ 5.6e-17). Then the update
    ``(1 − lr)·x + lr·f(...)`` loses its leak, and a subnormal rate such as 5e-324
    (0 once in float32) makes ``lr·f(...)`` vanish too: the state never leaves
    its start, and the model degrades to its readout's bias without a sign. The
    bound depends on the dtype because that is where the rounding happens; it is
    checked at construction and again when the node is built (after ``.to()``).

    Parameters
    ----------
    lr : float or ndarray (N,)
    dtype : torch.dtype
    warn : bool
        Issue the :class:`TinyLeakWarning` (at construction, not again at build).
    label : str
        The parameter's name in messages.

    Raises
    ------
    ParameterError
        Naming the parameter, the value and the dtype's bound.
    """
    rates = np.atleast_1d(np.asarray(lr, dtype=np.float64))
    inert = (torch.as_tensor(1.0 - rates, dtype=torch.float64).to(dtype) == 1.0).numpy()
    if inert.any():
        first = int(np.flatnonzero(inert)[0])
        where = (f"{label}[{first}] = {float(rates[first])!r}" if np.ndim(lr)
                 else repr(float(rates[0])))
        wider = "" if dtype == torch.float64 else (
            ", or dtype=torch.float64 for rates down to about 1e-16")
        raise ParameterError(
            f"The '{label}' parameter of {_OWNER} must be large enough for 1 - {label} to "
            f"differ from 1 in {dtype} ({label} > {torch.finfo(dtype).eps / 4:.3g}). Got "
            f"{where}: the leak then has no effect (x' = x + {label}·f(...)), the states "
            f"barely move from their start, or not at all for a subnormal rate, and the model "
            f"would return little but its readout's bias. Use {label} >= {TINY_LEAK:g} (a "
            f"memory of about 1/{label} steps){wider}.")
    if warn and float(rates.min()) < TINY_LEAK:
        warnings.warn(
            f"The '{label}' parameter of {_OWNER} has a leak rate of {float(rates.min())!r}, "
            f"below "
            f"{TINY_LEAK:g}: the states move by about {label}·f(...) per step and stay near "
            f"their start over a series shorter than 1/{label} steps, so the model returns "
            f"little but its readout's bias. Leak rates are usually in [0.01, 1].",
            TinyLeakWarning, stacklevel=3)


# ------------------------------------------------------------- input scaling
def input_scales(value: Any) -> tuple[float, ...] | None:
    """A per-feature input scaling as a tuple of floats; None for a scalar.

    Raises for a sequence that is empty, not 1-D or not finite.
    """
    if _is_real(value):
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, (list, tuple, np.ndarray)):
        return None  # the constraint table reports the type error
    try:
        scales = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        scales = None
    if scales is None or scales.ndim > 1 or not np.all(np.isfinite(scales)):
        raise ParameterError(
            f"The 'input_scaling' parameter of {_OWNER} must be a finite float or a 1-D "
            f"sequence of finite floats, one per input feature. Got {format_value(value)}."
        )
    if scales.ndim == 0:
        return None
    if scales.size == 0:
        raise ParameterError(
            f"The 'input_scaling' parameter of {_OWNER} must be a finite float or a 1-D "
            f"sequence of finite floats, one per input feature. Got an empty sequence."
        )
    return tuple(float(s) for s in scales)


def check_input_scales(scales: tuple[float, ...] | None, input_dim: int | None) -> None:
    """A per-feature input scaling must have one entry per input feature."""
    if scales is None or input_dim is None or len(scales) == input_dim:
        return
    raise ParameterError(
        f"The 'input_scaling' parameter of {_OWNER} has {len(scales)} per-feature scales "
        f"but the input has {input_dim} features. Pass one scale per feature, or a single "
        f"float for all of them."
    )


# ---------------------------------------------------------------- activations
def _known_callables(value: Any) -> list[tuple[Any, str]]:
    nn = torch.nn.functional
    known = [
        (torch.tanh, "tanh"), (nn.tanh, "tanh"), (np.tanh, "tanh"), (torch.Tensor.tanh, "tanh"),
        (torch.relu, "relu"), (nn.relu, "relu"), (torch.Tensor.relu, "relu"),
        (torch.sigmoid, "sigmoid"), (nn.sigmoid, "sigmoid"), (torch.Tensor.sigmoid, "sigmoid"),
        (F.ACTIVATIONS["identity"], "identity"),
    ]
    if "scipy" in str(getattr(value, "__module__", "")) or type(value).__name__ == "ufunc":
        import scipy.special

        known.append((scipy.special.expit, "sigmoid"))
    return known


_MODULES = ((torch.nn.Tanh, "tanh"), (torch.nn.ReLU, "relu"), (torch.nn.Sigmoid, "sigmoid"),
            (torch.nn.Identity, "identity"))


def activation_name(value: Any) -> Any:
    """The activation's name for a recognised function, a reservoirpy short name, or as is.

    Recognised: reservoirpy's ``activationsfunc.tanh``, ``relu``, ``sigmoid``,
    ``identity``; ``np.tanh``; ``torch.tanh``, ``torch.relu``, ``torch.sigmoid``
    and their ``torch.nn.functional`` and ``Tensor`` forms; ``scipy.special.expit``;
    the modules ``torch.nn.Tanh()``, ``ReLU()``, ``Sigmoid()``, ``Identity()``.
    Any other callable is refused; a string is returned for the constraint table.
    """
    if isinstance(value, str):
        return _ALIASES.get(value, value)
    if not callable(value):
        return value
    for candidate, name in _known_callables(value):
        if value is candidate:
            return name
    for module, name in _MODULES:
        if type(value) is module:
            return name
    if (getattr(value, "__module__", None) == "reservoirpy.activationsfunc"
            and getattr(value, "__name__", None) in _ACTIVATIONS):
        return value.__name__
    raise ParameterError(
        f"The 'activation' parameter of {_OWNER} must be one of "
        f"{', '.join(repr(a) for a in _ACTIVATIONS)}, or a function recognised as one of them "
        f"(reservoirpy.activationsfunc.tanh, np.tanh, torch.tanh, torch.relu, torch.sigmoid, "
        f"torch.nn.functional.relu...). Got the callable {format_value(value)}. A saved "
        f"model names its activation and the analysis needs its derivative, so an arbitrary "
        f"function cannot be used: write activation='tanh' (or 'relu', 'sigmoid', "
        f"'identity')."
    )
