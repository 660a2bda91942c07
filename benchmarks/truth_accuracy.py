"""Accuracy of every truth-inference method, Quorum beside crowd-kit 1.4.2, on real datasets.

    .venv/bin/python benchmarks/truth_accuracy.py [DATASET ...]
    .venv/bin/python benchmarks/truth_accuracy.py --orders 20 duchenne weather_sentiment_amt
    .venv/bin/python benchmarks/truth_accuracy.py --splits 6
    .venv/bin/python benchmarks/truth_accuracy.py --mace-agreeing

For each categorical dataset in ../shared/datasets (README kind binary, multiclass or ordinal):
the accuracy over the gold tasks that have crowd labels of Quorum's mv, wawa, zbs, ds, ods,
glad and mace, each next to crowd-kit's same method run as its users run it (``pd.read_csv``
of the file, ``fit_predict``); then ``auto`` given 10% of those gold tasks (seeded) and scored
on the other 90%, next to the best unsupervised method of each library on the same 90%.

crowd-kit's GLAD gets boolean labels as text (it crashes on booleans); its MACE depends on the
order of the rows (docs/truth.md) and is reported as is. Takes about ten minutes, most of it
crowd-kit's GLAD.

``--orders N`` measures that dependence instead: crowd-kit's MACE on the file's own order and
on N seeded shuffles of its rows, beside Quorum's best unsupervised method (which does not
depend on row order), and in how many orders Quorum's best is at least as accurate. About a
minute per crowd-kit fit on these files.

``--mace-agreeing`` compares each dataset's best Quorum method with crowd-kit's best twice: with
crowd-kit's MACE run as its users run it, and with the same rows given to it with workers and
labels renumbered by first appearance, so that its E-step and M-step index them alike and its
index mix-up does not happen; MACE's own figures of both runs and Quorum's MACE beside them.
About as long as the table (it runs every crowd-kit method).

``--splits N`` repeats the ``auto`` comparison over N seeded 10% gold samples (seeds 0 to
N - 1; the table uses seed 0): per split, ``auto``'s mean accuracy on the held-out 90%, the
datasets where it beats, ties or trails the best unsupervised method chosen afterwards, and
the datasets where even the best gold-clamped method chosen afterwards trails it, so that no
rule choosing among the candidates could win there. Quorum only; about two minutes a split.
"""

from __future__ import annotations

import argparse
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
    return _as_codes(labels, frame, data)


def crowdkit_mace_agreeing(frame: pd.DataFrame, data: Any) -> Any:
    """crowd-kit's MACE on the same rows with workers and labels renumbered by first appearance,
    so that its E-step (``pd.factorize``) and its M-step (``groupby``, sorted) index them alike
    and no worker gets another's parameters (docs/truth.md, "MACE"); as ``crowdkit_labels``."""
    workers = pd.factorize(frame["worker"])[0]
    codes, names = pd.factorize(frame["label"])
    renumbered = frame.assign(worker=workers, label=codes)
    labels = ck.MACE().fit_predict(renumbered)
    return _as_codes(labels.map(lambda code: names[code]), frame, data)


def _as_codes(labels: Any, frame: pd.DataFrame, data: Any) -> Any:
    values = labels.reindex(pd.Index(data.tasks).astype(frame["task"].dtype)).to_numpy()
    text = np.array([str(value).lower() for value in values], dtype=object)
    classes = np.array([str(value).lower() for value in data.classes], dtype=object)
    order = np.argsort(classes)
    return order[np.searchsorted(classes[order], text)]


def load(name: str) -> tuple[Any, Any, pd.DataFrame, Any]:
    """A dataset encoded for Quorum, its gold codes, the file as crowd-kit reads it, and the
    gold tasks that have crowd labels."""
    folder = DATASETS / name
    data, gold = encode(read_labels(folder / "labels.csv"), read_gold(folder / "gold.csv"))
    return data, gold, pd.read_csv(folder / "labels.csv"), np.flatnonzero(gold >= 0)


def quorum_accuracies(data: Any, gold: Any, known: Any) -> dict[str, float]:
    """Accuracy (%) on the ``known`` tasks of each Quorum method, unsupervised."""
    arrays = (data.task, data.worker, data.label)
    return {
        method: 100.0 * float(np.mean(fitted.labels_[known] == gold[known]))
        for method, estimator in ESTIMATORS.items()
        for fitted in [estimator().fit(*arrays, n_classes=data.n_classes)]
    }


def gold_split(known: Any, seed: int) -> tuple[Any, Any]:
    """(given, held): a seeded 10% of the gold tasks (at least two) and the rest."""
    shuffled = np.random.default_rng(seed).permutation(known)
    size = max(round(GIVEN * known.size), 2)
    return shuffled[:size], shuffled[size:]


def evaluate(name: str) -> list[str]:
    data, gold, frame, known = load(name)
    given, held = gold_split(known, 0)
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


def row_orders(name: str, n_orders: int) -> str:
    """crowd-kit's MACE over row orders of one file, beside Quorum's best unsupervised method."""
    data, gold, frame, known = load(name)
    ours = quorum_accuracies(data, gold, known)
    best = max(ours, key=ours.__getitem__)
    theirs = [
        100.0 * float(np.mean(crowdkit_labels("mace", order, data)[known] == gold[known]))
        for order in [frame]
        + [frame.sample(frac=1.0, random_state=seed) for seed in range(n_orders)]
    ]
    shuffled = np.array(theirs[1:])
    at_least = int(np.sum(ours[best] >= shuffled - 1e-9))
    return (
        f"| {name} | {ours[best]:.2f} ({best}) | {ours['mace']:.2f} | {theirs[0]:.2f} | "
        f"{shuffled.min():.2f} / {np.median(shuffled):.2f} / {shuffled.mean():.2f} / "
        f"{shuffled.max():.2f} | {at_least} of {n_orders} |"
    )


