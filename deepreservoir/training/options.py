"""The keywords of ``fit`` on each training path, and their validation.

A model trains along one path, chosen from its nodes: ``"closed_form"``,
``"gradient"`` or ``"mixed"``. Each path accepts the keywords that make sense
for it (``verbose``, ``warmup`` and ``seed`` on every path) and refuses the
others with a message that names the path.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deepreservoir.errors import ParameterError, format_value

__all__ = [
    "CLOSED_FORM_DEFAULTS",
    "GRADIENT_DEFAULTS",
    "LOSSES",
    "ONLINE_DEFAULTS",
    "OPTIMIZERS",
    "SCHEDULES",
    "UNSUPERVISED_DEFAULTS",
    "GradientConfig",
    "check_batch_size",
    "check_device",
    "check_keywords",
    "check_loss",
    "derive_seed",
]

LOSSES = ("mse", "cross_entropy", "bce")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant", "linear")
RESAMPLING = (None, "static", "epoch", "batch")

#: Keywords of the closed-form path and their defaults.
CLOSED_FORM_DEFAULTS: dict[str, Any] = {
    "warmup": 0, "reset": True, "chunk_size": None, "verbose": 0, "seed": 0,
}
#: Keywords of the online path and their defaults.
ONLINE_DEFAULTS: dict[str, Any] = {"warmup": 0, "reset": True, "verbose": 0, "seed": 0,
                                   "feedback": "target", "learners": "per_series"}
#: Keywords of the unsupervised path (nothing but adapting nodes) and their defaults.
UNSUPERVISED_DEFAULTS: dict[str, Any] = {"warmup": 0, "reset": True, "verbose": 0, "seed": 0}
#: Keywords of the gradient (and mixed) path and their defaults.
GRADIENT_DEFAULTS: dict[str, Any] = {
    "epochs": 20, "batch_size": 128, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 1e-2,
    "schedule": "cosine", "loss": "mse", "validation_data": None, "validation_split": 0.0,
    "seed": 0, "device": None, "callbacks": (), "verbose": 1, "checkpoint": None,
    "checkpoint_every": 1, "resume": False, "resample": None, "seed_labels": None,
    "warmup": 0, "chunk_size": None, "grad_clip": None, "sampler": None,
}
_PATHS = {
    "closed_form": ("closed form (sufficient statistics, then a solve)", CLOSED_FORM_DEFAULTS),
    "gradient": ("gradient training", GRADIENT_DEFAULTS),
    "mixed": ("mixed training (closed form, then gradients through it)", GRADIENT_DEFAULTS),
    "online": ("online learning (step by step while the model runs)", ONLINE_DEFAULTS),
    "unsupervised": ("unsupervised adaptation (e.g. intrinsic plasticity)",
                     UNSUPERVISED_DEFAULTS),
}


def check_keywords(path: str, options: dict[str, Any], nodes: str) -> dict[str, Any]:
    """The options with the path's defaults filled in; unknown keywords are refused.

    Parameters
    ----------
    path : {"closed_form", "gradient", "mixed"}
    options : dict
        The keywords given to ``fit``.
    nodes : str
        The nodes that put the model on this path, for the message.
    """
    description, defaults = _PATHS[path]
    unknown = [key for key in options if key not in defaults]
    if unknown:
        other = "closed_form" if path == "gradient" else "gradient"
        elsewhere = [key for key in unknown if key in _PATHS[other][1]]
        hint = (f" ({', '.join(repr(k) for k in elsewhere)} only applies to "
                f"{_PATHS[other][0]})" if elsewhere else "")
        raise ParameterError(
            f"The '{unknown[0]}' parameter of fit does not apply to this model: it trains by "
            f"{description} ({nodes}){hint}. This path accepts: "
            f"{', '.join(sorted(defaults))}.")
    return {**defaults, **options}


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (blake2b of their decimal forms)."""
    text = ",".join(str(int(p)) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def _check(name: str, value: Any, ok: bool, expected: str, where: str = "fit") -> None:
    if not ok:
        raise ParameterError(
            f"The '{name}' parameter of {where} must be {expected}. Got {format_value(value)}.")


def check_loss(loss: Any, where: str = "fit") -> None:
    """Refuse a ``loss`` that is neither a known name (:data:`LOSSES`) nor a callable."""
    _check("loss", loss, callable(loss) or (isinstance(loss, str) and loss in LOSSES),
           "one of " + ", ".join(repr(x) for x in LOSSES) + " or a callable", where)


def check_batch_size(batch_size: Any, where: str = "fit") -> None:
    """Refuse a ``batch_size`` that is not an int >= 1."""
    _check("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "an int >= 1",
           where)


_DEVICES = '"cpu", "cuda", "cuda:N", a torch.device of those types, or None'


def check_device(device: Any, where: str = "fit") -> torch.device | None:
    """The ``device`` as a :class:`torch.device` (``None`` stays ``None``), checked.

    Accepted: ``None`` (keep the model where it is), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or a :class:`torch.device` of those types. CUDA must be
    available, and ``N`` below the number of CUDA devices.

    Raises
    ------
    ParameterError
        Another type or device string, or a CUDA device this machine does not have.
    """
    if device is None:
        return None
    if isinstance(device, torch.device):
        parsed = device
    elif isinstance(device, str):
        try:
            parsed = torch.device(device)
        except (RuntimeError, ValueError, TypeError):
            parsed = None
    else:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ParameterError(
            f"The 'device' parameter of {where} must be {_DEVICES}. "
            f"Got {format_value(device)}.")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(
                f"The 'device' parameter of {where} asks for CUDA, but CUDA is not available "
                f"on this machine (torch.cuda.is_available() is False). Use device='cpu' or "
                f"None. Got {format_value(device)}.")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ParameterError(
                f"The 'device' parameter of {where} names CUDA device {parsed.index}, but "
                f"this machine has {count} (cuda:0 to cuda:{count - 1}). "
                f"Got {format_value(device)}.")
    return parsed


def is_int(value: Any) -> bool:
    """An int (numpy ints included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite real number, not a bool."""
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
        value, bool) and math.isfinite(float(value))


