"""Analysis of reservoirs and scaffolds: pure functions that return xarray objects.

Every function takes a model, a node or tensors, computes on the tensors'
device (in float64 unless stated), and returns an ``xarray.DataArray`` or
``xarray.Dataset`` with named dimensions (``layer``, ``matrix``, ``time``,
``unit``, ``k``, ``estimator``, ``rank``, ``seed``, ...) and ``attrs`` recording
the ``kind`` of result, the ``method`` and its parameters. :func:`plot` draws
any result (matplotlib, an optional extra).

=====================  ======================================================
module                 functions
=====================  ======================================================
``spectra``            :func:`spectral_radius`, :func:`spectral_norm`,
                       :func:`singular_values`, :func:`leaky_spectral_radius`,
                       :func:`spectra`
``esp``                :func:`check_esp`, :func:`diagonal_scaling_bound`,
                       :func:`contraction_test`
``lyapunov``           :func:`benettin`, :func:`lyapunov_exponents`,
                       :func:`depth_lyapunov`
``memory``             :func:`memory_capacity`
``dimension``          :func:`pca_dimension`, :func:`participation_ratio`,
                       :func:`twonn`, :func:`mle_dimension`,
                       :func:`intrinsic_dimension`
``sweep``              :func:`rank_sweep`, :func:`saturation_rank`
``beta``               :func:`current_beta`, :func:`beta_history`,
                       :func:`scaffold_share`, :func:`beta_ablation`
``plotting``           :func:`plot`
=====================  ======================================================
"""

from deepreservoir.analysis.beta import (
    beta_ablation,
    beta_history,
    current_beta,
    scaffold_share,
)
from deepreservoir.analysis.dimension import (
    intrinsic_dimension,
    mle_dimension,
    participation_ratio,
    pca_dimension,
    twonn,
)
from deepreservoir.analysis.esp import (
    CONTRACTING,
    GUARANTEED,
    NOT_CONTRACTING,
    VIOLATED,
    check_esp,
    contraction_test,
    diagonal_scaling_bound,
)
from deepreservoir.analysis.lyapunov import benettin, depth_lyapunov, lyapunov_exponents
from deepreservoir.analysis.memory import memory_capacity
from deepreservoir.analysis.plotting import plot
from deepreservoir.analysis.spectra import (
    leaky_spectral_radius,
    singular_values,
    spectra,
    spectral_norm,
    spectral_radius,
)
from deepreservoir.analysis.sweep import rank_sweep, saturation_rank

__all__ = [
    "CONTRACTING",
    "GUARANTEED",
    "NOT_CONTRACTING",
    "VIOLATED",
    "benettin",
    "beta_ablation",
    "beta_history",
    "check_esp",
    "contraction_test",
    "current_beta",
    "depth_lyapunov",
    "diagonal_scaling_bound",
    "intrinsic_dimension",
    "leaky_spectral_radius",
    "lyapunov_exponents",
    "memory_capacity",
    "mle_dimension",
    "participation_ratio",
    "pca_dimension",
    "plot",
    "rank_sweep",
    "saturation_rank",
    "scaffold_share",
    "singular_values",
    "spectra",
    "spectral_norm",
    "spectral_radius",
    "twonn",
]
