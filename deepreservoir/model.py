"""Model: a graph of nodes with one executor, one data contract and one ``fit``.

Build models with the operators rather than by hand:
``Reservoir(300, seed=1) >> Ridge(1e-6)``. Whatever the nodes, a model reads
data the same way (:mod:`deepreservoir.data`), runs through the same executor
(:mod:`deepreservoir.executor`) and trains through one dispatcher
(:func:`deepreservoir.training.fit_model`) that returns the model and leaves
the history on ``model.history_``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepreservoir.composition import register_model_class
from deepreservoir.constraints import (
    AnyOf,
    Constraint,
    Interval,
    Predicate,
    Seed,
    validate_params,
)
from deepreservoir.data import as_batch, as_step, check_finite
from deepreservoir.errors import DataError, GraphError, ParameterError
from deepreservoir.executor import (
    RunState,
    build_graph,
    execute,
    external_features,
    fresh_state,
    kept_state,
    model_dtype_device,
    plan_of,
    prepare,
    require_fitted,
    restore_outputs,
    step_inputs,
    step_once,
)
from deepreservoir.generation import free_run, generate
from deepreservoir.graph import Graph
from deepreservoir.io import KEY, PATH
from deepreservoir.kinds import ClosedForm, Scaffolded
from deepreservoir.lora import LowRankAdapter
from deepreservoir.nodes.base import Node
from deepreservoir.threads import thread_scope

__all__ = ["KEYWORDS", "Model"]

_BOOL = Predicate(lambda value: isinstance(value, bool), "a bool (True or False)")

#: The keywords of the public methods of :class:`Model` (and of the single-node
#: conveniences of :class:`~deepreservoir.nodes.base.Node`, which delegate to
#: them), by method: one table, checked by :func:`check_keywords` before any work.
#: ``fit`` has its own table by training path (:mod:`deepreservoir.training.options`).
KEYWORDS: dict[str, dict[str, Constraint]] = {
    # run's ``iters``, generate's ``n`` and partial_fit's ``feedback`` and ``learners``
    # are checked where they are used (deepreservoir.generation, training.online)
    "run": {"reset": _BOOL},
    "states": {"reset": _BOOL, "inputs": _BOOL},
    "generate": {"reset": _BOOL},
    "partial_fit": {"warmup": Interval(int, 0, None), "reset": _BOOL},
    "save": {"path": PATH, "overwrite": _BOOL, "key": AnyOf((None, KEY))},
    "footprint": {"path": AnyOf((None, PATH))},
    "reseed": {"seed": AnyOf((None, Seed()))},
    "resample": {"generation": AnyOf((None, Interval(int, 0, None)))},
}


def check_keywords(method: str, **values: Any) -> None:
    """Check the keywords of ``Model.<method>`` against :data:`KEYWORDS`.

    Raises
    ------
    ParameterError
        ``The 'NAME' parameter of METHOD must be DESCRIPTION. Got VALUE.``
    """
    validate_params(method, values, KEYWORDS[method])


@register_model_class
class Model(Graph):
    """A directed graph of nodes, run and trained as one model.

    ``Model`` is a ``torch.nn.Module``: ``.to(device)``, ``.double()``,
    ``parameters()`` and ``state_dict()`` behave as in torch, only trainable
    tensors are parameters, and the states kept between calls move with the
    model.

    Parameters
    ----------
    nodes : iterable of Node
    links : iterable of Link
    seed : int
        Root seed for nodes that have no seed of their own and no seeded parent.

    Attributes
    ----------
    history_ : xarray.Dataset or None
        What the last :meth:`fit` recorded.
    """

    def __init__(self, nodes=(), links=(), seed: int = 0) -> None:
        super().__init__(nodes, links, seed)
        self._state: RunState | None = None
        self._step_cache: tuple | None = None
        self.history_ = None

    # ----------------------------------------------------------------- state
    def reset(self) -> dict[str, np.ndarray]:
        """Forget the states and delay buffers kept between calls.

        Returns
        -------
        dict
            The previous state of every stateful node, by name, as numpy arrays
            ``(N,)`` for one series or ``(B, N)`` (empty when none was kept), as
            reservoirpy's ``reset`` returns the previous states.
        """
        previous = {}
        if self._state is not None:
            for name, value in self._state.nodes.items():
                if isinstance(value, Tensor):
                    array = value.detach().cpu().numpy().copy()
                    previous[name] = array[0] if self._state.batch == 1 else array
        self._state = None
        return previous

    def _convert_kept_state(self, fn) -> None:
        if self._state is not None:
            self._state = self._state.converted(fn)

    def _apply(self, fn, recurse: bool = True):
        result = super()._apply(fn, recurse)
        self._convert_kept_state(fn)
        self._step_cache = None
        return result

    def _step_setup(self) -> tuple | None:
        """What every step needs, computed once the model is built: checked per call
        against one node's dtype and device, so moving a single node is noticed."""
        cache = self._step_cache
        if cache is not None and cache[0] == Node.conversions:
            return cache
        if not all(node.built for node in self.nodes.values()):
            return None
        dtype, device = model_dtype_device(self)
        plan = plan_of(self)
        features = {name: external_features(self, name) for name in plan.inputs}
        build_graph(self, {n: size or 0 for n, size in features.items()}, {})  # sizes agree
        closed = [node for node in self.nodes.values() if isinstance(node, ClosedForm)]
        self.__dict__["_step_cache"] = (Node.conversions, dtype, device, plan, features, closed)
        return self._step_cache

    # --------------------------------------------------------------- running
    def run(self, X: Any = None, *, iters: int | None = None, reset: bool = False):
        """Run the model over data and return the outputs.

        Parameters
        ----------
        X : ndarray, Tensor, list of arrays, or dict
            ``(T, F)``, ``(B, T, F)`` or a list of ``(T_i, F)``; a dict maps input
            node names to such data when the model has several inputs.
        iters : int, optional
            Instead of ``X``: free-run a closed loop (every input node fed by
            feedback) for ``iters`` steps (:func:`deepreservoir.generation.free_run`).
            To feed the output back as the next input, see :meth:`generate`.
        reset : bool
            Start from zero states instead of the states left by the last call.
            A batch size other than the kept state's also starts from zero.

        Returns
        -------
        The output in the input's layout and type; a dict by node name when the
        model has several outputs.
        """
        check_keywords("run", reset=reset)
        if X is None or iters is not None:
            if X is not None:
                raise DataError("run() takes data X or iters=, not both.")
            if iters is None:
                raise DataError("run() needs data X, or iters= to free-run a closed loop.")
            return free_run(self, iters, reset=reset)
        batches, reference = prepare(self, X)
        require_fitted(self)
        state = kept_state(self, reference.batch_size, reset)
        with torch.no_grad(), thread_scope(self, reference.batch_size):
            outputs, state, _ = execute(self, {n: b.values for n, b in batches.items()},
                                        reference.lengths, state)
        self._state = state
        return restore_outputs(self, reference, outputs)

    def states(self, X: Any, *, nodes: Any = None, reset: bool = False,
               inputs: bool = False) -> dict:
        """Run the model over data and return the output of every node, by name.

        The same executor as :meth:`run` computes the values, so the entry of an
        output node equals what :meth:`run` returns for the same call.

        Parameters
        ----------
        X : data as in :meth:`run`
        nodes : str or list of str, optional
            Return only these nodes. Then only they and their ancestors run
            (nodes downstream, e.g. an unfitted Ridge, are not needed) and the
            states kept between calls are left unchanged.
        reset : bool
            Start from zero states instead of the states left by the last call.
        inputs : bool
            Return what each node receives (its inputs concatenated in edge
            order, delayed edges shifted) instead of its output.

        Returns
        -------
        dict
            Node name → values of shape (T, O) / (B, T, O) / list of (T_i, O),
            in the layout and type of ``X`` as for :meth:`run`; keys in
            topological order. With ``nodes=None`` the kept states advance as
            after :meth:`run`.

        Examples
        --------
        >>> import numpy as np
        >>> import deepreservoir as dr
        >>> model = dr.Reservoir(10, seed=0, name="res") >> dr.Tanh(name="act")
        >>> {name: out.shape for name, out in model.states(np.ones((4, 2))).items()}
        {'res': (4, 10), 'act': (4, 10)}
        """
        check_keywords("states", reset=reset, inputs=inputs)
        wanted = self._wanted_nodes(nodes)
        only = None
        if nodes is not None:
            import networkx as nx

            only = set(wanted)
            for name in wanted:
                only |= nx.ancestors(self.graph, name)
        batches, reference = prepare(self, X, only=only)
        require_fitted(self, include=only)
        state = kept_state(self, reference.batch_size, reset)
        with torch.no_grad(), thread_scope(self, reference.batch_size):
            outputs, new_state, received = execute(
                self, {n: b.values for n, b in batches.items()}, reference.lengths, state,
                collect=set(wanted) if inputs else frozenset(), only=only)
        if only is None:
            self._state = new_state
        chosen = received if inputs else outputs
        return {name: reference.restore(chosen[name]) for name in wanted}

    def _wanted_nodes(self, nodes: Any) -> list[str]:
        if nodes is None:
            return list(plan_of(self).order)
        names = [nodes] if isinstance(nodes, str) else nodes
        try:
            names = list(names)
        except TypeError:
            names = None
        if not names or not all(isinstance(name, str) for name in names):
            raise ParameterError(
                f"The 'nodes' parameter of states must be a node name or a non-empty list of "
                f"names. Got {nodes!r}.")
        for name in names:
            self.node(name)  # a GraphError listing the nodes when the name is unknown
        return list(dict.fromkeys(names))

    def step(self, x: Any):
        """Advance one time step and keep the state, as reservoirpy's ``model.step``.

        Parameters
        ----------
        x : array or Tensor (F,) or (B, F); dict by input node name; or None
            ``None`` runs a closed loop: nodes fed only by feedback need no data.

        Returns
        -------
        The output ``(O,)`` / ``(B, O)`` in the type of ``x`` (for ``None``: numpy,
        ``(O,)`` for one series); a dict by node name when the model has several outputs.
        """
        setup = self._step_setup()
        if setup is None:
            dtype, device = model_dtype_device(self)
            external, _, _ = step_inputs(self, x, dtype, device)
            build_graph(self, {n: int(v.shape[-1]) for n, v in external.items()}, {})
            setup = self._step_setup()
        _, dtype, device, plan, features, closed = setup
        if len(features) == 1 and isinstance(x, (np.ndarray, Tensor)):
            name, expected = next(iter(features.items()))
            values, single, backend = as_step(x, dtype=dtype, device=device, features=expected)
            external = {name: values}
        else:
            external, single, backend = step_inputs(self, x, dtype, device, features)
        for node in closed:
            if not node.is_fitted():
                require_fitted(self)
        state = self._state
        if external:
            batch = next(iter(external.values())).shape[0]
        else:  # no external input: the series the kept state holds, one by default
            batch = state.batch if state is not None else 1
            single = batch == 1
            external = {n: torch.zeros(batch, 0, dtype=dtype, device=device)
                        for n in plan.inputs}
        state = kept_state(self, batch, False)
        node_states, buffers = dict(state.nodes), dict(state.edges)
        with torch.no_grad():
            outputs = step_once(self, plan, external, node_states, buffers)
        # A plain attribute, set without nn.Module.__setattr__'s bookkeeping (hot path).
        self.__dict__["_state"] = RunState(batch, node_states, buffers)
        return self._give_back({n: outputs[n] for n in plan.outputs}, single, backend)

    @staticmethod
    def _give_back(outputs: dict[str, Tensor], single: bool, backend: str):
        converted = {}
        for name, value in outputs.items():
            if backend == "torch":
                converted[name] = value[0] if single else value
                continue
            array = value.numpy() if value.device.type == "cpu" else value.cpu().numpy()
            # a copy: the output can be the kept state itself, which the caller must not alias
            converted[name] = (array[0] if single else array).copy()
        return next(iter(converted.values())) if len(converted) == 1 else converted

    def forward(self, x: Any):
        """Apply the model from zero states, keeping no state (``model(x)``).

        A torch tensor ``(B, T, F)`` or ``(T, F)`` gives a differentiable tensor
        of the same layout; one step ``(F,)`` gives ``(O,)``; numpy arrays and
        ragged lists give numpy arrays in their layout. With several outputs,
        a dict by node name.
        """
        if isinstance(x, Tensor) and x.ndim in (2, 3) and x.is_floating_point():
            check_finite(x, "x")  # as as_batch does on the other paths
            outputs = self._from_zero(x if x.ndim == 3 else x.unsqueeze(0), None)
            result = {n: v if x.ndim == 3 else v[0] for n, v in outputs.items()}
            return next(iter(result.values())) if len(result) == 1 else result
        if isinstance(x, Mapping):
            raise DataError("forward() takes one array for every input; use run() with a dict.")
        dtype, device = model_dtype_device(self)
        with torch.no_grad():
            if getattr(x, "ndim", None) == 1:
                values, _, backend = as_step(x, dtype=dtype, device=device)
                outputs = self._from_zero(values.unsqueeze(1), None)
                return self._give_back({n: v[:, 0] for n, v in outputs.items()}, True, backend)
            reference = as_batch(x, dtype=dtype, device=device)
            outputs = self._from_zero(reference.values, reference.lengths)
        return restore_outputs(self, reference, outputs)

    def _from_zero(self, values: Tensor, lengths: Tensor | None) -> dict[str, Tensor]:
        """The outputs of ``values`` (B, T, F) from zero states (differentiable)."""
        inputs = plan_of(self).inputs
        if not all(node.built for node in self.nodes.values()):
            build_graph(self, {n: int(values.shape[-1]) for n in inputs}, {})
        for name in inputs:
            expected = external_features(self, name)
            if expected is not None and int(values.shape[-1]) != expected:
                raise DataError(
                    f"The 'x' argument of forward must have {expected} features (last axis) "
                    f"for input node '{name}'. Got {int(values.shape[-1])}.")
        require_fitted(self)
        dtype, device = model_dtype_device(self)
        values = values.to(dtype=dtype, device=device)  # a no-op when they already match
        outputs, _, _ = execute(self, {n: values for n in inputs}, lengths,
                                fresh_state(self, values.shape[0]))
        return {n: outputs[n] for n in plan_of(self).outputs}

    def generate(self, n: int, *, warmup: Any = None, start: Any = None,
                 reset: bool = False):
        """Generate ``n`` steps, feeding each output back as the next input.

        Runs ``warmup`` first (or starts from ``start`` and the kept state); see
        :func:`deepreservoir.generation.generate`. reservoirpy users write this
        loop by hand (``x = model(x)``); here B series generate together.

        Returns
        -------
        ``(n, O)`` for one series, ``(B, n, O)`` for B, in the type of the data.
        """
        check_keywords("generate", reset=reset)
        return generate(self, n, warmup=warmup, start=start, reset=reset)

    # -------------------------------------------------------------- training
    def fit(self, X: Any, Y: Any = None, **options: Any) -> Model:
        """Train the model on data and return it; the record goes to ``history_``.

        The path follows from the model's nodes, never from the keywords:

        * **closed form** (only closed-form nodes, e.g. :class:`~deepreservoir.Ridge`):
          one streaming pass accumulates sufficient statistics, then a solve.
          Options: ``warmup``, ``reset``, ``chunk_size``, ``verbose``, ``seed``.
        * **gradient** (trainable parameters: adapters, gates, heads): the
          :class:`~deepreservoir.training.Trainer`. Options: ``epochs``,
          ``batch_size``, ``lr``, ``loss``, ... (see
          :func:`deepreservoir.training.fit_model`).
        * **mixed** (both): closed-form nodes are solved, the parameters trained
          through them, and the closed-form nodes solved again.
        * **online** (:class:`~deepreservoir.kinds.Online` learners): they learn
          step by step while the model runs, each from its initial weights.
          Options: ``warmup``, ``reset``, ``verbose``, ``seed``, ``feedback``
          (``"target"``: teacher forcing, as reservoirpy's ``fit``; or
          ``"prediction"``) and ``learners`` (``"per_series"``: B series are B
          independent learners; ``"shared"``: one learner through the series in
          turn, as reservoirpy). See :mod:`deepreservoir.training.online`.

        A keyword that does not apply to the model's path is refused with a
        message naming the path.

        Parameters
        ----------
        X : data as in :meth:`run`
        Y : targets read against ``X`` (:func:`deepreservoir.data.as_targets`),
            or a dict by trained node name.

        Returns
        -------
        Model
            ``self``.
        """
        from deepreservoir.training import fit_model

        fit_model(self, X, Y, **options)
        return self

    def partial_fit(self, X: Any, Y: Any, *, warmup: int = 0, reset: bool = False,
                    feedback: str = "prediction", learners: str = "per_series"):
        """Online learning on one more chunk of data, continuing where the learners are.

        Unlike :meth:`fit`, the learners keep their weights and the model its
        state (``reset=False``), and each learner's own prediction is fed back
        (``feedback="prediction"``), as in reservoirpy's ``partial_fit``; this is
        the FORCE loop when a readout feeds back into its reservoir. Needs a model
        whose trained nodes are online learners (e.g. :class:`~deepreservoir.RLS`).

        Returns
        -------
        The model's output(s) at every step while it learned, in the layout of ``X``.
        """
        from deepreservoir.training.fitting import training_path
        from deepreservoir.training.online import partial_fit_online

        check_keywords("partial_fit", warmup=warmup, reset=reset)
        path, deciders = training_path(self)
        if path != "online":
            raise GraphError(
                f"partial_fit() continues online learning, but this model trains by its "
                f"{path.replace('_', ' ')} path ({deciders}); use fit().")
        return partial_fit_online(self, X, Y, warmup=warmup, reset=reset, feedback=feedback,
                                  learners=learners)

    # ------------------------------------------------------ LottaLoRA helpers
    def save(self, path: Any, *, overwrite: bool = True, key: Any = None) -> Any:
        """Save the model as a JSON spec plus safetensors; see :func:`deepreservoir.io.save`.

        Parameters
        ----------
        path : str or os.PathLike
            The artifact directory (conventionally ending in ``.dr``).
        overwrite : bool
            Replace an existing artifact at ``path``.
        key : bytes or str, optional
            Sign the artifact with this key (HMAC-SHA256), so that
            ``dr.load(path, key=key)`` refuses any edit; see docs/artifacts.md.

        Returns
        -------
        Path
            The artifact directory.
        """
        from deepreservoir.io import save

        check_keywords("save", path=path, overwrite=overwrite, key=key)
        return save(self, path, overwrite=overwrite, key=key)

    def footprint(self, path: Any = None):
        """Trainable, frozen and stored counts; see :func:`deepreservoir.footprint.footprint`.

        Parameters
        ----------
        path : str or os.PathLike, optional
            A saved artifact of this model (it must exist): its size on disk
            replaces the estimate of the stored bytes.
        """
        from deepreservoir.footprint import footprint

        check_keywords("footprint", path=path)
        if path is not None and not Path(path).exists():
            raise ParameterError(
                f"The 'path' parameter of footprint must be a saved artifact or None. Got "
                f"{os.fspath(path)!r}, which does not exist.")
        return footprint(self, path)

    def _scaffolds(self) -> list:
        return [node for node in self.nodes.values() if isinstance(node, Scaffolded)]

    def reseed(self, seed: int | None) -> Model:
        """Regenerate every scaffold from root seed ``seed`` (``None``: the built seeds).

        Adapters, gates and heads are kept; see :meth:`deepreservoir.Scaffold.reseed`.
        """
        check_keywords("reseed", seed=seed)
        for node in self._scaffolds():
            node.reseed(seed)
        return self

    def resample(self, generation: int | None = None) -> Model:
        """Draw scaffold generation ``generation`` in every scaffold (default: the next)."""
        check_keywords("resample", generation=generation)
        for node in self._scaffolds():
            node.resample(generation)
        return self

    def remove_scaffold(self) -> Model:
        """Drop ``β·W_seed`` from every adapted layer (the "scaffold removed" ablation)."""
        for node in self._scaffolds():
            node.remove_scaffold()
        return self

    def restore_scaffold(self) -> Model:
        """Undo :meth:`remove_scaffold`."""
        for node in self._scaffolds():
            node.restore_scaffold()
        return self

    def adapters(self) -> dict[str, LowRankAdapter]:
        """The nodes with a low-rank adapter, by name."""
        return {name: node for name, node in self.nodes.items()
                if isinstance(node, LowRankAdapter) and node.r > 0}

    def merge_adapters(self) -> Model:
        """Fold every adapter into its frozen weight in place (fast inference); see
        :meth:`deepreservoir.lora.LowRankAdapter.merge`."""
        for node in self.adapters().values():
            node.merge()
        return self

    def unmerge_adapters(self) -> Model:
        """Undo :meth:`merge_adapters` exactly (the frozen weights are regenerated)."""
        for node in self.adapters().values():
            node.unmerge()
        return self

    def alpha_convention(self) -> dict[str, str]:
        """The LoRA α convention of every adapted node, e.g. ``{"layer0": "α/r = 8/8 = 1"}``."""
        return {name: node.alpha_convention() for name, node in self.nodes.items()
                if isinstance(node, LowRankAdapter)}
