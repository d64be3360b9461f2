"""The ``ESN`` convenience model: a reservoir and its readout, in reservoirpy's shape."""

from __future__ import annotations

import inspect
from typing import Any

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.model import Model
from deepreservoir.nodes.base import Node
from deepreservoir.nodes.input import Input
from deepreservoir.nodes.output import Output
from deepreservoir.nodes.reservoir import Reservoir
from deepreservoir.nodes.ridge import Ridge

__all__ = ["ESN"]

_RESERVOIR_ARGS = set(inspect.signature(Reservoir.__init__).parameters) - {"self"}
_READOUT_ARGS = {"ridge", "fit_bias", "output_dim", "Wout", "readout_bias"}


def _node(value: Any, label: str) -> Node | None:
    if value is None or isinstance(value, Node):
        return value
    raise ParameterError(
        f"The '{label}' parameter of ESN must be a node or None. Got {format_value(value)}.")


def _flag(value: Any, label: str) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(
            f"The '{label}' parameter of ESN must be a bool. Got {format_value(value)}.")
    return value


class ESN(Model):
    """An echo state network: ``reservoir >> readout``, with the usual options.

    The reservoir is built from the keyword arguments that
    :class:`~deepreservoir.Reservoir` takes, the readout (a
    :class:`~deepreservoir.Ridge` named ``"readout"``) from ``ridge``,
    ``fit_bias``, ``output_dim``, ``Wout`` and ``readout_bias``, unless the nodes
    are given. ``dtype`` goes to both. The graph:

    * ``reservoir >> readout``;
    * ``feedback=True``: also ``reservoir << readout`` (the readout's output of
      the previous step is appended to the reservoir's input);
    * ``input_to_readout=True``: an ``Input`` feeds both, the readout receiving
      ``[reservoir states, input]`` in that order;
    * ``return_reservoir_activity=True``: an ``Output`` named ``"reservoir"``
      exposes the states, so ``run`` returns a dict by name.

    It is a :class:`~deepreservoir.Model` in every other respect; a saved ESN
    loads back as a ``Model`` with the same graph.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> esn = dr.ESN(units=50, lr=0.5, sr=0.9, ridge=1e-6, seed=1)
    >>> x = np.sin(np.linspace(0, 20, 300))[:, None]
    >>> esn.fit(x[:-1], x[1:], warmup=20).run(x[:-1]).shape
    (299, 1)
    """

    def __init__(self, reservoir: Node | None = None, readout: Node | None = None,
                 feedback: bool = False, input_to_readout: bool = False,
                 return_reservoir_activity: bool = False, **kwargs: Any) -> None:
        reservoir, readout = _node(reservoir, "reservoir"), _node(readout, "readout")
        flags = {"feedback": _flag(feedback, "feedback"),
                 "input_to_readout": _flag(input_to_readout, "input_to_readout"),
                 "return_reservoir_activity": _flag(return_reservoir_activity,
                                                    "return_reservoir_activity")}
        kwargs.pop("name", None)
        unknown = sorted(set(kwargs) - _RESERVOIR_ARGS - _READOUT_ARGS)
        if unknown:
            raise ParameterError(
                f"The '{unknown[0]}' parameter of ESN is neither a Reservoir nor a Ridge "
                f"parameter. Reservoir takes {sorted(_RESERVOIR_ARGS)}; the readout takes "
                f"{sorted(_READOUT_ARGS)}.")
        if reservoir is None:
            reservoir = Reservoir(**{k: v for k, v in kwargs.items() if k in _RESERVOIR_ARGS})
        if readout is None:
            options = {k: v for k, v in kwargs.items() if k in _READOUT_ARGS}
            if "readout_bias" in options:
                options["bias"] = options.pop("readout_bias")
            if "dtype" in kwargs:
                options["dtype"] = kwargs["dtype"]
            readout = Ridge(name="readout", **options)
        if flags["input_to_readout"]:
            source = Input()
            graph = [source >> reservoir, source] >> readout
        else:
            graph = reservoir >> readout
        if flags["feedback"]:
            graph = graph & (reservoir << readout)
        if flags["return_reservoir_activity"]:
            graph = graph & (reservoir >> Output(name="reservoir"))
        super().__init__(list(graph.nodes.values()), graph.links(), seed=graph.seed)
        self._roles = {"reservoir": self.name_of(reservoir), "readout": self.name_of(readout)}
        self.feedback, self.input_to_readout = flags["feedback"], flags["input_to_readout"]
        self.return_reservoir_activity = flags["return_reservoir_activity"]

    @property
    def reservoir(self) -> Node:
        """The reservoir node."""
        return self.nodes[self._roles["reservoir"]]

    @property
    def readout(self) -> Node:
        """The readout node."""
        return self.nodes[self._roles["readout"]]

