"""The one base class of semalign's user-facing errors.

Every error that means "your input, your copy of a dataset, your disk or your environment is
not as needed" derives from :class:`SemalignError`; its message says what to do. The
``semalign`` command prints such an error as one line (``semalign <command>: <message>``) and
exits with status 2 instead of showing a traceback. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class SemalignError(Exception):
    """A user-facing error: the message names what is wrong and what to do about it."""
