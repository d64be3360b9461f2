"""Seeded frozen weights: a family's values times an optional connectivity mask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families.base import Family, _is_finite_real
from deepreservoir.families.registry import get_family
from deepreservoir.seeding import SeedKey, uniform

__all__ = ["connectivity_mask", "make_weight"]


def _check_connectivity(connectivity: float) -> None:
    if not _is_finite_real(connectivity) or not 0 < connectivity <= 1:
        raise ParameterError(
            f"The 'connectivity' parameter must be a float in (0, 1]. "
            f"Got {format_value(connectivity)}."
        )


def connectivity_mask(node: SeedKey, role: str, shape: tuple[int, ...],
                      connectivity: float) -> np.ndarray | None:
    """Seeded Bernoulli(connectivity) mask, or ``None`` for full connectivity.

    The mask has its own key (role ``ROLE:mask``), so it does not depend on the family.

    Raises
    ------
    ParameterError
        If ``connectivity`` is not a float in (0, 1].
    """
    _check_connectivity(connectivity)
    if connectivity >= 1.0:
        return None
    key = node.tensor(f"{role}:mask", shape, {"connectivity": float(connectivity)})
    return (uniform(key) < connectivity).reshape(shape)


def make_weight(family: str | Family | Mapping[str, Any], node: SeedKey, role: str,
                shape: tuple[int, ...], *, fan_in: int, fan_out: int,
                connectivity: float = 1.0) -> np.ndarray:
    """Generate one seeded frozen weight as float64.

    Parameters
    ----------
    family : str, Family or mapping
        The distribution.
    node : SeedKey
        The owning node's root seed and path.
    role : str
        The tensor's role in the node.
    shape : tuple of int
    fan_in, fan_out : int
        Used by the family's default scale.
    connectivity : float in (0, 1]
        Fraction of entries kept by an independent seeded mask.

    Returns
    -------
    ndarray of float64, shape ``shape``
        With a mask, an elementwise family's values are drawn at the kept
        entries only: the same bits as drawing all of them and masking.

    Raises
    ------
    ParameterError
        For an unknown family, a bad family parameter or ``connectivity`` outside (0, 1].
    """
    _check_connectivity(connectivity)
    resolved = get_family(family, role)
    key = node.tensor(role, shape, resolved.spec())
    mask = connectivity_mask(node, role, shape, connectivity)
    if mask is None:
        return resolved.sample(key, fan_in, fan_out)
    if not resolved.elementwise:
        return np.where(mask, resolved.sample(key, fan_in, fan_out), 0.0)
    # Element i depends on its own counters only: draw the kept entries alone.
    kept = np.flatnonzero(mask)
    out = np.zeros(key.size)
    out[kept] = resolved.sample_at(key, kept, fan_in, fan_out)
    return out.reshape(key.shape)
