"""Quorum's estimators against crowd-kit 1.4.2 on every categorical dataset in ../shared/datasets.

crowd-kit's results are golden tables (tests/truth/golden, made by make_golden.py: its GLAD alone
takes minutes); a few small datasets are also checked live against crowd-kit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quorum.io.labels import encode, read_gold, read_labels
from quorum.truth import (
    GLAD,
    MACE,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    ZeroBasedSkill,
)
from quorum.truth.encoding import EncodedLabels

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
GOLDEN = Path(__file__).resolve().parent / "golden"
NAMES = sorted(path.stem for path in GOLDEN.glob("*.npz"))
ESTIMATORS: dict[str, Any] = {
    "mv": MajorityVote,
    "wawa": Wawa,
    "zbs": ZeroBasedSkill,
    "ds": DawidSkene,
    "ods": OneCoinDawidSkene,
    "glad": GLAD,
    "mace": lambda: MACE(n_restarts=1),  # crowd-kit's restarts all start alike: one start
}
EXACT = {"mv", "wawa", "zbs", "ds", "ods", "mace"}  # same arithmetic, posteriors to 1e-6

pytestmark = pytest.mark.skipif(not DATASETS.is_dir(), reason="needs ../shared/datasets")


@dataclass(frozen=True)
class Case:
    data: EncodedLabels
    gold: Any
    golden: dict[str, Any]

    def accuracy(self, labels: Any) -> float:
        known = self.gold >= 0
        return float(np.mean(labels[known] == self.gold[known]))


@cache
def case(name: str) -> Case:
    folder = DATASETS / name
    data, gold = encode(read_labels(folder / "labels.csv"), read_gold(folder / "gold.csv"))
    with np.load(GOLDEN / f"{name}.npz") as tables:
        return Case(data, gold, dict(tables))


@cache
def fitted(name: str, method: str) -> Any:
    data = case(name).data
    return ESTIMATORS[method]().fit(data.task, data.worker, data.label, n_classes=data.n_classes)


def test_every_categorical_dataset_has_a_golden_table() -> None:
    kinds = {
        readme.parent.name: readme.read_text().split("**Kind:**")[1].split()[0]
        for readme in DATASETS.glob("*/README.md")
    }
    categorical = {"binary", "multiclass", "ordinal"}
    assert {name for name, kind in kinds.items() if kind in categorical} == set(NAMES)


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
@pytest.mark.parametrize("name", NAMES)
def test_same_labels_as_crowdkit(name: str, method: str) -> None:
    expected = case(name).golden[f"{method}_labels"]
    assert np.mean(fitted(name, method).labels_ == expected) >= 0.99


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
@pytest.mark.parametrize("name", NAMES)
def test_accuracy_within_half_a_point_of_crowdkit(name: str, method: str) -> None:
    this = case(name)
    ours = this.accuracy(fitted(name, method).labels_)
    theirs = this.accuracy(this.golden[f"{method}_labels"])
    assert abs(ours - theirs) <= 0.005


@pytest.mark.parametrize("method", sorted(EXACT))
@pytest.mark.parametrize("name", NAMES)
def test_same_posteriors_as_crowdkit(name: str, method: str) -> None:
    expected = case(name).golden[f"{method}_probas"]
    np.testing.assert_allclose(fitted(name, method).probas_, expected, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_mace_restarts_stay_close_to_crowdkit(name: str) -> None:
    """Ten different starts (crowd-kit's ten are all the same) keep the accuracy."""
    this = case(name)
    data = this.data
    labels = MACE().fit(data.task, data.worker, data.label, n_classes=data.n_classes).labels_
    assert abs(this.accuracy(labels) - this.accuracy(this.golden["mace_labels"])) <= 0.005


@pytest.mark.parametrize("name", ["snow_rte", "snow_wsd", "weather_sentiment_cf", "bluebirds"])
def test_live_against_crowdkit(name: str) -> None:
    aggregation = pytest.importorskip("crowdkit.aggregation")
    pd = pytest.importorskip("pandas")
    data = case(name).data
    frame = pd.DataFrame(
        {
            "task": data.tasks[data.task],
            "worker": data.workers[data.worker],
            "label": data.classes[data.label],
        }
    )
    for ours, theirs in [(DawidSkene, aggregation.DawidSkene), (Wawa, aggregation.Wawa)]:
        expected = theirs().fit_predict(frame).reindex(data.tasks).to_numpy()
        got = data.decode_labels(ours().fit(data.task, data.worker, data.label).labels_)
        assert np.array_equal(got, expected)