def mace_agreeing(name: str) -> tuple[str, bool]:
    """Quorum's best unsupervised method beside crowd-kit's best, with crowd-kit's MACE run as
    its users run it and with its index mix-up avoided (``crowdkit_mace_agreeing``)."""
    data, gold, frame, known = load(name)

    def accuracy(labels: Any) -> float:
        return 100.0 * float(np.mean(labels[known] == gold[known]))

    ours = quorum_accuracies(data, gold, known)
    theirs = {m: accuracy(crowdkit_labels(m, frame, data)) for m in CROWDKIT}
    agreeing = accuracy(crowdkit_mace_agreeing(frame, data))
    best = max(ours, key=ours.__getitem__)
    as_run = max(theirs, key=theirs.__getitem__)
    fixed = {**theirs, "mace": agreeing}
    best_fixed = max(fixed, key=fixed.__getitem__)
    met = ours[best] >= fixed[best_fixed] - 1e-9
    row = (
        f"| {name} | {ours[best]:.2f} ({best}) | {theirs[as_run]:.2f} ({as_run}) | "
        f"{theirs['mace']:.2f} | {agreeing:.2f} | {ours['mace']:.2f} | "
        f"{fixed[best_fixed]:.2f} ({best_fixed}) | {'yes' if met else 'NO'} |"
    )
    return row, met


def auto_split(name: str, seed: int) -> tuple[float, float, float]:
    """On one gold split: auto's accuracy on the held-out 90%, the best unsupervised method's
    and the best gold-clamped method's there (both chosen afterwards)."""
    folder = DATASETS / name
    data, gold = encode(read_labels(folder / "labels.csv"), read_gold(folder / "gold.csv"))
    given, held = gold_split(np.flatnonzero(gold >= 0), seed)
    partial = np.full_like(gold, -1)
    partial[given] = gold[given]
    arrays, sizes = (data.task, data.worker, data.label), {"n_classes": data.n_classes}

    def accuracy(labels: Any) -> float:
        return 100.0 * float(np.mean(labels[held] == gold[held]))

    auto = Auto().fit(*arrays, gold=partial, **sizes)
    unsupervised = max(accuracy(e().fit(*arrays, **sizes).labels_) for e in ESTIMATORS.values())
    clamped = max(
        accuracy(e().fit(*arrays, gold=partial, **sizes).labels_) for e in ESTIMATORS.values()
    )
    return accuracy(auto.labels_), unsupervised, clamped


def splits(names: list[str], n_splits: int) -> None:
    print(
        "| split | auto mean | best unsupervised mean | auto beats / ties / trails it | "
        "best gold-clamped method trails it on |"
    )
    print("|---|---|---|---|---|")
    for seed in range(n_splits):
        rows = {name: auto_split(name, seed) for name in names}
        auto, unsupervised = (np.array([row[i] for row in rows.values()]) for i in (0, 1))
        beats = int(np.sum(auto > unsupervised + 1e-9))
        trails = int(np.sum(auto < unsupervised - 1e-9))
        hopeless = [name for name, (_, u, c) in rows.items() if c < u - 1e-9]
        print(
            f"| {seed} | {auto.mean():.2f} | {unsupervised.mean():.2f} | "
            f"{beats} / {len(names) - beats - trails} / {trails} | "
            f"{len(hopeless)}: {', '.join(hopeless)} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="DATASET")
    parser.add_argument("--orders", type=int, default=0, help="crowd-kit MACE over N row orders")
    parser.add_argument("--splits", type=int, default=0, help="auto over N gold splits")
    parser.add_argument(
        "--mace-agreeing", action="store_true", help="best Q vs best ck, MACE's mix-up avoided"
    )
    arguments = parser.parse_args()
    names = arguments.names or categorical()
    warnings.filterwarnings("ignore")  # crowd-kit's pandas FutureWarnings
    if arguments.mace_agreeing:
        print(
            "| dataset | best Q | best ck, as run | ck mace, as run | ck mace, orders agreeing | "
            "Q mace | best ck, its mace's orders agreeing | best Q >= it |"
        )
        print("|---|---|---|---|---|---|---|---|")
        met = 0
        for name in names:
            row, ok = mace_agreeing(name)
            met += ok
            print(row, flush=True)
        print(f"\nbest Q >= best ck with its MACE's orders agreeing: {met} of {len(names)}")
        return
    if arguments.orders:
        print(
            "| dataset | best Q | Q mace | ck mace, file order | "
            f"ck mace over {arguments.orders} shuffles: min / median / mean / max | "
            "shuffles where best Q >= ck mace |"
        )
        print("|---|---|---|---|---|---|")
        for name in names:
            print(row_orders(name, arguments.orders), flush=True)
        return
    if arguments.splits:
        splits(names, arguments.splits)
        return
    methods = " | ".join(f"{m} Q / ck" for m in ESTIMATORS)
    print(
        f"| dataset | gold | {methods} | best Q / ck | auto, 10% gold, on the other 90% | "
        "best unsupervised on that 90%, Q / ck |"
    )
    print("|" + "---|" * (len(ESTIMATORS) + 5))
    for name in names:
        for row in evaluate(name):
            print(row, flush=True)


if __name__ == "__main__":
    main()
