"""Predictions and scores of a trained model, read through the same data contract as ``fit``."""

from __future__ import annotations

from typing import Any

import torch

from deepreservoir.executor import execute, fresh_state, model_dtype_device, prepare
from deepreservoir.training.losses import metrics
from deepreservoir.training.options import check_batch_size, check_loss
from deepreservoir.training.samples import Samples, prepare_samples, targets_are_labels

__all__ = ["evaluate", "predict"]


def _outputs(model, values: torch.Tensor, lengths) -> torch.Tensor:
    external = {name: values for name in model.input_names}
    outputs, _, _ = execute(model, external, lengths, fresh_state(model, values.shape[0]))
    names = model.output_names
    return outputs[names[0]] if len(names) == 1 else outputs


def predict(model, X: Any, *, batch_size: int = 1024):
    """The model's outputs in eval mode, from zero states, keeping no state.

    The result has the layout and type of ``X``, as :meth:`~deepreservoir.Model.run`
    gives: ``(N, F)`` data of a model without time structure give ``(N, O)``;
    ``(N, T, F)`` give ``(N, T, O)``. Work is cut into ``batch_size`` series (or
    samples) to bound memory.

    Raises
    ------
    ParameterError
        ``batch_size`` is not an int >= 1.
    """
    check_batch_size(batch_size, "predict")
    batches, reference = prepare(model, X)
    values = next(iter(batches.values())).values
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if not model.has_time_structure() and reference.batch_size == 1:
                rows = values[0].unsqueeze(1)
                pieces = [_outputs(model, rows[i:i + batch_size], None)
                          for i in range(0, rows.shape[0], batch_size)]
                out = torch.cat(pieces)[:, 0].unsqueeze(0)
            else:
                pieces = []
                for i in range(0, values.shape[0], batch_size):
                    lengths = (None if reference.lengths is None
                               else reference.lengths[i:i + batch_size])
                    pieces.append(_outputs(model, values[i:i + batch_size], lengths))
                out = torch.cat(pieces)
    finally:
        model.train(was_training)
    return reference.restore(out)


def evaluate(model, X: Any, y: Any, *, loss: Any = "cross_entropy",
             batch_size: int = 1024) -> dict[str, float]:
    """Loss (and accuracy, for classification) of a model on data, in eval mode.

    ``y`` is read as in ``fit``: class labels for ``loss="cross_entropy"``, real
    values for ``"mse"``/``"bce"`` (in [0, 1] for ``"bce"``); per step or per sequence.

    Raises
    ------
    ParameterError
        ``loss`` is not one of ``"mse"``, ``"cross_entropy"``, ``"bce"`` or a callable;
        ``batch_size`` is not an int >= 1.
    DataError
        Data the normaliser refuses, labels out of range, ``"bce"`` targets outside [0, 1].
    """
    check_loss(loss, "evaluate")
    check_batch_size(batch_size, "evaluate")
    dtype, device = model_dtype_device(model)
    prepare(model, X)
    data: Samples = prepare_samples(model, X, y, labels=targets_are_labels(loss, y),
                                    dtype=dtype, device=device, loss=loss)
    was_training = model.training
    model.eval()
    outputs, targets = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                part = data.subset(slice(start, start + batch_size))
                out, tgt = part.select(model(part.x), 0)
                outputs.append(out)
                targets.append(tgt)
    finally:
        model.train(was_training)
    return metrics(torch.cat(outputs), torch.cat(targets), loss)
