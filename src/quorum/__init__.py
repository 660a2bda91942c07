"""Quorum: expert-labeled AI training data whose quality is measured, not promised."""

__version__ = "0.1.0"
