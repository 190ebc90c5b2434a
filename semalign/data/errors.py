"""The one exception type of semalign.data: its message always says what to do next."""

from __future__ import annotations


class DataError(RuntimeError):
    """A dataset is missing, damaged, or cannot give what a recipe asks for."""
