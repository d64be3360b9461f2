"""``Model.fit``: one short dispatcher over the training paths.

The path is read from the model's declared node kinds, never from the keywords:

* ``"closed_form"``: closed-form nodes (:class:`~deepreservoir.kinds.ClosedForm`)
  and no trainable parameter;
* ``"gradient"``: trainable parameters (:class:`~deepreservoir.kinds.GradientTrained`)
  and no closed-form node;
* ``"online"``: online learners (:class:`~deepreservoir.kinds.Online`), which
  learn step by step while the model runs (:mod:`deepreservoir.training.online`);
* ``"unsupervised"``: only nodes that adapt without targets
  (:class:`~deepreservoir.kinds.Unsupervised`, e.g. ``IPReservoir``). On every
  other path such nodes adapt first, in dataflow order
  (:mod:`deepreservoir.training.unsupervised`), and the rest trains on their
  adapted features;
* ``"mixed"``: closed-form and gradient-trained nodes. It trains in three
  phases: the closed-form nodes are solved on the features of the untrained
  model (a fresh adapter is a no-op, so these are the scaffold's features); the
  parameters are trained by gradient descent
  *through* them, their weights fixed; the closed-form nodes are solved again on
  the trained features. The closed-form node must then be the model's single
  output and the loss ``"mse"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from deepreservoir.errors import (
    DataError,
    GraphError,
    NotFittedError,
    ParameterError,
    format_value,
)
from deepreservoir.executor import build_graph, model_dtype_device
from deepreservoir.kinds import GradientTrained
from deepreservoir.training.callbacks import (
    ProgressBar,
    ScaffoldResampling,
    SeedGatedLabels,
    as_callback,
)
from deepreservoir.training.checkpoint import Checkpoint
from deepreservoir.training.closed_form import closed_form_nodes, fit_closed_form
from deepreservoir.training.history import closed_form_history, gradient_history
from deepreservoir.training.online import fit_online, online_nodes
from deepreservoir.training.options import (
    GradientConfig,
    check_common,
    check_keywords,
    derive_seed,
)
from deepreservoir.training.samples import (
    LoaderSampler,
    Samples,
    label_groups,
    prepare_samples,
    targets_are_labels,
)
from deepreservoir.training.trainer import Trainer
from deepreservoir.training.unsupervised import fit_unsupervised, unsupervised_nodes

__all__ = ["fit_model", "has_gradient_nodes", "training_path"]


def _trains_by_gradient(node) -> bool:
    if not isinstance(node, GradientTrained):
        return False
    if node.built:
        return any(p.requires_grad for p in node.parameters())
    return node.trains_by_gradient()


def has_gradient_nodes(model) -> bool:
    """Whether a model has (or will have, once built) gradient-trainable parameters."""
    return any(_trains_by_gradient(node) for node in model.nodes.values())


def training_path(model) -> tuple[str, str]:
    """The path ``fit`` takes, and the nodes that decide it (for messages)."""
    closed = closed_form_nodes(model)
    gradient = [name for name, node in model.nodes.items() if _trains_by_gradient(node)]
    online = online_nodes(model)
    unsupervised = unsupervised_nodes(model)
    describe = ", ".join(f"{type(model.nodes[n]).__name__} '{n}'"
                         for n in unsupervised + closed + gradient + online)
    if online:
        if closed or gradient:
            raise GraphError(
                f"A model with online learners {online} trains them while it runs; it cannot "
                f"also hold closed-form or gradient-trained nodes ({closed + gradient}). Fit "
                f"those in a model of their own first.")
        return "online", describe
    if closed and gradient:
        return "mixed", describe
    if closed:
        return "closed_form", describe
    if gradient:
        return "gradient", describe
    if unsupervised:
        return "unsupervised", describe
    raise NotFittedError(
        "This model has nothing to train: no closed-form node (e.g. Ridge), no trainable "
        "parameters (a Scaffold or Reservoir with r > 0, a LoRAReadout, Dense or BetaGate) "
        "and no unsupervised node (e.g. IPReservoir).")


def fit_model(model, X: Any, Y: Any = None, *, parallel: Any = None, **options: Any):
    """Train ``model`` on ``X`` and ``Y`` along its path; the record goes to ``model.history_``.

    Parameters
    ----------
    model : Model
    X : data as in :meth:`~deepreservoir.Model.run`
        ``None`` only with a ``sampler``.
    Y : targets read against ``X`` (see :mod:`deepreservoir.data`); a dict by node
        name for several closed-form nodes.
    warmup : int
        Steps left out at the start of every series (every path).
    verbose : {0, 1, 2}
        0: silent; 1: a progress bar; 2: also a line per epoch (every path).
    seed : int
        Seeds shuffling, dropout and the validation split (closed form has no
        randomness and accepts it so that one call fits every model).
    reset, chunk_size
        Closed form: start from zero states (default); process time in chunks.
    epochs, batch_size, lr : int, int, float
        Gradient path; the paper's MNIST recipe is 20, 128, 1e-3.
    optimizer : {"adamw", "adam", "sgd"}
    weight_decay : float >= 0
    schedule : {"cosine", "constant", "linear"}
    loss : {"mse", "cross_entropy", "bce"} or callable ``loss(outputs, targets)``
        ``"cross_entropy"`` reads ``Y`` as class labels.
    validation_data : (X_val, y_val), optional
    validation_split : float in [0, 1)
        Fraction of the samples held out (a seeded draw) when no validation_data.
    device : str or torch.device, optional
        Moves the model there first.
    callbacks : iterable of Callback or functions ``fn(epoch, logs, model)``
    checkpoint : path, optional
        Directory for checkpoints (:class:`~deepreservoir.training.Checkpoint`).
    checkpoint_every : int
    resume : bool
        Continue from the checkpoint in ``checkpoint``.
    resample : {None, "static", "epoch", "batch"}
        Ablation: a new scaffold every epoch or batch (:class:`ScaffoldResampling`).
    seed_labels : dict {scaffold seed: labels}, optional
        Ablation: one adapter across several scaffold seeds (:class:`SeedGatedLabels`).
    grad_clip : float, optional
        Clip the global gradient norm.
    sampler : torch DataLoader or iterable of (x, y), optional
        Batches to train on instead of shuffling ``X``.
    parallel : object, optional
        Not a ``fit`` keyword: the data-parallel hooks that
        :func:`deepreservoir.distributed.fit` passes (``trainer(model, config,
        callbacks)`` for the gradient path, ``shard`` and ``reduce_statistics`` for
        the closed form, see :mod:`deepreservoir.training.closed_form`).

    Returns
    -------
    Model
        ``model``, with ``model.history_`` set (see :mod:`deepreservoir.training.history`).

    Raises
    ------
    ParameterError
        A keyword that does not apply to the path, or a bad value.
    DataError
        Data or targets that do not fit the model.
    TrainingError
        The loss, a validation metric, a parameter or the outputs became NaN or
        Inf; the model is back in its last good state
        (:mod:`deepreservoir.training.trainer`).
    """
    path, deciders = training_path(model)
    options = check_keywords(path, options, deciders)
    if path in ("online", "closed_form", "unsupervised"):
        check_common(options)
        if not isinstance(options["reset"], bool):
            raise ParameterError(f"The 'reset' parameter of fit must be a bool. "
                                 f"Got {format_value(options['reset'])}.")
    adapted: dict[str, dict] = {}
    if unsupervised_nodes(model):  # first: adapt without targets, in dataflow order
        if X is None:
            raise DataError(f"fit() needs X to adapt the unsupervised nodes ({deciders}); a "
                            f"sampler alone cannot feed them.")
        adapted = fit_unsupervised(model, X, warmup=int(options["warmup"]),
                                   reset=options.get("reset", True))
    if path == "unsupervised":  # Y, if given, is not used (as reservoirpy's IPReservoir.fit)
        model.history_ = closed_form_history(adapted, {**options, "chunk_size": None},
                                             path="unsupervised")
        return model
    if path == "online":
        summary = fit_online(model, X, Y, warmup=int(options["warmup"]), reset=options["reset"],
                             verbose=options["verbose"], feedback=options["feedback"],
                             learners=options["learners"])
        model.history_ = closed_form_history({**adapted, **summary},
                                             {**options, "chunk_size": None}, path="online")
        return model
    if path == "closed_form":
        summary = fit_closed_form(model, X, Y, warmup=int(options["warmup"]),
                                  reset=options["reset"], chunk_size=options["chunk_size"],
                                  verbose=options["verbose"], parallel=parallel)
        model.history_ = closed_form_history({**adapted, **summary}, options)
        return model
    return _fit_by_gradient(model, X, Y, path, options, parallel)


def _callbacks(options: dict[str, Any], writes: bool = True) -> list:
    chosen = []
    if options["checkpoint"] is not None:
        directory = options["checkpoint"]
        if not isinstance(directory, (str, os.PathLike)) or str(directory) == "":
            raise ParameterError(f"The 'checkpoint' parameter of fit must be a path to a "
                                 f"folder or None. Got {format_value(directory)}.")
        checkpoint = Checkpoint(directory, options["checkpoint_every"], options["resume"])
        checkpoint.parameter = "The 'checkpoint' parameter of fit"
        if writes:  # in a data-parallel run only process 0 writes (and checks) the folder
            checkpoint.check_directory()  # before any data is read or epoch run
        chosen.append(checkpoint)
    if options["verbose"]:
        chosen.append(ProgressBar(options["verbose"]))
    if options["resample"] in ("epoch", "batch"):
        chosen.append(ScaffoldResampling(options["resample"]))
    if options["seed_labels"] is not None:
        chosen.append(SeedGatedLabels(options["seed_labels"]))
    user = options["callbacks"]
    if not isinstance(user, Iterable) or isinstance(user, (str, bytes)):
        user = [user]
    chosen.extend(as_callback(c) for c in user)
    return chosen


def _split(data: Samples, fraction: float, seed: int) -> tuple[Samples, Samples]:
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(
        derive_seed(seed, 1 << 40)))
    n_val = max(1, round(fraction * len(data)))
    if n_val >= len(data):
        raise DataError(
            f"The 'validation_split' parameter ({fraction}) leaves no training sample out of "
            f"{len(data)}; a model with time structure splits whole series, so give several "
            f"series (B, T, F) or validation_data.")
    return data.subset(order[n_val:].sort().values), data.subset(order[:n_val].sort().values)


def _check_output(node, name: str, data: Samples, what: str) -> None:
    out_dim = int(node.output_dim)
    if data.labels:
        counted = data.y.masked_fill(~data.mask, 0) if data.per_step else data.y
        if int(counted.max()) >= out_dim:
            high = int(counted.max())
            where = tuple(int(i) for i in torch.nonzero(counted == high)[0].tolist())
            raise DataError(
                f"Class labels in '{what}' are out of range: they must be in [0, {out_dim}) "
                f"for a model with {out_dim} outputs. Got {high} at index {where}.")
    elif data.y.shape[-1] != out_dim:
        raise DataError(
            f"The targets '{what}' have {data.y.shape[-1]} features but the model outputs "
            f"{out_dim} ('{name}'): shape {tuple(data.y.shape)} does not match outputs "
            f"(..., {out_dim}).")


def _fit_by_gradient(model, X, Y, path: str, options: dict[str, Any], parallel=None):
    config = GradientConfig.from_options(options)
    # checks the checkpoint folder before any work (on the process that writes it)
    callbacks = _callbacks(options, parallel is None or getattr(parallel, "rank", 0) == 0)
    if options["seed_labels"] is not None and options["sampler"] is not None:
        raise ParameterError(
            "The 'seed_labels' parameter of fit cannot be used with a 'sampler': the sampler's "
            "batches would mix the seeds' labels. Give X and y instead of a sampler.")
    if options["device"] is not None:
        model.to(options["device"])
    dtype, device = model_dtype_device(model)
    if len(model.output_names) != 1:
        raise GraphError(
            f"Gradient training needs a model with one output node. This one has "
            f"{model.output_names}.")
    out_name = model.output_names[0]
    out_node = model.nodes[out_name]
    labels = targets_are_labels(config.loss, Y)
    sampler = None
    if options["sampler"] is not None:
        sampler = LoaderSampler(options["sampler"], model, labels=labels, dtype=dtype,
                                device=device)
        first = sampler.read(next(iter(options["sampler"])))
        data = first if X is None else prepare_samples(
            model, X, Y, labels=labels, warmup=config.warmup, dtype=dtype, device=device,
            loss=config.loss)
    else:
        if X is None:
            raise DataError("fit() needs data: X is None and no sampler was given.")
        data = prepare_samples(model, X, Y, labels=labels, warmup=config.warmup, dtype=dtype,
                               device=device, loss=config.loss)
    validation = None
    if options["validation_data"] is not None:
        pair = options["validation_data"]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError(
                f"The 'validation_data' parameter of fit must be a pair (X_val, y_val). "
                f"Got {format_value(pair)}.")
        validation = prepare_samples(model, pair[0], pair[1], labels=labels, warmup=0,
                                     dtype=dtype, device=device, loss=config.loss,
                                     names=("validation_data[0]", "validation_data[1]"))
    elif options["validation_split"] > 0 and sampler is None:
        data, validation = _split(data, float(options["validation_split"]), config.seed)
    if options["seed_labels"] is not None:  # every label owned, before any epoch
        label_groups(data, options["seed_labels"], "y")
        if validation is not None:
            label_groups(validation, options["seed_labels"], "validation_data[1]"
                         if options["validation_data"] is not None else "y (validation_split)")
    target_dims = {}
    if out_node.output_dim is None:
        if labels:
            target_dims[out_name] = max(
                data.n_classes(), validation.n_classes() if validation is not None else 0)
        else:
            target_dims[out_name] = int(data.y.shape[-1])
    build_graph(model, {n: int(data.x.shape[-1]) for n in model.input_names}, target_dims)
    for part, what in ((data, "y"), (validation, "validation_data[1]")):
        if part is not None:
            _check_output(out_node, out_name, part, what)
    closed = closed_form_nodes(model)
    if closed and (closed != [out_name] or config.loss != "mse"):
        raise GraphError(
            f"A model with closed-form nodes {closed} and gradient-trained nodes trains only "
            f"when the closed-form node is the single output ('{out_name}') and loss='mse'. "
            f"Got loss={config.loss!r}.")
    fit_options = {"warmup": config.warmup, "reset": True, "chunk_size": options["chunk_size"],
                   "parallel": parallel}
    if closed:
        _solve(model, X, Y, fit_options)
    trainer = (Trainer(model, config, callbacks) if parallel is None
               else parallel.trainer(model, config, callbacks))
    rows = trainer.fit(data if sampler is None else None, sampler=sampler,
                       validation=validation)
    summary = _solve(model, X, Y, fit_options) if closed else None
    model.history_ = gradient_history(rows, trainer.gates, model, config, config.loss,
                                      summary)
    return model


def _solve(model, X, Y, options) -> dict[str, dict]:
    was_training = model.training
    model.eval()
    try:
        return fit_closed_form(model, X, Y, **options)
    finally:
        model.train(was_training)

