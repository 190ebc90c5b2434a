"""The one exception type of semalign.data: its message always says what to do next."""

from __future__ import annotations

from semalign.errors import SemalignError


class DataError(SemalignError, RuntimeError):
    """A dataset is missing, damaged, or cannot give what a recipe asks for."""
