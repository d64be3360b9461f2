"""What the memory benchmarks share: the live-tensor peak of one training step.

The function lives in the package as :func:`deepreservoir.footprint.training_step_peak`;
``step_tensor_peak`` is its name in the benchmarks.
"""

from __future__ import annotations

from deepreservoir.footprint import training_step_peak as step_tensor_peak

__all__ = ["step_tensor_peak"]
