"""The reproduction book: profiles → notebooks → ``book/generated/`` → Jupyter Book.

Pipeline (DESIGN.md, "Book pipeline")::

    notebooks/NN_name.py  --jupytext-->  ipynb  --papermill (profile parameters)-->
    book/generated/NN_name.ipynb  --jupyter-book build . (execute_notebooks: off)-->  _build/html

A *profile* (``semalign/profiles/<name>.yml``, package data) holds the parameters of every
notebook: ``common`` (given to every notebook that declares the name) and ``notebooks:
{stem: {...}}`` (per notebook). ``-p name value`` overrides a parameter; the value is parsed
as YAML so ``-p anchor_counts "[25, 100]"`` gives a list and ``-p runs 1`` an int.

Papermill injects the parameters as its own cell (tagged ``injected-parameters``) right
after the notebook's ``parameters`` cell, so the executed notebook shows what it ran with.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from semalign._io import atomic_write_text

PROFILES = ("offline", "open", "paper")
#: Where the vega/vega-lite/vega-embed bundle is served from (relative to the repository root).
VEGA_BUNDLE = Path("book") / "_static" / "vega-bundle.js"


#: Environment given to the notebook kernels (restored afterwards).
_KERNEL_ENV = {"SEMALIGN_NOTEBOOK": "", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}


class BookError(RuntimeError):
    """A notebook, a profile or a parameter is wrong; the message says what to do."""


# --------------------------------------------------------------------------- locations
def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The repository holding ``_config.yml`` and ``notebooks/``.

    Looks at ``start`` (default: the working directory) and its parents, then at the folder
    above the installed package (an editable install). Raises :class:`BookError` otherwise.
    """
    candidates = []
    here = Path(start or os.getcwd()).resolve()
    candidates += [here, *here.parents]
    candidates.append(Path(__file__).resolve().parents[1])
    for c in candidates:
        if (c / "_config.yml").is_file() and (c / "notebooks").is_dir():
            return c
    raise BookError(
        "could not find the semalign repository (a folder with _config.yml and notebooks/): "
        "run this command from a clone of the repository"
    )


def notebooks_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "notebooks"


def list_notebooks(root: Path | None = None) -> list[Path]:
    """The book's notebooks (``notebooks/NN_*.py``), in order."""
    return sorted(p for p in notebooks_dir(root).glob("[0-9][0-9]_*.py"))


