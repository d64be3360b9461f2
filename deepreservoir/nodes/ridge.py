"""Ridge regression readout, trained in closed form from streamed statistics."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import AnyOf, Interval, OneOf
from deepreservoir.errors import NotFittedError
from deepreservoir.kinds import ClosedForm, SufficientStatistics
from deepreservoir.nodes._readout_arrays import agreed_output_dim, explicit_readout
from deepreservoir.nodes._reservoir_specs import spec_to_json
from deepreservoir.nodes.base import Node

__all__ = ["Ridge"]


class Ridge(Node, ClosedForm):
    r"""Linear readout ``y = W x + b`` fitted by ridge regression.

    ``fit`` streams over the data once (the closed-form kind,
    :class:`~deepreservoir.kinds.ClosedForm`), accumulating in float64

    .. math::

        X^\top X,\quad X^\top Y,\quad \textstyle\sum x,\quad \sum y,\quad n

    and then solves :math:`W^\top = (C + \lambda I)^{-1} D` with the centred
    :math:`C = X^\top X - n\bar x\bar x^\top`, :math:`D = X^\top Y - n\bar x\bar y^\top`,
    and :math:`b = \bar y - W\bar x`: the bias is not penalised (as in reservoirpy).

    **Shifted sums.** Forming :math:`C` from raw sums cancels catastrophically when
    the states' mean is large against their spread (a reservoir with an input
    bias): at a condition number of 1e12–1e14 the solve lost enough digits to
    double a NARMA-10 error. So, with ``fit_bias=True``, each chunk's sums are
    taken around a shift :math:`K` (the first chunk's mean),
    :math:`\sum (x-K)(x-K)^\top` and so on, and :meth:`combine` moves a chunk's
    sums onto the running shift exactly. The statistics carry their shift
    (``x_shift``, ``y_shift``); :meth:`uncentred` gives the raw sums back.

    Shapes: ``(B, T, F)`` → ``(B, T, O)``; ``Wout_`` (O, F), ``bias_`` (O,).
    ``O`` is inferred from the targets. The fitted tensors are persistent
    buffers: saved with the model, but not returned by ``parameters()``.

    Parameters
    ----------
    ridge : float >= 0
        L2 penalty λ.
    fit_bias : bool
        Whether to fit an intercept.
    output_dim : int, optional
        Number of outputs ``O`` (reservoirpy's name); otherwise read from the targets.
    units : int, optional
        The same as ``output_dim`` (give one of them).
    Wout : array (input_dim, output_dim), optional
        Readout weights in reservoirpy's layout: the node runs with them before any
        fit (as a given linear map); ``fit`` replaces them.
    bias : array (output_dim,), optional
        With ``Wout``: its intercept (zeros by default). Like ``Wout``, ``fit``
        replaces it (with zeros when ``fit_bias=False``), as in reservoirpy.
    name : str, optional
    input_dim : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> x = np.linspace(0, 1, 50)[:, None]
    >>> readout = dr.Ridge(ridge=0.0, dtype=dr.float64).fit(x, 3 * x + 1)
    >>> np.round(readout.run(np.array([[2.0]])), 6)
    array([[7.]])
    """

    _constraints: ClassVar[dict] = {
        "ridge": Interval(float, 0, None),
        "fit_bias": OneOf((True, False)),
        "units": AnyOf((None, Interval(int, 1, None))),
        "output_dim": AnyOf((None, Interval(int, 1, None))),
    }

    def __init__(self, ridge: float = 0.0, fit_bias: bool = True, *, output_dim: int | None = None,
                 units: int | None = None, Wout: Any = None, bias: Any = None,
                 name: str | None = None, input_dim: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        Wout, bias = explicit_readout(Wout, bias, "Ridge", input_dim)
        if Wout is not None:
            input_dim = int(Wout.shape[0])
        super().__init__(input_dim=input_dim, name=name, dtype=dtype)
        self._validate({"ridge": ridge, "fit_bias": fit_bias, "units": units,
                        "output_dim": output_dim})
        self.ridge = float(ridge)
        self.fit_bias = bool(fit_bias)
        self.Wout, self.bias = Wout, bias
        self.units = agreed_output_dim("Ridge", output_dim=output_dim, units=units,
                                       Wout=None if Wout is None else int(Wout.shape[1]),
                                       bias=None if bias is None else int(bias.shape[0]))
        self.output_dim = self.units
        self.fitted = False

    def hyperparameters(self) -> dict:
        return {"ridge": self.ridge, "fit_bias": self.fit_bias, "units": self.units,
                "Wout": spec_to_json(self.Wout), "bias": spec_to_json(self.bias)}

    def infer_output_dim(self, input_dim: int, target_dim: int | None = None) -> int:
        if self.output_dim is not None:
            return self.output_dim
        if target_dim is None:
            raise NotFittedError(
                f"Ridge '{self.name}' does not know its output size: fit it on targets first "
                f"or give units=."
            )
        return int(target_dim)

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        out = self.output_dim
        self.register_buffer("Wout_", torch.zeros(out, input_dim, dtype=self.dtype,
                                                  device=self.device))
        self.register_buffer("bias_", torch.zeros(out, dtype=self.dtype, device=self.device))
        if self.Wout is not None:
            with torch.no_grad():
                self.Wout_.copy_(self._new_tensor(self.Wout.T))
                if self.bias is not None:
                    self.bias_.copy_(self._new_tensor(self.bias))
            self.fitted = True

    # ------------------------------------------------------------ closed form
    def statistics(self, x: Tensor, y: Tensor) -> SufficientStatistics:
        """``XᵀX``, ``XᵀY``, ``Σx``, ``Σy`` and ``Σ‖y‖²`` of rows ``x`` (n, F), ``y`` (n, O),
        in float64, around the shift ``x_shift``, ``y_shift`` (the rows' mean when
        ``fit_bias``, else 0): ``xtx = Σ (x − x_shift)(x − x_shift)ᵀ`` and so on."""
        self._require_built()
        x = x.to(torch.float64)
        y = y.to(torch.float64)
        if self.fit_bias and x.shape[0]:
            x_shift, y_shift = x.mean(0), y.mean(0)
            x, y = x - x_shift, y - y_shift
        else:
            x_shift = x.new_zeros(x.shape[1])
            y_shift = y.new_zeros(y.shape[1])
        return SufficientStatistics(
            {"xtx": F.gram(x.contiguous()), "xty": x.T @ y, "x_sum": x.sum(0), "y_sum": y.sum(0),
             "yty": (y * y).sum(), "x_shift": x_shift, "y_shift": y_shift}, int(x.shape[0]))

    @staticmethod
    def recentred(statistics: SufficientStatistics, x_shift: Tensor,
                  y_shift: Tensor) -> SufficientStatistics:
        """The same statistics around another shift (exact: a change of origin).

        With ``d = K_old − K_new``: ``Σ(x−K_new)(x−K_new)ᵀ = S + s dᵀ + d sᵀ + n d dᵀ``,
        ``Σ(x−K_new) = s + n d``, and likewise for ``XᵀY``, ``Σy`` and ``Σ‖y‖²``.
        Statistics from separate processes are moved onto one shift before summing.
        """
        s, n = statistics.sums, statistics.count
        dx = s.get("x_shift", torch.zeros_like(x_shift)) - x_shift
        dy = s.get("y_shift", torch.zeros_like(y_shift)) - y_shift
        sx, sy = s["x_sum"], s["y_sum"]
        moved = {
            "xtx": s["xtx"] + torch.outer(sx, dx) + torch.outer(dx, sx) + n * torch.outer(dx, dx),
            "xty": s["xty"] + torch.outer(sx, dy) + torch.outer(dx, sy) + n * torch.outer(dx, dy),
            "x_sum": sx + n * dx, "y_sum": sy + n * dy,
            "yty": s["yty"] + 2 * (dy @ sy) + n * (dy @ dy),
            "x_shift": x_shift.clone(), "y_shift": y_shift.clone()}
        return SufficientStatistics(moved, n)

    @classmethod
    def uncentred(cls, statistics: SufficientStatistics) -> SufficientStatistics:
        """The raw sums ``XᵀX``, ``XᵀY``, ``Σx``, ``Σy``, ``Σ‖y‖²`` (shift 0)."""
        s = statistics.sums
        return cls.recentred(statistics, torch.zeros_like(s["x_sum"]),
                             torch.zeros_like(s["y_sum"]))

    @staticmethod
    def combine(first: SufficientStatistics,
                second: SufficientStatistics) -> SufficientStatistics:
        """Both pieces' statistics, around ``first``'s shift."""
        if not first.sums or not second.sums:
            return first + second
        moved = Ridge.recentred(second, first.sums["x_shift"], first.sums["y_shift"])
        sums = {key: value + moved.sums[key] for key, value in first.sums.items()
                if not key.endswith("_shift")}
        sums.update(x_shift=first.sums["x_shift"], y_shift=first.sums["y_shift"])
        return SufficientStatistics(sums, first.count + second.count)

    #: The sums :meth:`all_reduce_statistics` adds elementwise across processes, in order.
    _SUMMED = ("xtx", "xty", "x_sum", "y_sum", "yty")

    def all_reduce_statistics(self, statistics: SufficientStatistics,
                              group: Any = None) -> SufficientStatistics:
        """The statistics of every process's rows, by two tensor all-reduces.

        A plain sum of the processes' sums would be wrong: each is taken around its
        own shift. So first ``[n, n·x_shift, n·y_shift]`` (``1 + F + O`` numbers) is
        summed to get the common shift ``K = Σ n_p K_p / Σ n_p`` (a weighted mean of
        the shifts, near the data's mean, so the sums stay well conditioned); each
        process moves its sums onto ``K`` (:meth:`recentred`, exact) and the moved
        ``XᵀX`` (F, F), ``XᵀY`` (F, O), ``Σx`` (F), ``Σy`` (O) and ``Σ‖y‖²`` are
        summed as one flat float64 buffer. Every process gets the same result.
        A collective: call it on every process of ``group``.

        Parameters
        ----------
        statistics : SufficientStatistics
            This process's statistics (empty when it saw no rows).
        group : torch.distributed.ProcessGroup, optional
            The default group when ``None``.

        Returns
        -------
        SufficientStatistics
        """
        import torch.distributed as dist

        self._require_built()
        features, outputs = int(self.input_dim), int(self.output_dim)
        sums = statistics.sums
        device = sums["xtx"].device if sums else self.Wout_.device
        zeros = {"xtx": (features, features), "xty": (features, outputs), "x_sum": (features,),
                 "y_sum": (outputs,), "yty": (), "x_shift": (features,), "y_shift": (outputs,)}
        zeros = {k: torch.zeros(shape, dtype=torch.float64, device=device)
                 for k, shape in zeros.items()}
        sums = {**zeros, **sums}
        n = statistics.count
        head = torch.cat([torch.tensor([float(n)], dtype=torch.float64, device=device),
                          n * sums["x_shift"], n * sums["y_shift"]])
        dist.all_reduce(head, group=group)
        total = float(head[0])
        if total == 0:
            return SufficientStatistics(zeros, 0)
        x_shift, y_shift = head[1:1 + features] / total, head[1 + features:] / total
        moved = self.recentred(SufficientStatistics(sums, n), x_shift, y_shift).sums
        flat = torch.cat([moved[k].reshape(-1) for k in self._SUMMED])
        dist.all_reduce(flat, group=group)
        reduced, start = {}, 0
        for key in self._SUMMED:
            size = moved[key].numel()
            reduced[key] = flat[start:start + size].reshape(moved[key].shape)
            start += size
        reduced.update(x_shift=x_shift, y_shift=y_shift)
        return SufficientStatistics(reduced, round(total))

    def solve(self, statistics: SufficientStatistics) -> None:
        """Set ``Wout_`` and ``bias_`` from the statistics of all the training rows."""
        if statistics.count == 0:
            raise NotFittedError(
                f"Ridge '{self.name}' cannot be fitted: it received no training steps "
                f"(check warmup and data lengths).")
        s = statistics.sums
        weights, bias = F.ridge_solve(s["xtx"], s["xty"], s["x_sum"], s["y_sum"],
                                      statistics.count, self.ridge, self.fit_bias,
                                      name=f"Ridge '{self.name}'")
        if self.fit_bias and "x_shift" in s:  # back from the shifted origin
            bias = bias + s["y_shift"] - weights @ s["x_shift"]
        with torch.no_grad():
            self.Wout_.copy_(weights.to(self.dtype))
            self.bias_.copy_(bias.to(self.dtype))
        self.fitted = True

    def is_fitted(self) -> bool:
        """Whether the readout was solved (or loaded)."""
        return self.fitted

    def training_loss(self, statistics: SufficientStatistics) -> float:
        """The training MSE of the solved readout, exactly, from the statistics alone.

        ``Σ‖y − W x − b‖² = Σ‖y‖² − 2 tr(W XᵀY) − 2 b·Σy + tr(W XᵀX Wᵀ) + 2 b·W Σx + n‖b‖²``.
        """
        s = statistics.sums
        W = self.Wout_.detach().to(torch.float64)
        b = self.bias_.detach().to(torch.float64)
        if "x_shift" in s:  # the residual in the shifted coordinates of the sums
            b = b - s["y_shift"] + W @ s["x_shift"]
        rss = (s["yty"] - 2 * (W * s["xty"].T).sum() - 2 * (b @ s["y_sum"])
               + (W @ s["xtx"] * W).sum() + 2 * (b @ (W @ s["x_sum"]))
               + statistics.count * (b @ b))
        outputs = max(int(self.output_dim), 1)
        return max(float(rss), 0.0) / (statistics.count * outputs)

    # -------------------------------------------------------------- execution
    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        if not self.fitted:
            raise NotFittedError(
                f"Ridge '{self.name}' is not fitted yet: call fit(X, Y) before run()."
            )
        return torch.nn.functional.linear(x, self.Wout_, self.bias_), None

    def artifact_state(self) -> dict:
        return {"fitted": self.fitted}

    def restore_artifact_state(self, state: dict) -> None:
        self.fitted = bool(state.get("fitted", self.fitted))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "Wout_" in state_dict:
            self.fitted = True
