"""Where lower layers find the model class, without importing the modules above them.

``a >> b`` on two nodes must return a :class:`~deepreservoir.Model`, but nodes sit
below the graph and the model in the layer map (docs/contributing.md): they may
not import them. The model module registers its class here when the package is
imported, and the node operators, the graph operators and the artifact loader
look it up.
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_class", "register_model_class"]

_MODEL_CLASS: Any = None


def register_model_class(cls: type) -> type:
    """Make ``cls`` the class that composition operators build (usable as a decorator)."""
    global _MODEL_CLASS
    _MODEL_CLASS = cls
    return cls


def model_class() -> type:
    """The registered model class."""
    if _MODEL_CLASS is None:  # pragma: no cover - the package __init__ registers it
        raise RuntimeError("deepreservoir.model has not been imported; import deepreservoir.")
    return _MODEL_CLASS
