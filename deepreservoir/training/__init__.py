"""Training: one dispatcher, a Trainer with callbacks, closed-form and gradient paths.

========================  =====================================================
module                    what it holds
========================  =====================================================
``fitting``               :func:`fit_model`, behind ``Model.fit``: picks the path
``trainer``               :class:`Trainer`: ``train_step(batch)`` and the loop
``callbacks``             :class:`Callback`, progress, early stopping, ablations
``checkpoint``            :class:`Checkpoint`: atomic writes, bit-identical resume
``closed_form``           streaming sufficient statistics and the solve
``online``                online learners stepping inside the executor
``unsupervised``          nodes that adapt without targets, before the rest
``samples``               training samples and samplers (a DataLoader is accepted)
``options``               the keywords of each path and their validation
``history``               ``model.history_`` as an ``xarray.Dataset``
``evaluation``            :func:`predict`, :func:`evaluate`
========================  =====================================================
"""

from deepreservoir.errors import TrainingError
from deepreservoir.training.callbacks import (
    Callback,
    EarlyStopping,
    FunctionCallback,
    ProgressBar,
    ScaffoldResampling,
    SeedGatedLabels,
)
from deepreservoir.training.checkpoint import Checkpoint
from deepreservoir.training.closed_form import fit_closed_form
from deepreservoir.training.evaluation import evaluate, predict
from deepreservoir.training.fitting import fit_model, has_gradient_nodes, training_path
from deepreservoir.training.online import fit_online, partial_fit_online
from deepreservoir.training.options import LOSSES, OPTIMIZERS, SCHEDULES, GradientConfig
from deepreservoir.training.samples import LoaderSampler, Samples, ShuffledSampler
from deepreservoir.training.trainer import Trainer
from deepreservoir.training.unsupervised import fit_unsupervised

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "FunctionCallback",
    "GradientConfig",
    "LoaderSampler",
    "ProgressBar",
    "Samples",
    "ScaffoldResampling",
    "SeedGatedLabels",
    "ShuffledSampler",
    "Trainer",
    "TrainingError",
    "evaluate",
    "fit_closed_form",
    "fit_model",
    "fit_online",
    "fit_unsupervised",
    "has_gradient_nodes",
    "partial_fit_online",
    "predict",
    "training_path",
]
