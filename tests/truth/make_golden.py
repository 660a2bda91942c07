"""Regenerate tests/truth/golden/: crowd-kit 1.4.2's results on every categorical dataset.

    .venv/bin/python tests/truth/make_golden.py [--only METHOD,...] [DATASET ...]

For each dataset in ../shared/datasets whose README says binary, multiclass or ordinal, this
reads the labels with ``quorum.io.labels`` (so class codes are Quorum's), runs crowd-kit's
MajorityVote, Wawa, ZeroBasedSkill, DawidSkene, OneCoinDawidSkene, GLAD and MACE, and saves each
method's labels (as class codes) and posteriors to ``golden/<dataset>.npz``. It takes about ten
minutes, mostly crowd-kit's GLAD; the tests only read the tables.

Two crowd-kit defects are worked around, so that the tables hold what crowd-kit's models give:
- GLAD sets one column per class with ``data[labels] = 0``, which pandas reads as a boolean mask
  when the labels are booleans; labels are passed as text (they are, from ``quorum.io.labels``).
- MACE indexes its per-worker tables by first appearance (``pd.factorize``) in the E-step but by
  sorted value (``groupby``) in the M-step, so workers swap parameters unless both orders agree.
  It gets worker and label codes numbered by first appearance, where both orders agree, and
  Quorum's first starting point (``initial_parameters``) instead of its own random one, so the
  table is the same model from the same start (``quorum.truth.MACE(n_restarts=1)``).
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

from quorum.io.labels import encode, read_labels
from quorum.truth.encoding import EncodedLabels
from quorum.truth.mace import initial_parameters

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
GOLDEN = Path(__file__).resolve().parent / "golden"
CATEGORICAL = ("binary", "multiclass", "ordinal")
METHODS = {
    "mv": ck.MajorityVote,
    "wawa": ck.Wawa,
    "zbs": ck.ZeroBasedSkill,
    "ds": ck.DawidSkene,
    "ods": ck.OneCoinDawidSkene,
    "glad": ck.GLAD,
}


def categorical_datasets() -> list[str]:
    names = []
    for readme in sorted(DATASETS.glob("*/README.md")):
        kind = next(line for line in readme.read_text().splitlines() if "**Kind:**" in line)
        if kind.split("**Kind:**")[1].strip() in CATEGORICAL:
            names.append(readme.parent.name)
    return names


def as_frame(data: EncodedLabels) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": data.tasks[data.task],
            "worker": data.workers[data.worker],
            "label": data.classes[data.label],
        }
    )


def to_codes(data: EncodedLabels, labels: pd.Series, probas: pd.DataFrame) -> dict[str, Any]:
    """crowd-kit's per-task outputs re-indexed as Quorum's task and class codes."""
    task_labels = labels.reindex(data.tasks).to_numpy()
    codes = np.searchsorted(data.classes, task_labels).astype(np.int16)
    table = probas.reindex(index=data.tasks, columns=data.classes).fillna(0.0).to_numpy()
    return {"labels": codes, "probas": table.astype(np.float32)}


def run_mace(data: EncodedLabels) -> dict[str, Any]:
    workers, worker_order = pd.factorize(data.worker)
    labels, label_order = pd.factorize(data.label)
    frame = pd.DataFrame({"task": data.task, "worker": workers, "label": labels})

    def quorum_start(self: ck.MACE, n_workers: int, n_labels: int) -> None:
        spamming, thetas = initial_parameters(data.n_workers, data.n_classes, 0, 0)
        self.spamming_ = spamming[worker_order]
        self.thetas_ = thetas[worker_order][:, label_order]
        self.theta_priors_ = np.tile([self.alpha, self.beta], (n_workers, 1)).astype(float)
        self.strategy_priors_ = np.full((n_workers, n_labels), 10.0)

    mace = ck.MACE(n_restarts=1)
    mace._initialize = quorum_start.__get__(mace)  # type: ignore[method-assign]
    mace.fit(frame)
    probas = np.zeros((data.n_tasks, data.n_classes))
    columns = np.arange(len(label_order))
    fitted = mace.probas_.reindex(index=np.arange(data.n_tasks), columns=columns)
    probas[:, label_order] = fitted.fillna(0.0).to_numpy()
    return {"labels": probas.argmax(axis=1).astype(np.int16), "probas": probas.astype(np.float32)}


def make(name: str, only: set[str]) -> None:
    """Write (or, with ``only``, update) the golden table of one dataset."""
    data = encode(read_labels(DATASETS / name / "labels.csv"))[0]
    path = GOLDEN / f"{name}.npz"
    arrays: dict[str, Any] = dict(np.load(path)) if only and path.exists() else {}
    frame, seconds = as_frame(data), {}
    for method in only or [*METHODS, "mace"]:
        started = time.perf_counter()
        if method == "mace":
            results = run_mace(data)
        else:
            fitted = METHODS[method]()
            results = to_codes(data, fitted.fit_predict(frame), fitted.probas_)
        seconds[method] = time.perf_counter() - started
        arrays.update({f"{method}_{key}": value for key, value in results.items()})
    np.savez_compressed(path, **arrays)
    timing = " ".join(f"{method}={value:.1f}s" for method, value in seconds.items())
    print(f"{name}: {data.n_tasks} tasks, {timing}", flush=True)


def main(arguments: list[str]) -> None:
    warnings.filterwarnings("ignore")  # crowd-kit's pandas FutureWarnings
    only: set[str] = set()
    if arguments[:1] == ["--only"]:
        only, arguments = set(arguments[1].split(",")), arguments[2:]
    GOLDEN.mkdir(exist_ok=True)
    for name in arguments or categorical_datasets():
        make(name, only)


if __name__ == "__main__":
    main(sys.argv[1:])
