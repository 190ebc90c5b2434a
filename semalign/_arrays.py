"""Input validation shared by the array-level modules of the "Beyond the paper" chapter
(:mod:`semalign.anchors`, :mod:`semalign.similarity`, :mod:`semalign.asif`).

Imports nothing of the project but the error base class, so any pure module may use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semalign.errors import SemalignError


def as_matrix(a: Any, name: str, error: type[SemalignError], *, shape: str = "(n, d)",
              allow_row: bool = False) -> np.ndarray:
    """``a`` as a float64 (n, d) array with n, d >= 1 and finite numbers, else ``error``.

    ``shape``: how the message spells the expected shape (e.g. ``"(P, d)"``); ``allow_row``:
    accept one row (d,) as (1, d).
    """
    arr = np.asarray(a)
    if allow_row and arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise error(f"{name} must be a non-empty {shape} array; got shape {np.shape(a)}")
    if not np.issubdtype(arr.dtype, np.number):
        raise error(f"{name} must hold numbers; got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise error(f"{name} contains NaN/inf: re-embed or drop those rows")
    return arr
