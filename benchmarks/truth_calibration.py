"""How well Dawid-Skene's confidence matches its accuracy, on real datasets, and what fixes it.

    .venv/bin/python benchmarks/truth_calibration.py [DATASET ...]

For each categorical dataset in ../shared/datasets and each depth k (the first 1, 2 or 3 labels
of every task in file order, then all of them): Dawid-Skene fitted without gold, its accuracy
and mean confidence (the posterior of its answer) over the gold tasks, and the expected
calibration error (ECE, 15 bins, in points) of four confidences for the same answers:

- ``raw``: the posterior itself (what an export reports today);
- ``shrunk``: the posterior under each annotator's confusions shrunk towards the pooled matrix
  with 2 pseudo-labels per class (``quorum.truth.adaptive.worker_model``, temperature 1);
- ``T=2``: the posterior tempered by 2 (the quality loop's default, chosen without gold);
- ``gold T``: tempered by the temperature fitted on a seeded 10% of the gold tasks
  (``fit_temperature``, as ``quorum aggregate --gold`` does).

Every ECE is scored on the same 90% of the gold tasks (those not used to fit ``gold T``) that
have labels at that depth. Deterministic; about a minute for all datasets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from quorum.truth import DawidSkene, apply_temperature, calibration_error, fit_temperature
from quorum.truth.adaptive import task_posterior, worker_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from truth_accuracy import categorical, gold_split, load

DEPTHS = (1, 2, 3, None)
VARIANTS = ("raw", "shrunk", "T=2", "gold T")


def first_labels(task: Any, depth: int | None) -> Any:
    """Rows of each task's first ``depth`` labels in file order (all rows for None)."""
    if depth is None:
        return np.arange(task.size)
    order = np.argsort(task, kind="stable")
    sorted_task = task[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_task)) + 1]
    rank = np.arange(task.size) - np.repeat(starts, np.diff(np.r_[starts, task.size]))
    return np.sort(order[rank < depth])


def measure(name: str, depth: int | None) -> dict[str, float]:
    data, gold, _, known = load(name)
    rows = first_labels(data.task, depth)
    task, worker, label = data.task[rows], data.worker[rows], data.label[rows]
    sizes = {"n_tasks": data.n_tasks, "n_workers": data.n_workers}
    ds = DawidSkene().fit(task, worker, label, n_classes=data.n_classes, **sizes)
    given, held = gold_split(known, 0)
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
    confidences = {
        "raw": ds.probas_[held, answer],
        "shrunk": shrunk[held, answer],
        "T=2": apply_temperature(ds.probas_[held], 2.0)[np.arange(held.size), answer],
        "gold T": apply_temperature(ds.probas_[held], temperature)[np.arange(held.size), answer],
    }
    result = {v: 100.0 * calibration_error(c, correct) for v, c in confidences.items()}
    result["accuracy"] = 100.0 * float(correct.mean())
    result["confidence"] = 100.0 * float(confidences["raw"].mean())
    result["temperature"] = temperature
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="*", help="default: every categorical dataset")
    names = parser.parse_args().datasets or categorical()
    totals: dict[tuple[int | None, str], list[float]] = {}
    columns = ["dataset", "labels/task", "accuracy", "mean confidence", "ECE raw", *VARIANTS[1:]]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        for depth in DEPTHS:
            found = measure(name, depth)
            for variant in VARIANTS:
                totals.setdefault((depth, variant), []).append(found[variant])
            cells = [f"{found[v]:.1f}" for v in VARIANTS]
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
                found <= min(totals[(depth, other)][i] for other in VARIANTS)
                for i, found in enumerate(totals[(depth, v)])
            )
            for v in VARIANTS
        }
        shown = "all" if depth is None else f"first {depth}"
        best = ", ".join(f"{v} {wins[v]}" for v in VARIANTS)
        print(f"| {shown} | " + " | ".join(f"{means[v]:.2f}" for v in VARIANTS) + f" | {best} |")


if __name__ == "__main__":
    main()
