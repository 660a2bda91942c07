"""Adaptive overlap replayed offline on real label sets: labels used and accuracy (issue 8).

    .venv/bin/python benchmarks/adaptive_policy_offline.py [DATASET ...] [--orders N] [--noise]
    .venv/bin/python benchmarks/adaptive_policy_offline.py --sweep | --ablation [--orders N]

Datasets: every categorical set in ../shared/datasets (README kind binary, multiclass or
ordinal) with at least 5 labels per task on average (18 sets). The replay follows the rules the
platform's simulator follows (docs/truth.md, "Adaptive overlap"):

- Labels: each worker's first answer to a task, as the platform collects them (it never asks
  an annotator for a task twice; ``duchenne`` repeats a worker on a task in 4 rows of 10).
  "All labels" means all of these.
- Hidden gold: a seeded 10% of each set's gold tasks (``--gold-rate``) is gold the platform
  knows. It is clamped in every Dawid-Skene fit (as the platform aggregates with gold) and is
  never scored; the policy itself never reads gold. As in production, gold tasks get their
  first ``overlap`` labels and never more (``--gold-extra``: labelled adaptively like any task,
  the replay of the first benchmark).
- Every task starts with its first ``overlap`` labels in file order.
- Rounds: the collected labels are re-aggregated with Dawid-Skene (the periodic job;
  ``--refit-every R`` keeps each fit for R rounds) and ``quorum.truth.adaptive.worker_model``
  turns its posteriors into shrunk worker confusions; ``needs_more_labels`` then decides, for
  every task, whether it gets one more label. A task stops for good at ``max_overlap`` labels
  or when the data has no more labels for it.
- Routing: the next label of a task comes from one of the real workers who labelled it in the
  data and has not been asked yet: first those who have not labelled this task yet (the data
  repeats some workers on a task), then the highest ``label_value`` under the current model,
  then file order. It uses only collected labels and the hidden gold.
- ``max_overlap`` is the dataset's own design: the most common number of labels per task.

Accuracy is over the gold tasks that are not hidden gold, after a final Dawid-Skene fit (hidden
gold clamped) of the collected labels; "all" is the same fit over every label; "fixed" gives
each task its first k labels in file order (k + 1 for the first tasks that have more), as many
labels in total as adaptive used, same fit. ``--orders N`` repeats the replay with each task's
labels shuffled (seeds 1..N; fixed then takes each shuffle's first k) and reports means;
``--noise`` shows how far the all-label accuracy itself moves when Dawid-Skene loses a random
10% of the labels (10 draws); ``--sweep`` reruns the choice of the global setting, which reads
no gold answer (it scores agreement with the all-label answers); ``--ablation`` removes each
ingredient of the policy in turn. One pass over the 18 sets takes a few seconds.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from quorum.io.labels import encode, read_gold, read_labels
from quorum.truth import DawidSkene
from quorum.truth.adaptive import (
    STRENGTH,
    TARGET,
    TEMPERATURE,
    label_value,
    needs_more_labels,
    task_posterior,
    worker_model,
)

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
OVERLAP = 3
MIN_LABELS_PER_TASK = 5.0
TOLERANCE = 0.005  # "within 0.5 points"
BUDGET = 0.60  # "at most 60% of the labels on average"
GOLD_RATE = 0.10  # share of each set's gold tasks that is hidden gold

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Data:
    """One label set, labels grouped by task in file order."""

    name: str
    task: IntArray
    worker: IntArray
    label: IntArray
    gold: IntArray  # scored: gold codes of the tasks that are not hidden gold, -1 elsewhere
    hidden: IntArray  # hidden gold the platform knows: gold codes of those tasks, -1 elsewhere
    n_tasks: int
    n_workers: int
    n_classes: int

    @property
    def available(self) -> IntArray:
        return np.bincount(self.task, minlength=self.n_tasks)

    @property
    def position(self) -> IntArray:
        """Index of each label within its task (0 for a task's first label)."""
        starts = np.concatenate([[0], np.cumsum(self.available)[:-1]])
        position: IntArray = np.arange(self.task.size) - starts[self.task]
        return position

    @property
    def max_overlap(self) -> int:
        return int(np.bincount(self.available).argmax())

    def shuffled(self, seed: int) -> Data:
        """The same labels with each task's labels in a random order (seed 0: file order)."""
        if seed == 0:
            return self
        key = np.random.default_rng(seed).random(self.task.size)
        order = np.lexsort((key, self.task))
        return Data(
            self.name, self.task[order], self.worker[order], self.label[order], self.gold,
            self.hidden, self.n_tasks, self.n_workers, self.n_classes,
        )  # fmt: skip


@dataclass(frozen=True)
class Policy:
    overlap: int = OVERLAP
    target: float = TARGET
    temperature: float = TEMPERATURE
    strength: float = STRENGTH
    refit_every: int = 1  # rounds between re-aggregations; decisions between use the last one
    routing: str = "value"  # "value": label_value; "file": the next real label in file order
    horizon: bool = True  # False: ignore max_overlap in the rule (stop on the posterior alone)
    gold_extra: bool = False  # True: gold tasks get extra labels too (production: never)


@dataclass(frozen=True)
class Outcome:
    name: str
    share: float
    all_accuracy: float
    adaptive_accuracy: float
    fixed_accuracy: float
    adaptive_disagreement: float  # share of tasks whose answer differs from the all-label one
    fixed_disagreement: float
    rounds: int

    @property
    def within(self) -> bool:
        return self.adaptive_accuracy >= self.all_accuracy - TOLERANCE - 1e-12

    @property
    def versus_fixed(self) -> str:
        gap = self.adaptive_accuracy - self.fixed_accuracy
        return "beats" if gap > 1e-12 else "ties" if gap > -1e-12 else "LOSES"


def categorical() -> list[str]:
    names = []
    for readme in sorted(DATASETS.glob("*/README.md")):
        kind = readme.read_text().split("**Kind:**")[1].split()[0]
        if kind in {"binary", "multiclass", "ordinal"}:
            names.append(readme.parent.name)
    return names


def load(name: str, gold_rate: float = GOLD_RATE) -> Data:
    """A label set with ``gold_rate`` of its gold tasks (seeded) made hidden gold."""
    folder = DATASETS / name
    data, codes = encode(read_labels(folder / "labels.csv"), read_gold(folder / "gold.csv"))
    gold = np.asarray(codes, dtype=np.intp)
    known = np.flatnonzero(gold >= 0)
    chosen = np.random.default_rng(0).permutation(known)[: round(gold_rate * known.size)]
    hidden = np.full_like(gold, -1)
    hidden[chosen], gold[chosen] = gold[chosen], -1
    order = np.argsort(data.task, kind="stable")
    pair = data.task[order].astype(np.int64) * len(data.workers) + data.worker[order]
    order = order[np.sort(np.unique(pair, return_index=True)[1])]  # first answers only
    return Data(
        name, data.task[order].astype(np.intp), data.worker[order].astype(np.intp),
        data.label[order].astype(np.intp), gold, hidden, len(data.tasks), len(data.workers),
        data.n_classes,
    )  # fmt: skip


def eligible(gold_rate: float = GOLD_RATE) -> list[Data]:
    sets = [load(name, gold_rate) for name in categorical()]
    return [d for d in sets if d.task.size / d.n_tasks >= MIN_LABELS_PER_TASK]


def aggregate(data: Data, rows: IntArray) -> DawidSkene:
    """Dawid-Skene on some rows, hidden gold clamped (the platform's aggregation with gold)."""
    return DawidSkene().fit(
        data.task[rows], data.worker[rows], data.label[rows], gold=data.hidden,
        n_tasks=data.n_tasks, n_workers=data.n_workers, n_classes=data.n_classes,
    )  # fmt: skip


def accuracy(labels: IntArray, gold: IntArray) -> float:
    known = gold >= 0
    return float((labels[known] == gold[known]).mean())


def replay(data: Data, policy: Policy) -> tuple[BoolArray, int]:
    """The rows adaptive overlap collects, and the number of rounds it took."""
    available, position = data.available, data.position
    cap = np.minimum(available, data.max_overlap)
    taken = position < np.minimum(cap, policy.overlap)[data.task]
    rounds, model = 0, None
    while True:
        rows = np.flatnonzero(taken)
        t, w, y = data.task[rows], data.worker[rows], data.label[rows]
        if model is None or rounds % policy.refit_every == 0:
            model = worker_model(
                t, w, y, aggregate(data, rows).probas_, n_workers=data.n_workers,
                strength=policy.strength,
            )  # fmt: skip
        args = (t, w, y, model.confusions, model.priors)
        needs = needs_more_labels(
            *args, pooled=model.pooled, overlap=policy.overlap,
            max_overlap=data.max_overlap if policy.horizon else 10**6, target=policy.target,
            temperature=policy.temperature, n_tasks=data.n_tasks,
        )  # fmt: skip
        needs &= np.bincount(t, minlength=data.n_tasks) < cap
        if not policy.gold_extra:
            needs &= data.hidden < 0
        if not needs.any():
            return taken, rounds
        rounds += 1
        probas = task_posterior(
            *args, pooled=model.pooled, temperature=policy.temperature, n_tasks=data.n_tasks
        )
        by_value = policy.routing == "value"
        taken[route(data, taken, needs, probas, model.confusions, by_value)] = True


def route(
    data: Data, taken: BoolArray, needs: BoolArray, probas: npt.NDArray[np.float64],
    confusions: npt.NDArray[np.float64], by_value: bool = True,
) -> IntArray:  # fmt: skip
    """For each task that needs a label, the row of the remaining real worker to ask."""
    candidates = np.flatnonzero(~taken & needs[data.task])
    task, worker = data.task[candidates], data.worker[candidates]
    pair = data.task * data.n_workers + data.worker
    repeat = np.isin(pair[candidates], pair[taken])
    value = label_value(probas[task], confusions[worker]) if by_value else np.zeros(task.size)
    order = np.lexsort((candidates, -value, repeat, task))
    first = np.unique(task[order], return_index=True)[1]
    chosen: IntArray = candidates[order[first]]
    return chosen


def fixed_rows(data: Data, total: int) -> IntArray:
    """First k labels of every task (k + 1 for the first tasks that have more), ``total`` in all."""
    available = data.available
    k = 0
    while np.minimum(available, k + 1).sum() < total:
        k += 1
    used = np.minimum(available, k)
    extra = np.flatnonzero(available > k)[: max(total - int(used.sum()), 0)]
    used[extra] += 1
    rows: IntArray = np.flatnonzero(data.position < used[data.task])
    return rows


def evaluate(data: Data, policy: Policy, reference: IntArray | None = None) -> Outcome:
    if reference is None:
        reference = aggregate(data, np.arange(data.task.size)).labels_
    taken, rounds = replay(data, policy)
    adaptive = aggregate(data, np.flatnonzero(taken)).labels_
    fixed = aggregate(data, fixed_rows(data, int(taken.sum()))).labels_
    return Outcome(
        data.name, float(taken.mean()), accuracy(reference, data.gold),
        accuracy(adaptive, data.gold), accuracy(fixed, data.gold),
        float((adaptive != reference).mean()), float((fixed != reference).mean()), rounds,
    )  # fmt: skip


def noise_floor(data: Data, reference: IntArray, draws: int = 10) -> tuple[float, float]:
    """Accuracy change of Dawid-Skene on a random 90% of the labels: (lowest, highest)."""
    base, position, changes = accuracy(reference, data.gold), data.position, []
    for seed in range(draws):
        keep = (np.random.default_rng(seed).random(data.task.size) < 0.9) | (position == 0)
        changes.append(accuracy(aggregate(data, np.flatnonzero(keep)).labels_, data.gold) - base)
    return min(changes), max(changes)


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def points(x: float) -> str:
    return f"{100 * x:+.2f}"


def report(sets: list[Data], policy: Policy, orders: int, noise: bool, gold_rate: float) -> None:
    print(
        f"policy: overlap {policy.overlap}, target {policy.target}, temperature "
        f"{policy.temperature}, strength {policy.strength}, re-aggregation every "
        f"{policy.refit_every} round(s); hidden gold: {gold_rate:.0%} of each set's gold "
        f"tasks; final aggregation: Dawid-Skene, hidden gold clamped\n"
    )
    head = (
        "| dataset | gold | labels/task | max_overlap | all labels | adaptive | labels used "
        "| fixed, same budget | within 0.5 | vs fixed | answers differing from all-label, "
        "adaptive / fixed |"
    )
    if noise:
        head += " DS on 90% of labels |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    outcomes, started = [], time.perf_counter()
    for data in sets:
        reference = aggregate(data, np.arange(data.task.size)).labels_
        out = evaluate(data, policy, reference)
        outcomes.append(out)
        row = (
            f"| {data.name} | {int((data.gold >= 0).sum())} | {data.task.size / data.n_tasks:.1f} "
            f"| {data.max_overlap} | {pct(out.all_accuracy)} | {pct(out.adaptive_accuracy)} "
            f"| {out.share:.3f} | {pct(out.fixed_accuracy)} | "
            f"{'yes' if out.within else 'MISSED'} "
            f"({points(out.adaptive_accuracy - out.all_accuracy)}) "
            f"| {out.versus_fixed} ({points(out.adaptive_accuracy - out.fixed_accuracy)}) "
            f"| {pct(out.adaptive_disagreement)}% / {pct(out.fixed_disagreement)}% |"
        )
        if noise:
            low, high = noise_floor(data, reference)
            row += f" {100 * low:+.2f} to {100 * high:+.2f} |"
        print(row, flush=True)
    share = float(np.mean([o.share for o in outcomes]))
    within = sum(o.within for o in outcomes)
    beats = sum(o.versus_fixed == "beats" for o in outcomes)
    ties = sum(o.versus_fixed == "ties" for o in outcomes)
    pooled = sum(o.share * d.task.size for o, d in zip(outcomes, sets, strict=True))
    pooled /= sum(d.task.size for d in sets)
    print(
        f"\nmean share of labels {share:.3f} (target <= {BUDGET}: "
        f"{'met' if share <= BUDGET else 'MISSED'}); pooled over all labels {pooled:.3f}; "
        f"within 0.5 points on {within}/{len(sets)}; beats fixed on {beats}/{len(sets)}, "
        f"ties {ties}; {time.perf_counter() - started:.0f} s"
    )
    if orders:
        robustness(sets, policy, orders)


def robustness(sets: list[Data], policy: Policy, orders: int) -> None:
    """Means over ``orders`` shuffles of each task's labels (seeds 1..orders)."""
    print(f"\nover {orders} shuffled label orders (means; fixed takes each shuffle's first k):\n")
    print("| dataset | labels used | adaptive - all | fixed - all | within 0.5 | beats fixed |")
    print("|---|---|---|---|---|---|")
    shares = []
    for data in sets:
        reference = aggregate(data, np.arange(data.task.size)).labels_
        outs = [evaluate(data.shuffled(seed), policy, reference) for seed in range(1, orders + 1)]
        shares.append(np.mean([o.share for o in outs]))
        print(
            f"| {data.name} | {shares[-1]:.3f} "
            f"| {100 * np.mean([o.adaptive_accuracy - o.all_accuracy for o in outs]):+.2f} "
            f"| {100 * np.mean([o.fixed_accuracy - o.all_accuracy for o in outs]):+.2f} "
            f"| {sum(o.within for o in outs)}/{orders} "
            f"| {sum(o.versus_fixed == 'beats' for o in outs)}/{orders} |",
            flush=True,
        )
    print(f"\nmean share of labels {np.mean(shares):.3f}")


def sweep(sets: list[Data], orders: int) -> None:
    """The choice of the global setting, without gold: for each candidate, over ``orders``
    label orders, the mean share of labels and the mean share of tasks whose final answer
    differs from the all-label answer (adaptive, and fixed overlap at the same budget)."""
    print("| overlap | target | temperature | strength | labels used | differ, adaptive "
          "| differ, fixed | sets where adaptive differs less |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    refs = {d.name: aggregate(d, np.arange(d.task.size)).labels_ for d in sets}
    grid = itertools.product([2, 3], [0.99, 0.997, 0.999], [1.0, 1.5, 2.0, 3.0], [2.0, 5.0])
    for overlap, target, temperature, strength in grid:
        policy = Policy(overlap, target, temperature, strength)
        outs = [
            evaluate(d.shuffled(seed), policy, refs[d.name]) for d in sets for seed in range(orders)
        ]
        print(
            f"| {overlap} | {target} | {temperature} | {strength} "
            f"| {np.mean([o.share for o in outs]):.3f} "
            f"| {pct(float(np.mean([o.adaptive_disagreement for o in outs])))}% "
            f"| {pct(float(np.mean([o.fixed_disagreement for o in outs])))}% "
            f"| {np.mean([o.adaptive_disagreement < o.fixed_disagreement for o in outs]):.2f} |",
            flush=True,
        )


ABLATIONS = {
    "the policy": {},
    "next label in file order (no routing)": {"routing": "file"},
    "posterior rule (no horizon), target 0.95": {"horizon": False, "target": 0.95},
    "no temperature (T = 1)": {"temperature": 1.0},
    "no shrinkage (strength 0)": {"strength": 0.0},
    "lead's prototype: raw DS posterior >= 0.99, file order": {
        "horizon": False,
        "target": 0.99,
        "temperature": 1.0,
        "strength": 0.0,
        "routing": "file",
    },
}


def ablation(sets: list[Data], orders: int) -> None:
    """Each ingredient of the policy removed in turn, over label orders 0..orders-1 (0: file)."""
    print("| variant | labels used | differ from all-label | within 0.5 (file order) "
          "| within 0.5 (all orders) | beats fixed (all orders) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    refs = {d.name: aggregate(d, np.arange(d.task.size)).labels_ for d in sets}
    for name, change in ABLATIONS.items():
        policy = replace(Policy(), **change)  # type: ignore[arg-type]
        outs = [
            [evaluate(d.shuffled(k), policy, refs[d.name]) for d in sets] for k in range(orders)
        ]
        flat = [o for run in outs for o in run]
        print(
            f"| {name} | {np.mean([o.share for o in flat]):.3f} "
            f"| {pct(float(np.mean([o.adaptive_disagreement for o in flat])))}% "
            f"| {sum(o.within for o in outs[0])}/{len(sets)} "
            f"| {np.mean([o.within for o in flat]) * len(sets):.1f}/{len(sets)} "
            f"| {np.mean([o.versus_fixed == 'beats' for o in flat]) * len(sets):.1f}/{len(sets)} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="*")
    parser.add_argument("--orders", type=int, default=0)
    parser.add_argument("--noise", action="store_true")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--overlap", type=int, default=OVERLAP)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--temperature", type=float, default=TEMPERATURE)
    parser.add_argument("--strength", type=float, default=STRENGTH)
    parser.add_argument("--gold-rate", type=float, default=GOLD_RATE)
    parser.add_argument("--refit-every", type=int, default=1)
    parser.add_argument("--gold-extra", action="store_true", help="gold gets extra labels too")
    args = parser.parse_args()
    names = args.datasets or None
    sets = [d for d in eligible(args.gold_rate) if names is None or d.name in names]
    if args.sweep:
        sweep(sets, args.orders or 4)
        return
    if args.ablation:
        ablation(sets, args.orders or 4)
        return
    policy = Policy(
        args.overlap, args.target, args.temperature, args.strength, args.refit_every,
        gold_extra=args.gold_extra,
    )  # fmt: skip
    report(sets, policy, args.orders, args.noise, args.gold_rate)


if __name__ == "__main__":
    main()
