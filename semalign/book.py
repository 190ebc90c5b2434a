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

A run publishes all of its outputs or none (:func:`run_notebook`): the kernel works in a
hidden staging folder, and only a notebook that completed has its ``results/*.csv`` and its
executed ``.ipynb`` moved into ``book/generated/``. A failed run leaves the previous good
outputs in place, plus ``<stem>.failed.ipynb`` and ``<stem>.failed-results/`` to look at.
Every mistake a user can make (profile, ``-p``, output folder, parameters cell, missing book
extra) is a :class:`BookError` raised before a kernel starts.
"""

from __future__ import annotations

from semalign.errors import SemalignError

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from semalign._io import atomic_write_text, file_lock

PROFILES = ("offline", "open", "paper")
#: Where the vega/vega-lite/vega-embed bundle is served from (relative to the repository root).
VEGA_BUNDLE = Path("book") / "_static" / "vega-bundle.js"


#: Environment given to the notebook kernels (restored afterwards).
_KERNEL_ENV = {"SEMALIGN_NOTEBOOK": "", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "TRANSFORMERS_VERBOSITY": "error", "PYTHONWARNINGS": "ignore"}


class BookError(SemalignError, RuntimeError):
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


# --------------------------------------------------------------------------- the book extra
#: What ``pip install -e ".[book]"`` provides that running and building the book imports.
_BOOK_EXTRA_HINT = 'the book extra is not installed ({missing} is missing): run pip install -e ".[book]" ' \
                   "in the repository (or pip install -e \".[all]\")"


def require_book_extra(*modules: str) -> list[Any]:
    """Import ``modules`` (default: nbformat, papermill, jupytext) and return them.

    A missing one raises :class:`BookError` saying to install the ``book`` extra, instead of an
    ``ImportError`` traceback from deep inside a run.
    """
    import importlib

    out = []
    for name in modules or ("nbformat", "papermill", "jupytext"):
        try:
            out.append(importlib.import_module(name))
        except ImportError:
            raise BookError(_BOOK_EXTRA_HINT.format(missing=name)) from None
    return out


def _require_installed(*modules: str) -> None:
    """Like :func:`require_book_extra` without importing (for modules only a subprocess needs)."""
    import importlib.util

    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a None placeholder in sys.modules, or a broken package
            found = False
        if not found:
            raise BookError(_BOOK_EXTRA_HINT.format(missing=name))


# --------------------------------------------------------------------------- profiles
def profile_names() -> list[str]:
    """The profiles shipped as package data (``semalign/profiles/*.yml``), sorted."""
    from importlib import resources

    folder = resources.files("semalign") / "profiles"
    return sorted(r.name[: -len(".yml")] for r in folder.iterdir() if r.name.endswith(".yml"))


def load_profile(name: str | os.PathLike = "offline") -> dict[str, Any]:
    """Load a profile: a name in :func:`profile_names` (package data) or a path to a YAML file.

    Only those two are accepted: a name such as ``../x`` or ``offline/../../assets`` is neither a
    shipped profile nor a ``.yml``/``.yaml`` file, so it cannot reach outside the profiles folder.
    Malformed YAML raises :class:`BookError` naming the file and the line.

    Returns ``{"name", "description", "common": {...}, "notebooks": {stem: {...}}}``.
    """
    p = Path(name)
    known = profile_names()
    if p.suffix in (".yml", ".yaml"):
        if not p.is_file():
            raise BookError(f"profile file {str(p)!r} does not exist: give an existing .yml/.yaml file "
                            f"or one of {', '.join(known)}")
        where, label = str(p), p.stem
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError) as e:
            raise BookError(f"profile {where} is not a UTF-8 text file ({e.__class__.__name__})") from None
    elif str(name) in known:
        from importlib import resources

        res = resources.files("semalign") / "profiles" / f"{name}.yml"
        where, label, text = str(res), str(name), res.read_text(encoding="utf-8")
    else:
        raise BookError(
            f"unknown profile {str(name)!r}: use one of {', '.join(known)} or a path to a .yml/.yaml file"
        )
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or " ".join(str(e).split())
        ctx, ctx_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if ctx and ctx_mark is not None:  # e.g. an unclosed "[" opened on an earlier line
            problem += f"; {ctx} opened at line {ctx_mark.line + 1}"
        raise BookError(f"profile {where}{at}: not valid YAML ({problem}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("common", {}), dict) or not isinstance(
        data.get("notebooks", {}), dict
    ):
        raise BookError(f"profile {label!r} ({where}) must be a mapping with 'common' and 'notebooks' mappings")
    if any(not isinstance(v, (dict, type(None))) for v in data.get("notebooks", {}).values()):
        raise BookError(f"profile {label!r} ({where}): each entry of 'notebooks' must be a mapping of parameters")
    data["common"] = data.get("common") or {}
    data["notebooks"] = data.get("notebooks") or {}
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
            raise BookError(f"-p {name} {value!r}: not a YAML value ({' '.join(str(e).split())})") from None
    return out


# --------------------------------------------------------------------------- notebooks and their parameters
def _is_parameters_cell(cell) -> bool:
    return cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", [])


def _check_parameters_cell(nb, src: Path) -> None:
    """Parse the ``parameters`` cell now, so a syntax error is one :class:`BookError` naming the
    notebook and the line (of ``src`` when the cell can be found in it), not a traceback."""
    import ast

    for c in nb.cells:
        if not _is_parameters_cell(c):
            continue
        try:
            ast.parse(c.source)
        except SyntaxError as e:
            line = f"line {e.lineno} of its parameters cell"
            if src.suffix == ".py":
                text = src.read_text(encoding="utf-8", errors="replace")
                at = text.find(c.source) if c.source else -1
                if at >= 0:
                    line = f"line {text[:at].count(chr(10)) + (e.lineno or 1)}"
            raise BookError(f"{src.name}, {line}: syntax error in the parameters cell ({e.msg}); "
                            "fix it and rerun") from None


def _to_ipynb(src: Path):
    """A jupytext ``.py`` or an ``.ipynb`` notebook as an nbformat node with a checked parameters cell."""
    nbformat, jupytext = require_book_extra("nbformat", "jupytext")
    src = Path(src)
    try:
        nb = jupytext.read(src) if src.suffix == ".py" else nbformat.read(src, as_version=4)
    except (nbformat.reader.NotJSONError, nbformat.ValidationError, UnicodeDecodeError, ValueError) as e:
        raise BookError(f"{src} is not a readable notebook ({' '.join(str(e).split())[:200]})") from None
    if src.suffix == ".py" and not any(_is_parameters_cell(c) for c in nb.cells):
        raise BookError(f"{src.name} has no cell tagged 'parameters' (add `# %% tags=[\"parameters\"]`)")
    _check_parameters_cell(nb, src)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    return nb


#: A parameter whose default is not a literal (an expression): any override is accepted.
_ANY = object()


def parameter_defaults(nb) -> dict[str, Any]:
    """``{name: default}`` of the notebook's ``parameters`` cell; ``_ANY`` for a non-literal default."""
    import ast

    out: dict[str, Any] = {}
    for c in nb.cells:
        if not _is_parameters_cell(c):
            continue
        try:
            body = ast.parse(c.source).body
        except SyntaxError as e:
            raise BookError(f"syntax error in a parameters cell, line {e.lineno}: {e.msg}") from None
        for node in body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign):
                targets, value = [node.target], node.value
            else:
                continue
            try:
                default = ast.literal_eval(value) if value is not None else _ANY
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                default = _ANY
            out.update({t.id: default for t in targets if isinstance(t, ast.Name)})
    return out


def declared_parameters(nb) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell."""
    return set(parameter_defaults(nb))


def _kind(value: Any) -> str | None:
    """The type family an override must match, from a default value (None: anything goes)."""
    if value is _ANY or value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "int" if isinstance(value, int) else "number"
    for t, name in ((str, "str"), ((list, tuple), "list"), (dict, "dict")):
        if isinstance(value, t):
            return name
    return None


def _fits(kind: str, value: Any) -> bool:
    if value is None:  # null is every parameter's "not set" (e.g. anchor_pool: null)
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # YAML `true` is not a number here
        return False
    return {"int": isinstance(value, int), "number": isinstance(value, (int, float)),
            "str": isinstance(value, str), "list": isinstance(value, list),
            "dict": isinstance(value, dict)}[kind]


_KIND_WORDS = {"bool": "a bool (true/false)", "int": "an int", "number": "a number", "str": "a string",
               "list": 'a list (e.g. "[a, b]")', "dict": 'a mapping (e.g. "{a: 1}")'}


def check_overrides(nb, stem: str, overrides: dict[str, Any] | None, *, strict: bool = True) -> dict[str, Any]:
    """The ``-p`` overrides notebook ``stem`` declares, checked; returns them.

    An override the notebook does not declare raises :class:`BookError` when ``strict``
    (``semalign run``) and is skipped otherwise (``semalign book`` gives one ``-p`` to every
    notebook). An override whose YAML type differs from the literal default in the parameters
    cell (``-p runs abc`` where ``runs = 3``) raises :class:`BookError` before anything runs;
    ``null`` is always accepted, an int is accepted for a float, and a default that is ``None``
    or not a literal accepts anything.
    """
    defaults = parameter_defaults(nb)
    unknown = sorted(set(overrides or {}) - set(defaults))
    if unknown and strict:
        raise BookError(
            f"{stem} has no parameter {', '.join(unknown)}; its parameters are: {', '.join(sorted(defaults))}"
        )
    out = {k: v for k, v in (overrides or {}).items() if k in defaults}
    for k, v in out.items():
        kind = _kind(defaults[k])
        if kind is not None and not _fits(kind, v):
            raise BookError(f"-p {k} {v!r}: {stem} expects {_KIND_WORDS[kind]} "
                            f"(its default is {defaults[k]!r}); got a {type(v).__name__}")
    return out


def _output_folder(output_dir: str | os.PathLike) -> Path:
    """``output_dir`` resolved and created; a path that is (or lies under) a file is a BookError."""
    out = Path(output_dir).expanduser().resolve()
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise BookError(f"output folder {out} cannot be created: {p} is a file, not a folder; "
                            "give another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- running
#: Environment variable naming the *published* results folders (``os.pathsep``-separated, first
#: first), which :func:`read_results` falls back to: the kernel works in a staging folder, other
#: notebooks' results are published.
RESULTS_ENV = "SEMALIGN_RESULTS_DIR"


@dataclass
class Outcome:
    """What :func:`run` did: ``notebook`` (the published executed notebook), ``results`` (the
    published results files of this run), ``key`` (its execution-cache key), ``reused`` (restored
    from the execution cache, no kernel started), ``executed`` (when the outputs were computed,
    local time), ``seconds`` (how long that execution took), ``reason`` (why it was executed;
    empty when reused) and ``parameters`` (the values it ran with)."""

    stem: str
    notebook: Path
    results: list[Path]
    key: str
    reused: bool
    executed: str
    seconds: float
    reason: str
    parameters: dict[str, Any]


def notebook_parameters(src: Path, profile: str | dict, overrides: dict[str, Any] | None, *,
                        strict: bool = True) -> tuple[Any, dict[str, Any]]:
    """``(nb, parameters)``: the notebook read and checked, and the values it runs with (the
    profile's for the names it declares, then the checked overrides)."""
    prof = profile if isinstance(profile, dict) else load_profile(profile)
    nb = _to_ipynb(src)
    declared = declared_parameters(nb)
    params = {k: v for k, v in profile_parameters(prof, src.stem).items() if k in declared}
    params.update(check_overrides(nb, src.stem, overrides, strict=strict))
    return nb, params


def run(
    path: str | os.PathLike,
    profile: str | dict = "offline",
    overrides: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    *,
    strict: bool = True,
    log: bool = False,
    force: bool = False,
    cache: bool = True,
    results_from: Sequence[str | os.PathLike] = (),
    say: Callable[[str], None] | None = None,
    progress_prefix: str | None = "",
    progress_stream: Any = None,
) -> Outcome:
    """Execute one notebook with a profile's parameters, or reuse its last run; see :class:`Outcome`.

    ``path`` is a jupytext ``.py`` (py:percent) or ``.ipynb`` notebook, or a stem in
    ``notebooks/``. Outputs go to ``output_dir`` (default ``book/generated``): the executed
    ``<stem>.ipynb`` and the ``results/*.csv`` the notebook writes. Overrides are checked by
    :func:`check_overrides` before anything runs (``strict``: unknown names are an error).

    **Execution cache** (:mod:`semalign.runcache`). Unless ``force`` (or ``cache=False``), a
    stored run with the same key whose recorded reads still resolve is *reused*: no kernel
    starts; its notebook and results are published as below (nothing is written when the
    published files are already those). ``say`` gets one status line ("02_transforms: reused
    (key …, executed …)" or "…: executing (why)"). A successful execution is stored.

    **All or nothing.** The kernel runs with a fresh staging folder
    ``<output_dir>/.staging-<stem>-<pid>-<random>/`` as its working directory, so
    :func:`write_results` (``results/…`` relative to it) and any other relative write land there;
    :func:`read_results` finds other notebooks' *published* results through
    ``$SEMALIGN_RESULTS_DIR`` = ``<output_dir>/results`` then ``results_from`` (a sweep reads the
    book's). Then, under a per-notebook lock (``<output_dir>/.<stem>.lock``, so two concurrent
    runs of one notebook publish one after the other, never interleaved):

    - on success, each staged results file is moved into ``<output_dir>/results/`` and *then*
      the executed notebook to ``<stem>.ipynb`` (each ``os.replace`` atomic). The notebook goes
      last because it is the mark of a completed run: whoever sees the new ``<stem>.ipynb`` also
      sees all of its results. (Only a kill in the microseconds between these renames can leave
      some new results beside the old notebook — results of a run that succeeded.) Leftovers of an
      earlier failure (``<stem>.failed.ipynb``, ``<stem>.failed-results/``) are removed.
    - on failure, the published ``<stem>.ipynb`` and ``results/`` are untouched; the partly
      executed notebook is kept as ``<stem>.failed.ipynb`` and the results it had staged as
      ``<stem>.failed-results/`` (both for inspection, replaced by the next failure). A
      :class:`BookError` carries the kernel's error line. Nothing is stored.

    **Progress.** The kernel's long loops (:mod:`semalign.progress`) are drawn on this process's
    ``progress_stream`` (default stderr), each line starting with ``progress_prefix`` (None: not
    shown); nothing of it reaches the executed notebook.

    The staging folder is always removed (a hidden folder, outside the book's table of contents,
    if a killed process leaves one).
    """
    from semalign import runcache

    nbformat, papermill = require_book_extra("nbformat", "papermill", "jupytext")[:2]
    _require_installed("ipykernel")

    src = Path(path) if Path(path).is_file() else resolve_notebook(path)
    nb, params = notebook_parameters(src, profile, overrides, strict=strict)
    stem = src.stem
    out_dir = _output_folder(output_dir if output_dir is not None else repo_root() / "book" / "generated")
    folders = [out_dir / "results", *(Path(p).expanduser().resolve() for p in results_from)]
    say = say or (lambda line: None)

    parts = runcache.key_parts(nb, params)
    key = runcache.key_of(parts)
    reason = "--force" if force else "the execution cache is off"
    if cache and not force:
        hit, changed = runcache.lookup(stem, key, folders)
        if hit is not None:
            try:
                return _reuse(hit, out_dir, stem, key, params, say)
            except OSError as e:  # removed meanwhile (pruned by another process), unreadable...
                import warnings

                warnings.warn(f"execution cache: the stored run of {stem} could not be restored ({e}); "
                              "executing it", runcache.ExecutionCacheWarning, stacklevel=2)
                changed = "the stored run could not be restored"
        reason = changed or runcache.explain(stem, parts)
    say(f"{stem}: executing ({reason})")

    staging = Path(tempfile.mkdtemp(prefix=f".staging-{stem}-{os.getpid()}-", dir=out_dir))
    try:
        staged_results = staging / "results"
        staged_results.mkdir()
        tmp_in = staging / f".{stem}.input.ipynb"  # hidden: never taken for an output
        tmp_out = staging / f"{stem}.ipynb"
        reads = staging / ".reads.jsonl"
        atomic_write_text(tmp_in, nbformat.writes(nb))
        t0 = time.perf_counter()
        try:
            _execute(papermill, tmp_in, tmp_out, params, staging, stem, folders, reads, log,
                     progress_prefix, progress_stream)
        except _KernelFailed as e:
            failed, failed_results = out_dir / f"{stem}.failed.ipynb", out_dir / f"{stem}.failed-results"
            kept = ""
            with file_lock(out_dir / f".{stem}.lock"):
                if tmp_out.exists():
                    os.replace(tmp_out, failed)
                    kept = f"; the partly executed notebook is {failed}"
                shutil.rmtree(failed_results, ignore_errors=True)
                if any(staged_results.iterdir()):
                    os.replace(staged_results, failed_results)
            raise BookError(f"notebook {stem} failed{e.where}: {e.what}{kept}") from None
        seconds = time.perf_counter() - t0
        executed = time.strftime("%Y-%m-%d %H:%M")
        produced = sorted(f for f in staged_results.iterdir() if f.is_file() and not f.name.startswith("."))
        if cache:
            _store(runcache, stem, key, parts, reads, tmp_out, produced, params, executed, seconds, nb)
        results = _publish(out_dir, stem, produced, tmp_out)
        return Outcome(stem, out_dir / f"{stem}.ipynb", results, key, False, executed, seconds, reason, params)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_notebook(path: str | os.PathLike, profile: str | dict = "offline", overrides: dict[str, Any] | None = None,
                 output_dir: str | os.PathLike | None = None, *, strict: bool = True, log: bool = False,
                 force: bool = False, cache: bool = True) -> Path:
    """:func:`run` without status lines; returns the published executed ``.ipynb``."""
    return run(path, profile, overrides, output_dir, strict=strict, log=log, force=force, cache=cache).notebook


def _store(runcache, stem: str, key: str, parts: dict, reads_log: Path, notebook: Path, results: list[Path],
           params: dict, executed: str, seconds: float, nb) -> None:
    """Store a successful run, unless what it read cannot be trusted or its inputs changed while
    it ran (then the next run executes again; a warning says why)."""
    import warnings

    reads = runcache.read_log(reads_log)
    if reads is None:
        warnings.warn(f"execution cache: the read log of {stem} is damaged; the run is published but "
                      f"not stored", runcache.ExecutionCacheWarning, stacklevel=3)
        return
    if runcache.key_parts(nb, params) != parts:
        warnings.warn(f"execution cache: the semalign source, the data manifests or the environment "
                      f"changed while {stem} ran; the run is published but not stored",
                      runcache.ExecutionCacheWarning, stacklevel=3)
        return
    import semalign

    info = {"parameters": params, "executed": executed, "seconds": round(seconds, 3),
            "semalign": getattr(semalign, "__version__", "")}
    runcache.store(stem, key, parts, reads, notebook, results, info)


def _publish(out_dir: Path, stem: str, results: Sequence[Path], notebook: Path) -> list[Path]:
    """Move ``results`` into ``<out_dir>/results/`` and *then* ``notebook`` to ``<stem>.ipynb``
    under the notebook's lock (see :func:`run`); remove an earlier failure's leftovers."""
    published = out_dir / "results"
    final = out_dir / f"{stem}.ipynb"
    with file_lock(out_dir / f".{stem}.lock"):
        published.mkdir(exist_ok=True)
        for f in results:
            os.replace(f, published / f.name)
        os.replace(notebook, final)  # last: see run()
        (out_dir / f"{stem}.failed.ipynb").unlink(missing_ok=True)
        shutil.rmtree(out_dir / f"{stem}.failed-results", ignore_errors=True)
    return [published / f.name for f in results]


def _reuse(hit, out_dir: Path, stem: str, key: str, params: dict, say: Callable[[str], None]) -> Outcome:
    """Publish a stored run (nothing is written if ``out_dir`` already holds exactly its files)."""
    from semalign._io import sha256_file

    rec = hit.record
    final, published = out_dir / f"{stem}.ipynb", out_dir / "results"
    targets = {n: final if n == "notebook.ipynb" else published / n.split("/", 1)[1] for n in rec["files"]}
    if not all(t.is_file() and sha256_file(t) == rec["files"][n] for n, t in targets.items()):
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{stem}-{os.getpid()}-", dir=out_dir))
        try:
            (staging / "results").mkdir()
            copies = [staging / "results" / p.name for p in hit.results]
            for src, dst in zip(hit.results, copies):
                shutil.copyfile(src, dst)
            shutil.copyfile(hit.notebook, staging / f"{stem}.ipynb")
            _publish(out_dir, stem, copies, staging / f"{stem}.ipynb")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    say(f"{stem}: reused (key {key[:12]}, executed {rec.get('executed', '?')})")
    return Outcome(stem, final, [published / p.name for p in hit.results], key, True,
                   str(rec.get("executed", "")), float(rec.get("seconds") or 0.0), "", params)


class _KernelFailed(Exception):
    """Internal: the notebook did not complete (``where`` e.g. " in cell 3", ``what`` one line)."""

    def __init__(self, where: str, what: str):
        super().__init__(what)
        self.where, self.what = where, what


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _execute(papermill, tmp_in: Path, tmp_out: Path, params: dict[str, Any], cwd: Path, stem: str,
             published: Sequence[Path], reads: Path, log: bool, progress_prefix: str | None,
             progress_stream: Any = None) -> None:
    """papermill in ``cwd`` with the kernel environment; a failure of the notebook → _KernelFailed."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from semalign import progress
    from semalign.cache import READ_LOG_ENV

    kernel_errors = (DeadKernelError, CellTimeoutError, NoSuchKernel)
    channel = cwd / ".progress.jsonl"
    kernel_env = {**_KERNEL_ENV, "SEMALIGN_NOTEBOOK": stem, RESULTS_ENV: os.pathsep.join(map(str, published)),
                  READ_LOG_ENV: str(reads)}
    if progress_prefix is not None:
        kernel_env[progress.PROGRESS_ENV] = str(channel)
    env_before = {k: os.environ.get(k) for k in (*kernel_env, progress.PROGRESS_ENV)}
    # the kernel inherits these: results_path() reads SEMALIGN_NOTEBOOK, read_results() the
    # published results folders, the execution cache the read log; no progress bars in pages
    os.environ.pop(progress.PROGRESS_ENV, None)
    os.environ.update(kernel_env)
    shown = (progress.monitor(channel, prefix=progress_prefix, stream=progress_stream)
             if progress_prefix is not None else contextlib.nullcontext())
    try:
        with shown:
            papermill.execute_notebook(
                str(tmp_in), str(tmp_out), parameters=params, kernel_name="python3",
                cwd=str(cwd), progress_bar=False, log_output=log,
            )
    except papermill.PapermillExecutionError as e:
        raise _KernelFailed(f" in cell {e.exec_count}", f"{e.ename}: {_one_line(e.evalue)}") from None
    except kernel_errors as e:  # the kernel itself died (out of memory?), timed out or is missing
        hint = ' (is ipykernel installed? pip install -e ".[book]")' if isinstance(e, NoSuchKernel) else ""
        raise _KernelFailed("", f"{type(e).__name__}: {_one_line(e)}{hint}") from None
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- notebook helpers
def results_path(stem: str | None = None, results_dir: str | os.PathLike = "results") -> Path:
    """Where :func:`write_results` writes: ``results/<stem>.csv`` relative to the working directory.

    In a notebook run by :func:`run_notebook` that is the run's staging folder; the file is
    published to ``<output_dir>/results/`` only if the whole notebook succeeds.
    """
    stem = stem or os.environ.get("SEMALIGN_NOTEBOOK") or "notebook"
    return Path(results_dir) / f"{stem}.csv"


def write_results(frame, stem: str | None = None, results_dir: str | os.PathLike = "results") -> Path:
    """Write a tidy results frame to ``results/<stem>.csv`` atomically; return the path."""
    path = results_path(stem, results_dir)
    atomic_write_text(path, frame.to_csv(index=False))
    return path


def read_results(stem: str, results_dir: str | os.PathLike | None = None):
    """Read a notebook's results; a clear error if that notebook has not run yet.

    Without ``results_dir``: this run's own ``results/<stem>.csv`` (working directory) if it
    wrote one, else the first published one in ``$SEMALIGN_RESULTS_DIR`` (set by :func:`run`
    for its kernel: the output folder's ``results/``, then a sweep's fallbacks). A read of
    another notebook's published results (or of ``results_dir``) is recorded for the execution
    cache by its sha256 (:func:`semalign.cache.record_read`): when those results change, this
    notebook is executed again.
    """
    import io

    import pandas as pd

    from semalign.cache import record_read

    if results_dir is not None:
        folders = [Path(results_dir)]
    else:
        folders = [Path("results")]
        folders += [Path(p) for p in os.environ.get(RESULTS_ENV, "").split(os.pathsep) if p]
    for i, folder in enumerate(folders):
        path = folder / f"{stem}.csv"
        if path.is_file():
            data = path.read_bytes()  # what is hashed is what is parsed
            sha = hashlib.sha256(data).hexdigest()
            if results_dir is not None:
                record_read({"kind": "file", "path": str(path.resolve()), "sha256": sha})
            elif i > 0:  # not this run's own staged results
                record_read({"kind": "results", "stem": stem, "sha256": sha})
            return pd.read_csv(io.BytesIO(data))
    raise BookError(f"{folders[-1] / f'{stem}.csv'} is missing: run notebook {stem} first (`semalign run {stem}`)")


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
    exe = shutil.which("jupyter-book")
    _require_installed("vl_convert", *(() if exe else ("jupyter_book",)))
    write_vega_bundle(root)
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
    """``semalign run NOTEBOOK [--profile P] [-p name value …] [--name NAME] [--output-dir D] [--force]``.

    Without ``-p``/``--name`` (or with ``--output-dir``): the book's own run, into
    ``book/generated`` (or ``D``); prints the executed notebook's path. With ``-p`` or
    ``--name`` and no ``--output-dir``: a sweep into its own run folder
    (:func:`semalign.runs.sweep`). Either way the execution cache reuses an unchanged run
    unless ``--force``. A :class:`BookError` propagates to :func:`semalign.cli.main`, which
    prints it as one line and exits 2.
    """
    overrides = parse_overrides(args.parameter)
    if getattr(args, "name", None) and getattr(args, "output_dir", None) is not None:
        raise BookError("give --name (a run folder under runs/) or --output-dir (any folder), not both")
    if getattr(args, "output_dir", None) is None and (overrides or getattr(args, "name", None)):
        from semalign.runs import cli_sweep

        return cli_sweep(args, overrides)
    o = run(args.notebook, args.profile, overrides, args.output_dir, force=getattr(args, "force", False),
            say=lambda line: print(f"[semalign run] {line}", flush=True), progress_prefix="[semalign run]   ")
    print(o.notebook)
    return 0


def _book_say(line: str) -> None:
    print(f"[semalign book] {line}", flush=True)


def cli_book(args: argparse.Namespace) -> int:
    """``semalign book [--profile P] [-p name value …] [--only STEM …] [--no-build] [--force]``.

    Everything that can be checked is checked before the first notebook runs (the book extra,
    the profile, every ``-p`` against every notebook, the output folder), so a typo costs
    seconds, not a half-executed book. Each notebook is reused from the execution cache when
    nothing it depends on changed (``--force``: execute them all); the terminal shows each
    notebook and each long loop inside it. Errors propagate to :func:`semalign.cli.main`.
    """
    require_book_extra()
    _require_installed("ipykernel")
    if not args.no_build and not shutil.which("jupyter-book"):
        _require_installed("jupyter_book", "vl_convert")
    root = repo_root()
    prof = load_profile(args.profile)
    overrides = parse_overrides(args.parameter)
    # the summary reads the other notebooks' results (06_beyond's too): it runs last
    nbs = sorted(list_notebooks(root), key=lambda p: p.stem.endswith("_summary"))
    if args.only:
        nbs = [resolve_notebook(s, root) for s in args.only]
    declared_any: set[str] = set()
    for src in nbs:
        nb = _to_ipynb(src)
        declared_any |= declared_parameters(nb)
        check_overrides(nb, src.stem, overrides, strict=False)
    unknown = sorted(set(overrides) - declared_any)
    if unknown:
        raise BookError(f"no notebook has a parameter {', '.join(unknown)}")
    out_dir = _output_folder(root / "book" / "generated")
    force = getattr(args, "force", False)
    for src in nbs:
        t0 = time.perf_counter()
        print(f"[semalign book] {src.stem} (profile {prof['name']}) …", flush=True)
        done = run(src, prof, overrides, out_dir, strict=False, force=force, say=_book_say,
                   progress_prefix="[semalign book]   ", progress_stream=sys.stdout)
        if not done.reused:
            print(f"[semalign book] {src.stem} done in {time.perf_counter() - t0:.1f} s", flush=True)
    if not args.no_build:
        index = build_book(root)
        print(index)
    return 0


def paper_table1_strings() -> list[str]:
    """The paper's Table 1 numbers as the book renders them (for the browser test)."""
    from semalign.report.table1 import PAPER_TABLE1, paper_strings

    return paper_strings(PAPER_TABLE1)