def resolve_notebook(name: str | os.PathLike, root: Path | None = None) -> Path:
    """A notebook path, or a stem such as ``02_transforms`` (or ``02``) in ``notebooks/``."""
    p = Path(name)
    if p.suffix in (".py", ".ipynb") and p.is_file():
        return p.resolve()
    nbs = list_notebooks(root)
    matches = [q for q in nbs if q.stem == str(name) or q.stem.split("_", 1)[0] == str(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(q.stem for q in nbs) or "(none)"
    raise BookError(f"no notebook {str(name)!r}: give a path or one of {known}")


# --------------------------------------------------------------------------- profiles
def load_profile(name: str | os.PathLike = "offline") -> dict[str, Any]:
    """Load a profile: a name in :data:`PROFILES` (package data) or a path to a YAML file.

    Returns ``{"name", "description", "common": {...}, "notebooks": {stem: {...}}}``.
    """
    p = Path(name)
    if p.suffix in (".yml", ".yaml") and p.is_file():
        text, label = p.read_text(), p.stem
    else:
        from importlib import resources

        res = resources.files("semalign") / "profiles" / f"{name}.yml"
        if not res.is_file():
            raise BookError(
                f"unknown profile {str(name)!r}: use one of {', '.join(PROFILES)} or a path to a YAML file"
            )
        text, label = res.read_text(), str(name)
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("common", {}), dict) or not isinstance(
        data.get("notebooks", {}), dict
    ):
        raise BookError(f"profile {label!r} must be a mapping with 'common' and 'notebooks' mappings")
    data.setdefault("common", {})
    data.setdefault("notebooks", {})
    data["name"] = data.get("name", label)
    return data


def profile_parameters(profile: dict[str, Any], stem: str) -> dict[str, Any]:
    """The parameters a profile gives notebook ``stem``: ``common`` then its own section."""
    params = {"profile": profile["name"], **profile["common"]}
    params.update(profile["notebooks"].get(stem) or {})
    return params


def parse_overrides(pairs: Iterable[Iterable[str]] | None) -> dict[str, Any]:
    """``[("runs", "1"), ("methods", "[ortho]")] -> {"runs": 1, "methods": ["ortho"]}`` (YAML values)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, value = list(pair)
        if not name.isidentifier():
            raise BookError(f"-p {name!r}: a parameter name must be a Python identifier")
        try:
            out[name] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise BookError(f"-p {name} {value!r}: not a YAML value ({e})") from None
    return out


# --------------------------------------------------------------------------- running
def _to_ipynb(src: Path):
    import jupytext

    nb = jupytext.read(src)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise BookError(f"{src.name} has no cell tagged 'parameters' (add `# %% tags=[\"parameters\"]`)")
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    return nb


def declared_parameters(nb) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell."""
    import ast

    names: set[str] = set()
    for c in nb.cells:
        if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", []):
            for node in ast.parse(c.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def run_notebook(
    path: str | os.PathLike,
    profile: str | dict = "offline",
    overrides: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    *,
    strict: bool = True,
    log: bool = False,
) -> Path:
    """Execute one notebook with a profile's parameters; return the executed ``.ipynb``.

    ``path`` is a jupytext ``.py`` (py:percent) or ``.ipynb`` notebook, or a stem in
    ``notebooks/``. The notebook runs with ``output_dir`` (default ``book/generated``) as
    its working directory, so its ``results/<stem>.csv`` lands next to its output. Overrides
    naming a parameter the notebook does not declare raise :class:`BookError` when
    ``strict`` (``semalign run``); otherwise they are skipped (``semalign book`` gives the same
    ``-p`` to every notebook). The executed notebook is written atomically: a failed run leaves
    ``<stem>.failed.ipynb`` for inspection and no ``<stem>.ipynb``.
    """
    import nbformat
    import papermill

    root = None
    src = Path(path) if Path(path).is_file() else resolve_notebook(path)
    prof = profile if isinstance(profile, dict) else load_profile(profile)
    if output_dir is None:
        root = repo_root()
        output_dir = root / "book" / "generated"
    out_dir = Path(output_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = src.stem

    nb = _to_ipynb(src) if src.suffix == ".py" else nbformat.read(src, as_version=4)
    declared = declared_parameters(nb)
    params = {k: v for k, v in profile_parameters(prof, stem).items() if k in declared}
    unknown = sorted(set(overrides or {}) - declared)
    if unknown and strict:
        raise BookError(
            f"{stem} has no parameter {', '.join(unknown)}; its parameters are: {', '.join(sorted(declared))}"
        )
    params.update({k: v for k, v in (overrides or {}).items() if k in declared})

    tmp_in = out_dir / f".{stem}.input.ipynb"
    tmp_out = out_dir / f".{stem}.output.ipynb"
    atomic_write_text(tmp_in, nbformat.writes(nb))
    env_before = {k: os.environ.get(k) for k in _KERNEL_ENV}
    # the kernel inherits these: results_path() reads SEMALIGN_NOTEBOOK; no progress bars in pages
    os.environ.update({**_KERNEL_ENV, "SEMALIGN_NOTEBOOK": stem})
    try:
        papermill.execute_notebook(
            str(tmp_in), str(tmp_out), parameters=params, kernel_name="python3",
            cwd=str(out_dir), progress_bar=False, log_output=log,
        )
    except papermill.PapermillExecutionError as e:
        failed = out_dir / f"{stem}.failed.ipynb"
        if tmp_out.exists():
            os.replace(tmp_out, failed)
        raise BookError(
            f"notebook {stem} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
            f"  the partly executed notebook is {failed}"
        ) from None
    finally:
        tmp_in.unlink(missing_ok=True)
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    final = out_dir / f"{stem}.ipynb"
    os.replace(tmp_out, final)
    (out_dir / f"{stem}.failed.ipynb").unlink(missing_ok=True)
    return final


# --------------------------------------------------------------------------- notebook helpers
def results_path(stem: str | None = None, results_dir: str | os.PathLike = "results") -> Path:
    """``results/<stem>.csv`` beside the executed notebook (the kernel's working directory)."""
    stem = stem or os.environ.get("SEMALIGN_NOTEBOOK") or "notebook"
    return Path(results_dir) / f"{stem}.csv"


def write_results(frame, stem: str | None = None, results_dir: str | os.PathLike = "results") -> Path:
    """Write a tidy results frame to ``results/<stem>.csv`` atomically; return the path."""
    path = results_path(stem, results_dir)
    atomic_write_text(path, frame.to_csv(index=False))
    return path


def read_results(stem: str, results_dir: str | os.PathLike = "results"):
    """Read another notebook's results; a clear error if that notebook has not run yet."""
    import pandas as pd

    path = Path(results_dir) / f"{stem}.csv"
    if not path.is_file():
        raise BookError(f"{path} is missing: run notebook {stem} first (`semalign run {stem}`)")
    return pd.read_csv(path)


# --------------------------------------------------------------------------- the book
def write_vega_bundle(root: Path | None = None, force: bool = False) -> Path:
    """Write ``book/_static/vega-bundle.js``: vega + vega-lite + vega-embed for offline charts.

    The bundle comes from ``vl_convert.javascript_bundle()`` (no network), pinned to the
    vega-lite version Altair writes. It ends by setting ``window.VEGA_DEBUG`` to Altair's
    versions: Altair's HTML output then finds the libraries already loaded and never asks the
    CDN. The bundle's top-level ``const`` names are wrapped in a function so they cannot
    collide with the theme's scripts (classic scripts share one global lexical scope).
    """
    import altair as alt
    import vl_convert as vlc

    root = root or repo_root()
    path = root / VEGA_BUNDLE
    vl_minor = ".".join(alt.VEGALITE_VERSION.split(".")[:2])
    stamp = f"/* semalign vega bundle: vega-lite {vl_minor}, altair {alt.__version__}, vl-convert {vlc.__version__} */\n"
    if path.is_file() and not force:
        with open(path) as f:
            if f.readline() == stamp:
                return path
    bundle = vlc.javascript_bundle(vl_version=vl_minor)
    debug = {
        "vega_version": alt.VEGA_VERSION,
        "vegalite_version": alt.VEGALITE_VERSION,
        "vegaembed_version": alt.VEGAEMBED_VERSION,
    }
    import json

    text = (
        stamp
        + "(function(){\n" + bundle + "\n})();\n"
        + f"window.VEGA_DEBUG = Object.assign(window.VEGA_DEBUG || {{}}, {json.dumps(debug)});\n"
    )
    atomic_write_text(path, text)
    return path


def build_book(root: Path | None = None, *, all_pages: bool = True) -> Path:
    """``jupyter-book build .`` (notebooks already executed); return ``_build/html/index.html``."""
    root = root or repo_root()
    write_vega_bundle(root)
    exe = shutil.which("jupyter-book")
    cmd = [exe] if exe else [sys.executable, "-m", "jupyter_book.cli.main"]
    cmd += ["build", str(root), "--builder", "html"]
    if all_pages:
        cmd.append("--all")
    proc = subprocess.run(cmd, cwd=root)
    index = root / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.is_file():
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); see the log above")
    return index


def cli_run(args: argparse.Namespace) -> int:
    """``semalign run NOTEBOOK [--profile P] [-p name value …] [--output-dir D]``."""
    try:
        out = run_notebook(args.notebook, args.profile, parse_overrides(args.parameter), args.output_dir)
    except BookError as e:
        print(f"semalign run: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def cli_book(args: argparse.Namespace) -> int:
    """``semalign book [--profile P] [-p name value …] [--only STEM …] [--no-build]``."""
    try:
        root = repo_root()
        prof = load_profile(args.profile)
        overrides = parse_overrides(args.parameter)
        nbs = list_notebooks(root)
        if args.only:
            nbs = [resolve_notebook(s, root) for s in args.only]
        declared_any: set[str] = set()
        for src in nbs:
            declared_any |= declared_parameters(_to_ipynb(src))
        unknown = sorted(set(overrides) - declared_any)
        if unknown:
            raise BookError(f"no notebook has a parameter {', '.join(unknown)}")
        for src in nbs:
            t0 = time.perf_counter()
            print(f"[semalign book] {src.stem} (profile {prof['name']}) …", flush=True)
            run_notebook(src, prof, overrides, root / "book" / "generated", strict=False)
            print(f"[semalign book] {src.stem} done in {time.perf_counter() - t0:.1f} s", flush=True)
        if not args.no_build:
            index = build_book(root)
            print(index)
    except BookError as e:
        print(f"semalign book: {e}", file=sys.stderr)
        return 2
    return 0


def paper_table1_strings() -> list[str]:
    """The paper's Table 1 numbers as the book renders them (for the browser test)."""
    from semalign.plots import paper_strings
    from semalign.tables import PAPER_TABLE1

    return paper_strings(PAPER_TABLE1)
