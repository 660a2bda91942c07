"""Hashable columns to dense codes and back."""

from __future__ import annotations

import numpy as np
import pytest

from quorum.truth import encode, encode_labels


def test_codes_follow_sorted_values_and_decode_back() -> None:
    data = encode_labels(["t2", "t1", "t2"], [10, 20, 10], ["b", "a", "c"], classes=["z"])
    assert data.tasks.tolist() == ["t1", "t2"] and data.workers.tolist() == [10, 20]
    assert data.classes.tolist() == ["a", "b", "c", "z"]
    assert data.decode_labels(data.label).tolist() == ["b", "a", "c"]
    assert data.encode_gold(["t1", "nope"], ["z", "a"]).tolist() == [3, -1]


def test_numbers_sort_as_numbers() -> None:
    codes, vocabulary = encode([10, 9, 100])
    assert vocabulary.tolist() == [9, 10, 100] and codes.tolist() == [1, 0, 2]


def test_unknown_and_unorderable_values_raise() -> None:
    with pytest.raises(ValueError, match="not in the vocabulary"):
        encode(["x"], np.array(["a", "b"]))
    with pytest.raises(ValueError, match="unorderable"):
        encode(np.array([1, "a"], dtype=object))
