"""How well Dawid-Skene's confidence matches its accuracy, on real datasets, and what fixes it.

    .venv/bin/python benchmarks/truth_calibration.py [DATASET ...] [--splits N]

For each categorical dataset in ../shared/datasets and each depth k (the first 1, 2 or 3 labels
of every task in file order, then all of them): Dawid-Skene fitted without gold, its accuracy
and mean confidence (the posterior of its answer) over the gold tasks, and the expected
calibration error (ECE, 15 bins, in points) of five confidences for the same answers:

- ``raw``: the posterior itself (what an export reports without gold);
- ``shrunk``: the posterior under each annotator's confusions shrunk towards the pooled matrix
  with 2 pseudo-labels per class (``quorum.truth.adaptive.worker_model``, temperature 1);
- ``T=2``: the posterior tempered by 2 (the quality loop's default, chosen without gold);
- ``ML T``: tempered by the maximum-likelihood temperature in [0.05, 20] on a seeded 10% of the
  gold tasks, the rule before 2026-12-08: 0.05 wherever the fit gets that gold all right;
- ``gold T``: tempered by ``fit_temperature`` on the same gold (as ``quorum aggregate --gold``
  and exports do): maximum likelihood, or Laplace's rule of succession when nothing is missed.

Every ECE is scored on the same 90% of the gold tasks (those not used to fit a temperature)
that have labels at that depth. ``--splits N`` averages each ECE over the seeded gold samples
0 to N - 1 (the temperature shown is the median); the default is sample 0 alone.
Deterministic; about 6 s a sample for all datasets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from quorum.truth import DawidSkene, apply_temperature, calibration_error, fit_temperature
from quorum.truth.adaptive import task_posterior, worker_model
from quorum.truth.calibration import log_likelihood

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truth_accuracy import categorical, gold_split, load

DEPTHS = (1, 2, 3, None)
VARIANTS = ("raw", "shrunk", "T=2", "ML T", "gold T")
RIVALS = ("raw", "shrunk", "T=2", "gold T")  # "best" compares these; ML T is the old rule


def first_labels(task: Any, depth: int | None) -> Any:
    """Rows of each task's first ``depth`` labels in file order (all rows for None)."""
    if depth is None:
        return np.arange(task.size)
    order = np.argsort(task, kind="stable")
    sorted_task = task[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_task)) + 1]
    rank = np.arange(task.size) - np.repeat(starts, np.diff(np.r_[starts, task.size]))
    return np.sort(order[rank < depth])


def ml_temperature(probas: Any, truth: Any) -> float:
    """The maximum-likelihood temperature in [0.05, 20] (``fit_temperature`` before 2026-12-08),
    which runs to 0.05 when every gold label is a most probable class."""
    bound = np.log(20.0)
    result = minimize_scalar(
        lambda log_t: -log_likelihood(apply_temperature(probas, np.exp(log_t)), truth),
        bounds=(-bound, bound),
        method="bounded",
    )
    return float(np.exp(result.x))


def measure(name: str, depth: int | None, seed: int) -> dict[str, float]:
    data, gold, _, known = load(name)
    rows = first_labels(data.task, depth)
    task, worker, label = data.task[rows], data.worker[rows], data.label[rows]
    sizes = {"n_tasks": data.n_tasks, "n_workers": data.n_workers}
    ds = DawidSkene().fit(task, worker, label, n_classes=data.n_classes, **sizes)
    given, held = gold_split(known, seed)
    labelled = np.bincount(task, minlength=data.n_tasks) > 0
    held = held[labelled[held]]
    answer = ds.labels_[held]
    correct = (answer == gold[held]).astype(np.float64)
    model = worker_model(task, worker, label, ds.probas_, n_workers=data.n_workers)
    shrunk = task_posterior(
        task, worker, label, model.confusions, model.priors, temperature=1.0, n_tasks=data.n_tasks
    )
    given = given[labelled[given]]
    temperature = fit_temperature(ds.probas_[given], gold[given])
    ml = ml_temperature(ds.probas_[given], gold[given])

    def tempered(by: float) -> Any:
        return apply_temperature(ds.probas_[held], by)[np.arange(held.size), answer]

    confidences = {
        "raw": ds.probas_[held, answer],
        "shrunk": shrunk[held, answer],
        "T=2": tempered(2.0),
        "ML T": tempered(ml),
        "gold T": tempered(temperature),
    }
    result = {v: 100.0 * calibration_error(c, correct) for v, c in confidences.items()}
    result["accuracy"] = 100.0 * float(correct.mean())
    result["confidence"] = 100.0 * float(confidences["raw"].mean())
    result["ML temperature"], result["temperature"] = ml, temperature
    return result


def over_splits(name: str, depth: int | None, splits: int) -> dict[str, float]:
    """``measure`` averaged over gold samples 0 to ``splits`` - 1; temperatures: the median."""
    found = [measure(name, depth, seed) for seed in range(splits)]
    average = {key: float(np.mean([f[key] for f in found])) for key in found[0]}
    for key in ("ML temperature", "temperature"):
        average[key] = float(np.median([f[key] for f in found]))
    return average


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="*", help="default: every categorical dataset")
    parser.add_argument("--splits", type=int, default=1, help="gold samples to average over")
    args = parser.parse_args()
    names = args.datasets or categorical()
    totals: dict[tuple[int | None, str], list[float]] = {}
    columns = ["dataset", "labels/task", "accuracy", "mean confidence", "ECE raw", *VARIANTS[1:]]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name in names:
        for depth in DEPTHS:
            found = over_splits(name, depth, args.splits)
            for variant in VARIANTS:
                totals.setdefault((depth, variant), []).append(found[variant])
            cells = [f"{found[v]:.1f}" for v in VARIANTS]
            cells[-2] += f" (T {found['ML temperature']:.2f})"
            cells[-1] += f" (T {found['temperature']:.2f})"
            shown = "all" if depth is None else f"first {depth}"
            row = [name, shown, f"{found['accuracy']:.1f}", f"{found['confidence']:.1f}", *cells]
            print("| " + " | ".join(row) + " |", flush=True)
    print()
    print("| labels/task | " + " | ".join(f"mean ECE {v}" for v in VARIANTS) + " | best |")
    print("|---|" + "---|" * (len(VARIANTS) + 1))
    for depth in DEPTHS:
        means = {v: float(np.mean(totals[(depth, v)])) for v in VARIANTS}
        wins = {
            v: sum(
                found <= min(totals[(depth, other)][i] for other in RIVALS)
                for i, found in enumerate(totals[(depth, v)])
            )
            for v in RIVALS
        }
        shown = "all" if depth is None else f"first {depth}"
        best = ", ".join(f"{v} {wins[v]}" for v in RIVALS)
        print(f"| {shown} | " + " | ".join(f"{means[v]:.2f}" for v in VARIANTS) + f" | {best} |")


if __name__ == "__main__":
    main()
