"""Accuracy of every truth-inference method, Quorum beside crowd-kit 1.4.2, on real datasets.

    .venv/bin/python benchmarks/truth_accuracy.py [DATASET ...]

For each categorical dataset in ../shared/datasets (README kind binary, multiclass or ordinal):
the accuracy over the gold tasks that have crowd labels of Quorum's mv, wawa, zbs, ds, ods,
glad and mace, each next to crowd-kit's same method run as its users run it (``pd.read_csv``
of the file, ``fit_predict``); then ``auto`` given 10% of those gold tasks (seeded) and scored
on the other 90%, next to the best unsupervised method of each library on the same 90%.

crowd-kit's GLAD gets boolean labels as text (it crashes on booleans); its MACE depends on the
order of the rows (docs/truth.md) and is reported as is. Takes about ten minutes, most of it
crowd-kit's GLAD.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from crowdkit import aggregation as ck

from quorum.io.labels import encode, read_gold, read_labels
from quorum.truth import ESTIMATORS, Auto

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CROWDKIT = {
    "mv": ck.MajorityVote,
    "wawa": ck.Wawa,
    "zbs": ck.ZeroBasedSkill,
    "ds": ck.DawidSkene,
    "ods": ck.OneCoinDawidSkene,
    "glad": ck.GLAD,
    "mace": ck.MACE,
}
GIVEN = 0.10


def categorical() -> list[str]:
    names = []
    for readme in sorted(DATASETS.glob("*/README.md")):
        kind = readme.read_text().split("**Kind:**")[1].split()[0]
        if kind in {"binary", "multiclass", "ordinal"}:
            names.append(readme.parent.name)
    return names


def crowdkit_labels(method: str, frame: pd.DataFrame, data: Any) -> Any:
    """crowd-kit's labels as Quorum class codes, per Quorum task code."""
    if method == "glad" and frame["label"].dtype == bool:
        frame = frame.assign(label=frame["label"].astype(str).str.lower())
    labels = CROWDKIT[method]().fit_predict(frame)
    values = labels.reindex(pd.Index(data.tasks).astype(frame["task"].dtype)).to_numpy()
    text = np.array([str(value).lower() for value in values], dtype=object)
    classes = np.array([str(value).lower() for value in data.classes], dtype=object)
    order = np.argsort(classes)
    return order[np.searchsorted(classes[order], text)]


def evaluate(name: str) -> list[str]:
    folder = DATASETS / name
    data, gold = encode(read_labels(folder / "labels.csv"), read_gold(folder / "gold.csv"))
    frame = pd.read_csv(folder / "labels.csv")
    known = np.flatnonzero(gold >= 0)
    shuffled = np.random.default_rng(0).permutation(known)
    given, held = (
        shuffled[: max(round(GIVEN * known.size), 2)],
        shuffled[max(round(GIVEN * known.size), 2) :],
    )
    ours, theirs = {}, {}
    for method, estimator in ESTIMATORS.items():
        fitted = estimator().fit(data.task, data.worker, data.label, n_classes=data.n_classes)
        ours[method] = fitted.labels_
        theirs[method] = crowdkit_labels(method, frame, data)

    def accuracy(labels: Any, tasks: Any) -> float:
        return 100.0 * float(np.mean(labels[tasks] == gold[tasks]))

    partial = np.full_like(gold, -1)
    partial[given] = gold[given]
    started = time.perf_counter()
    auto = Auto().fit(data.task, data.worker, data.label, gold=partial, n_classes=data.n_classes)
    seconds = time.perf_counter() - started
    cells = [
        f"{accuracy(ours[m], known):.2f} / {accuracy(theirs[m], known):.2f}" for m in ESTIMATORS
    ]
    best_ours = max(accuracy(labels, known) for labels in ours.values())
    best_theirs = max(accuracy(labels, known) for labels in theirs.values())
    held_ours = max(accuracy(labels, held) for labels in ours.values())
    held_theirs = max(accuracy(labels, held) for labels in theirs.values())
    row = [
        name,
        f"{known.size}",
        *cells,
        f"**{best_ours:.2f}** / {best_theirs:.2f}",
        f"{accuracy(auto.labels_, held):.2f} ({auto.method_}, {seconds:.1f} s)",
        f"{held_ours:.2f} / {held_theirs:.2f}",
    ]
    return ["| " + " | ".join(row) + " |"]


def main(names: list[str]) -> None:
    warnings.filterwarnings("ignore")  # crowd-kit's pandas FutureWarnings
    methods = " | ".join(f"{m} Q / ck" for m in ESTIMATORS)
    print(
        f"| dataset | gold | {methods} | best Q / ck | auto, 10% gold, on the other 90% | "
        "best unsupervised on that 90%, Q / ck |"
    )
    print("|" + "---|" * (len(ESTIMATORS) + 5))
    for name in names or categorical():
        for row in evaluate(name):
            print(row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
