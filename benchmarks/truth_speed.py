"""Truth inference speed and memory: Quorum against crowd-kit 1.4.2, side by side in one run.

    .venv/bin/python benchmarks/truth_speed.py [--tasks 1000000] [--classes 3] [--skip-crowdkit]

Synthetic Dawid-Skene data (seeded): N tasks x 5 labels, K classes, 10,000 workers whose
confusion matrices have accuracy 0.55-0.95 on the diagonal. On it: majority vote, Dawid-Skene
and one-coin Dawid-Skene for both libraries; GLAD and MACE for Quorum only (crowd-kit's would
take hours and many GB here). GLAD and MACE are compared side by side on the 92,721 labels of
``adult_content2`` (../shared/datasets), where the issue quotes crowd-kit at 84 s and 35 s.

Every fit runs in a fresh subprocess: wall time of ``fit`` alone; peak memory is the growth of
the process's resident set during ``fit`` (VmHWM reset through /proc/self/clear_refs just before),
so the input arrays or DataFrame built beforehand do not count. Both libraries run with one BLAS
thread (OPENBLAS_NUM_THREADS=1): SciPy's conjugate gradient in both GLADs loses more to thread
hand-offs than it gains on 2 cores. "same labels" is the share of tasks where the two agree.
crowd-kit's MACE gets worker and label codes numbered by first appearance: it indexes its
per-worker tables by first appearance in one step and by sorted value in the next, which on
other inputs scrambles workers' parameters (docs/truth.md); its speed does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
QUORUM = {
    "mv": "MajorityVote",
    "ds": "DawidSkene",
    "ods": "OneCoinDawidSkene",
    "glad": "GLAD",
    "mace": "MACE",
}
CROWDKIT = {
    "mv": "MajorityVote",
    "ds": "DawidSkene",
    "ods": "OneCoinDawidSkene",
    "glad": "GLAD",
    "mace": "MACE",
}


def synthetic(
    n_tasks: int, n_classes: int, n_workers: int = 10_000, per_task: int = 5
) -> dict[str, Any]:
    """Labels drawn from the Dawid-Skene model (seeded), rows in random order."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, n_classes, n_tasks)
    accuracy = rng.uniform(0.55, 0.95, n_workers)
    errors = rng.dirichlet(np.ones(n_classes - 1), size=(n_workers, n_classes))
    confusion = np.empty((n_workers, n_classes, n_classes))
    for k in range(n_classes):  # a loop over classes
        others = [j for j in range(n_classes) if j != k]
        confusion[:, k, k] = accuracy
        confusion[:, k, others] = (1 - accuracy)[:, None] * errors[:, k]
    task = np.repeat(np.arange(n_tasks), per_task)
    worker = rng.integers(0, n_workers, task.size)
    cumulative = confusion[worker, truth[task]].cumsum(axis=1)
    label = (rng.random(task.size)[:, None] > cumulative).sum(axis=1)
    order = rng.permutation(task.size)
    return {"task": task[order], "worker": worker[order], "label": label[order], "truth": truth}


def real(name: str) -> dict[str, Any]:
    from quorum.io.labels import encode, read_labels

    data = encode(read_labels(DATASETS / name / "labels.csv"))[0]
    return {"task": data.task, "worker": data.worker, "label": data.label}


# --- child process: one fit ------------------------------------------------------------------


def _memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(field)


def child(library: str, method: str, data_path: str, out_path: str) -> None:
    """Load the data, build the library's input, then time one fit and measure its memory."""
    arrays = dict(np.load(data_path))
    task, worker, label = arrays["task"], arrays["worker"], arrays["label"]
    if library == "quorum":
        import quorum.truth as truth

        estimator = getattr(truth, QUORUM[method])()
        run = lambda: estimator.fit(task, worker, label)  # noqa: E731
    else:
        import warnings

        import pandas as pd
        from crowdkit import aggregation

        warnings.filterwarnings("ignore")
        if method == "mace":  # number workers and labels by first appearance: see _labels
            worker, label = pd.factorize(worker)[0], pd.factorize(label)[0]
        frame = pd.DataFrame({"task": task, "worker": worker, "label": label})
        estimator = getattr(aggregation, CROWDKIT[method])()
        run = lambda: estimator.fit(frame)  # noqa: E731
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set
    before = _memory_kb("VmRSS")
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    peak = _memory_kb("VmHWM") - before
    labels = _labels(library, estimator, int(task.max()) + 1)
    if library == "crowdkit" and method == "mace":
        labels = pd.factorize(arrays["label"])[1][labels]
    np.save(out_path, labels)
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))


def _labels(library: str, estimator: Any, n_tasks: int) -> Any:
    if library == "quorum":
        return estimator.labels_
    return estimator.labels_.reindex(np.arange(n_tasks)).to_numpy().astype(np.int64)


# --- parent ----------------------------------------------------------------------------------


def measure(library: str, method: str, data_path: str, folder: str) -> dict[str, Any]:
    out_path = f"{folder}/{library}-{method}.npy"
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--child", library, method, data_path, out_path]
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    result: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    result["labels"] = np.load(out_path)
    return result


def compare(name: str, data: dict[str, Any], methods: list[str], crowdkit: bool) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        data_path = f"{folder}/data.npz"
        np.savez(data_path, task=data["task"], worker=data["worker"], label=data["label"])
        for method in methods:
            ours = measure("quorum", method, data_path, folder)
            row = [name, method, f"{ours['seconds']:.2f}", f"{ours['peak_mb']:.0f}"]
            if "truth" in data:
                row.append(f"{np.mean(ours['labels'] == data['truth']):.4f}")
            else:
                row.append("")
            if crowdkit and (method in {"mv", "ds", "ods"} or "truth" not in data):
                theirs = measure("crowdkit", method, data_path, folder)
                row += [
                    f"{theirs['seconds']:.2f}",
                    f"{theirs['peak_mb']:.0f}",
                    f"{theirs['seconds'] / ours['seconds']:.0f}x",
                    f"{theirs['peak_mb'] / max(ours['peak_mb'], 1):.1f}x",
                    f"{np.mean(ours['labels'] == theirs['labels']):.4f}",
                ]
            else:
                row += ["", "", "", "", ""]
            rows.append("| " + " | ".join(row) + " |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--skip-crowdkit", action="store_true")
    arguments = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, NumPy {np.__version__}"
    )
    header = (
        "| data | method | Quorum s | Quorum peak MB | accuracy | crowd-kit s | "
        "crowd-kit peak MB | speed-up | memory ratio | same labels |"
    )
    print(header + "\n|" + "---|" * 10)
    data = synthetic(arguments.tasks, arguments.classes)
    name = f"synthetic {arguments.tasks:,} x 5, K={arguments.classes}"
    compare(name, data, ["mv", "ds", "ods", "glad", "mace"], not arguments.skip_crowdkit)
    if (DATASETS / "adult_content2").is_dir():
        compare(
            "adult_content2", real("adult_content2"), ["glad", "mace"], not arguments.skip_crowdkit
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
    else:
        main()
