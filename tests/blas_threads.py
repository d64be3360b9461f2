"""A fixture that limits BLAS to one thread (imported by the modules that use it)."""

import pytest


@pytest.fixture
def single_blas_thread():
    """Run LAPACK single-threaded: on a busy 2-core machine, threaded OpenBLAS can spin
    for tens of seconds on one eigendecomposition. Results do not depend on this."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up only
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
