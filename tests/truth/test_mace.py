"""MACE's random restarts: different starts, and the run with the best likelihood is kept."""

from __future__ import annotations

from typing import Any

import numpy as np

from quorum.truth import MACE
from quorum.truth.mace import initial_parameters


def noisy_crowd() -> tuple[Any, Any, Any]:
    """40 tasks, 6 workers of mixed quality, 3 classes: EM's starts matter after 2 steps."""
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, 40)
    task = np.repeat(np.arange(40), 6)
    worker = np.tile(np.arange(6), 40)
    right = rng.random(task.size) < np.array([0.9, 0.8, 0.6, 0.5, 0.4, 0.35])[worker]
    label = np.where(right, truth[task], rng.integers(0, 3, task.size))
    return task, worker, label


def test_each_restart_starts_somewhere_else() -> None:
    starts = [initial_parameters(4, 3, restart, random_state=0)[1][0] for restart in range(3)]
    assert not np.allclose(starts[0], starts[1]) and not np.allclose(starts[1], starts[2])
    again = initial_parameters(4, 3, 1, random_state=0)[1][0]
    assert np.array_equal(again, starts[1])  # seeded


def test_more_restarts_never_lower_the_kept_likelihood() -> None:
    """Restart r starts at the same point whatever ``n_restarts`` is, so a fit with k restarts
    is the best of the first k runs: its likelihood can only grow with k, and it must grow
    where a later run is better (a fit that kept the last run would fail here)."""
    task, worker, label = noisy_crowd()
    fits = [MACE(n_restarts=k, n_iter=2).fit(task, worker, label, n_classes=3) for k in range(1, 9)]
    likelihoods = [fit.log_likelihood_ for fit in fits]
    assert likelihoods == sorted(likelihoods)
    assert likelihoods[-1] > likelihoods[0]  # the starts do differ here: the test has teeth
    best = fits[int(np.argmax(likelihoods))]
    np.testing.assert_array_equal(fits[-1].probas_, best.probas_)