def check_common(options: dict[str, Any]) -> None:
    """Validate the keywords every path shares (and ``chunk_size`` where the path has it)."""
    _check("verbose", options["verbose"], options["verbose"] in (0, 1, 2), "one of 0, 1, 2")
    _check("warmup", options["warmup"], is_int(options["warmup"]) and options["warmup"] >= 0,
           "an int >= 0")
    _check("seed", options["seed"], is_int(options["seed"]) and 0 <= options["seed"] < 2**63,
           "a non-negative int below 2**63")
    chunk = options.get("chunk_size")
    _check("chunk_size", chunk, chunk is None or (is_int(chunk) and chunk >= 1),
           "an int >= 1 or None")


@dataclass
class GradientConfig:
    """The options of a gradient run that a checkpoint must agree with to resume."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    schedule: str
    loss: Any
    seed: int
    resample: str | None
    warmup: int
    grad_clip: float | None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GradientConfig:
        """Validate the gradient options and keep those that shape the run."""
        check_common(options)
        o = options
        _check("epochs", o["epochs"], is_int(o["epochs"]) and o["epochs"] >= 1, "an int >= 1")
        check_batch_size(o["batch_size"])
        _check("lr", o["lr"], is_real(o["lr"]) and o["lr"] > 0, "a float > 0")
        _check("optimizer", o["optimizer"], o["optimizer"] in OPTIMIZERS,
               "one of " + ", ".join(repr(x) for x in OPTIMIZERS))
        _check("weight_decay", o["weight_decay"],
               is_real(o["weight_decay"]) and o["weight_decay"] >= 0, "a float >= 0")
        _check("schedule", o["schedule"], o["schedule"] in SCHEDULES,
               "one of " + ", ".join(repr(x) for x in SCHEDULES))
        check_loss(o["loss"])
        check_device(o["device"])
        _check("validation_split", o["validation_split"],
               is_real(o["validation_split"]) and 0 <= o["validation_split"] < 1,
               "a float in [0, 1)")
        _check("resample", o["resample"], o["resample"] in RESAMPLING,
               "one of None, 'static', 'epoch', 'batch'")
        _check("checkpoint_every", o["checkpoint_every"],
               is_int(o["checkpoint_every"]) and o["checkpoint_every"] >= 1, "an int >= 1")
        _check("grad_clip", o["grad_clip"],
               o["grad_clip"] is None or (is_real(o["grad_clip"]) and o["grad_clip"] > 0),
               "a float > 0 or None")
        if o["resume"] and o["checkpoint"] is None:
            raise ParameterError(
                "The 'resume' parameter of fit needs a 'checkpoint' directory. Got resume=True "
                "with checkpoint=None.")
        if o["seed_labels"] is not None and o["loss"] != "cross_entropy":
            raise ParameterError(
                f"The 'seed_labels' parameter of fit needs loss='cross_entropy'. Got "
                f"loss={o['loss']!r}.")
        return cls(int(o["epochs"]), int(o["batch_size"]), float(o["lr"]), o["optimizer"],
                   float(o["weight_decay"]), o["schedule"], o["loss"], int(o["seed"]),
                   o["resample"], int(o["warmup"]),
                   None if o["grad_clip"] is None else float(o["grad_clip"]))

    def fingerprint(self) -> dict[str, Any]:
        """The options as JSON (a callable loss by its name)."""
        loss = self.loss if isinstance(self.loss, str) else getattr(
            self.loss, "__qualname__", type(self.loss).__name__)
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "optimizer": self.optimizer, "weight_decay": self.weight_decay,
                "schedule": self.schedule, "loss": loss, "seed": self.seed,
                "resample": self.resample, "warmup": self.warmup, "grad_clip": self.grad_clip}
