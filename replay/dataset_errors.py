"""The errors of offline datasets."""
from __future__ import annotations


class DatasetMismatchError(ValueError):
    """A dataset whose observations or actions do not fit the env."""


class DatasetError(DatasetMismatchError):
    """A dataset that cannot be used as given: unreadable, truncated, inconsistent (episode
    lengths, metadata), or without what the config asks of it. A DatasetMismatchError too, so
    that whoever reports a mismatch as a bad input (train.py) reports these the same way."""
