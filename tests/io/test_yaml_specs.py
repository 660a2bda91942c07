"""Specs in YAML keep yes/no/on/off as text (YAML 1.2), as people writing options mean them."""

import pytest
import yaml

from quorum.io import yaml_specs


def test_only_true_and_false_are_booleans() -> None:
    text = "options: [yes, no, on, off, y, n, Yes, NO]\nflags: [true, False, TRUE]\nn: 3\nx: ~"
    assert yaml_specs.load(text) == {
        "options": ["yes", "no", "on", "off", "y", "n", "Yes", "NO"],
        "flags": [True, False, True],
        "n": 3,
        "x": None,
    }


def test_it_stays_a_safe_loader() -> None:
    with pytest.raises(yaml.YAMLError):
        yaml_specs.load("!!python/object/apply:os.system ['true']")
