"""Sphinx extension of the book: launch buttons that open a file the repository really holds.

sphinx-book-theme builds a notebook page's launch link from the page's own path,
``book/generated/NN_name.ipynb``: the executed copy that ``semalign book`` writes, which is a
build output and not committed, so the link would open nothing. The notebook's source is the
jupytext file ``notebooks/NN_name.py`` (py:percent), which Binder opens as a notebook because
``environment.yml`` installs jupytext. This extension rewrites the Binder / JupyterHub links of
every generated page to that source, after the theme has built them.

(Colab opens only ``.ipynb`` files from GitHub, so the book configures no Colab button: it
could only point at an uncommitted file. Publishing the executed notebooks to a branch would
make one possible; see ``book/reproduce.md``.)
"""

from __future__ import annotations

import re
from typing import Any

#: ``book/generated/<stem>.ipynb`` inside a launch URL (the urlpath or a repository path).
_GENERATED = re.compile(r"book/generated/([0-9]{2}_[A-Za-z0-9_]+)\.ipynb")


def source_path(url: str) -> str:
    """The launch URL with the executed notebook's path replaced by its jupytext source."""
    return _GENERATED.sub(r"notebooks/\1.py", url)


def _retarget(buttons: list[dict[str, Any]]) -> None:
    for b in buttons:
        if b.get("type") == "group":
            _retarget(b.get("buttons", []))
        elif isinstance(b.get("url"), str):
            b["url"] = source_path(b["url"])


def retarget_launch_buttons(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """``html-page-context`` handler: runs after the theme's launch buttons (priority 501)."""
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            _retarget(group.get("buttons", []))


def setup(app) -> dict:
    app.connect("html-page-context", retarget_launch_buttons, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
