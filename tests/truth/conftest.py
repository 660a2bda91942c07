"""Fixtures for the truth tests."""

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """Run each test with one BLAS thread.

    NOTE: GLAD's M-step is SciPy's conjugate gradient, whose dot products OpenBLAS spreads over
    threads; on a busy 2-core machine those threads wait for each other and a 1 s fit takes 10 s
    (docs/truth.md, "Threads"). One thread keeps the suite's time steady.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
