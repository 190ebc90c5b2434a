"""Named runs: a notebook executed with other parameters into a folder of its own, and the
comparison of two runs.

.. code-block:: bash

    semalign run 02_transforms -p anchor_counts "[10, 100]" -p runs 5 [--name NAME]
    semalign runs                          # what is in the runs folder
    semalign compare book NAME             # the book's own results against the sweep's

A *sweep* (:func:`sweep`: ``semalign run`` with ``-p`` or ``--name`` and no ``--output-dir``)
writes to ``<runs root>/<NAME>/`` — ``<stem>.ipynb``, ``results/<stem>.csv`` and ``run.json``
(what ran, with which parameters, when) — never into ``book/generated/``. Without ``--name``
the folder is ``<stem>-<8 hex of the profile and the overrides>``, so the same sweep lands in the
same folder (and is reused from the execution cache). The runs root is ``$SEMALIGN_RUNS``, or
``runs/`` in the repository. A notebook of a sweep that reads another notebook's results
(``05_summary``) reads the run folder's first, then the book's: run ``02`` then ``05`` with the
same ``--name`` to see the summary of a sweep.

:func:`compare` takes two runs — a name in the runs root, a folder, or ``book`` (the book's own
``book/generated/``) — and prints the parameters that differ (from papermill's record in each
executed notebook) and, for every results file both hold, the mean of each measure grouped by
the results' grouping columns, side by side with the difference B − A. Measures are the
float columns (and integer columns with many values, such as counts); grouping columns are the
others with few values, except ``run``, ``seed``, ``profile`` and the per-encoder-pair columns
(``source*``, ``target*``), which are averaged over — as the paper's Fig. 3 averages over
pairs and runs. ``--by`` chooses the grouping columns.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from semalign._io import atomic_write_text, file_lock
from semalign.book import BookError, load_profile, repo_root, resolve_notebook, run
from semalign.runcache import canonical, digest

#: The environment variable that moves the runs root (default: ``runs/`` in the repository).
RUNS_ENV = "SEMALIGN_RUNS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
#: Columns never grouped by: averaged over (runs, encoder pairs) or constant by construction.
_AVERAGED = ("run", "seed", "profile")
_PAIR = re.compile(r"^(source|target)(_|$)")
#: A column with at most this many values is a grouping column (unless it is a float).
MAX_GROUP_VALUES = 12
#: Rows shown per results file (the largest differences first when there are more).
MAX_ROWS = 200


def runs_root() -> Path:
    d = os.environ.get(RUNS_ENV)
    return Path(d).expanduser().resolve() if d else repo_root() / "runs"


def book_folder() -> Path:
    return repo_root() / "book" / "generated"


def sweep_name(stem: str, profile_name: str, overrides: dict[str, Any]) -> str:
    """``<stem>-<8 hex>`` of the profile name and the overrides: one folder per distinct sweep."""
    return f"{stem}-{digest({'profile': profile_name, 'overrides': overrides})[:8]}"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise BookError(f"--name {name!r}: a run name is 1–100 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    return name


def sweep(notebook: str, profile: str | dict = "offline", overrides: dict[str, Any] | None = None, *,
          name: str | None = None, force: bool = False, say: Callable[[str], None] | None = None,
          progress_prefix: str | None = "") -> dict[str, Any]:
    """Run ``notebook`` with ``overrides`` into its run folder; returns its ``run.json`` entry
    (``folder``, ``notebook``, ``results``, ``parameters``, ``overrides``, ``key``, ``reused`` …).

    Every ``-p`` is checked against the notebook before anything is created (an unknown name
    is one :class:`BookError` listing the notebook's parameters).
    """
    from semalign.book import _output_folder, _to_ipynb, check_overrides

    overrides = dict(overrides or {})
    src = resolve_notebook(notebook) if not Path(notebook).is_file() else Path(notebook).resolve()
    prof = profile if isinstance(profile, dict) else load_profile(profile)
    check_overrides(_to_ipynb(src), src.stem, overrides, strict=True)
    name = check_name(name) if name else sweep_name(src.stem, prof["name"], overrides)
    folder = _output_folder(runs_root() / name)
    o = run(src, prof, overrides, folder, force=force, results_from=[book_folder() / "results"], say=say,
            progress_prefix=progress_prefix)
    entry = {"overrides": overrides, "parameters": o.parameters, "key": o.key, "reused": o.reused,
             "executed": o.executed, "seconds": round(o.seconds, 3),
             "results": [p.name for p in o.results], "profile": prof["name"]}
    with file_lock(folder / ".run.lock"):
        rec = _load_run(folder) or {"name": name, "created": time.strftime("%Y-%m-%d %H:%M"), "notebooks": {}}
        rec["notebooks"][src.stem] = entry
        rec["updated"] = time.strftime("%Y-%m-%d %H:%M")
        atomic_write_text(folder / "run.json", json.dumps(rec, indent=1, sort_keys=True, default=str))
    return {**entry, "name": name, "folder": folder, "notebook": o.notebook, "result_paths": o.results}


def _load_run(folder: Path) -> dict | None:
    try:
        rec = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("notebooks"), dict) else None


def list_runs() -> list[dict[str, Any]]:
    """One dict per run folder in the runs root: ``name``, ``folder``, ``updated`` and
    ``notebooks`` (``{stem: overrides}``, None for a folder without ``run.json``)."""
    root = runs_root()
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        rec = _load_run(folder) or {}
        nbs = {s: (e or {}).get("overrides", {}) for s, e in (rec.get("notebooks") or {}).items()}
        if not nbs:  # a folder without run.json: its executed notebooks
            nbs = {p.stem: None for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}
        out.append({"name": folder.name, "folder": folder, "updated": rec.get("updated", ""), "notebooks": nbs})
    return out


# --------------------------------------------------------------------------- compare
def run_folder(ref: str) -> Path:
    """``book``, a run name in the runs root, or a folder holding executed notebooks."""
    if ref == "book":
        return book_folder()
    for cand in (runs_root() / ref, Path(ref).expanduser()):
        if cand.is_dir() and (any(cand.glob("*.ipynb")) or (cand / "results").is_dir()):
            return cand.resolve()
    known = ", ".join(r["name"] for r in list_runs()) or "none yet"
    raise BookError(f"no run {ref!r}: give 'book', a folder, or a run in {runs_root()} ({known}); "
                    "`semalign runs` lists them")


def folder_parameters(folder: Path) -> dict[str, dict[str, Any]]:
    """``{stem: parameters}`` of each executed notebook in ``folder`` (papermill's record)."""
    out = {}
    for p in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        if p.name.endswith(".failed.ipynb"):
            continue
        try:
            meta = json.loads(p.read_text(encoding="utf-8")).get("metadata", {})
            out[p.stem] = dict(meta.get("papermill", {}).get("parameters") or {})
        except (OSError, ValueError, AttributeError):
            out[p.stem] = {}
    return out


def _measures_and_groups(frames: Sequence, by: Sequence[str] | None) -> tuple[list[str], list[str]]:
    import pandas as pd

    both = pd.concat(frames, ignore_index=True)
    measures, groups = [], []
    for c in both.columns:
        col = both[c]
        many = col.nunique(dropna=True) > MAX_GROUP_VALUES
        if pd.api.types.is_float_dtype(col) or (pd.api.types.is_integer_dtype(col) and many
                                                and not pd.api.types.is_bool_dtype(col)):
            measures.append(c)
        elif not many and c not in _AVERAGED and not _PAIR.match(str(c)) \
                and not all(f[c].nunique(dropna=False) <= 1 for f in frames if c in f):
            groups.append(c)
    if by:
        unknown = [c for c in by if c not in both.columns]
        if unknown:
            raise BookError(f"--by {', '.join(unknown)}: not a column of these results "
                            f"(columns: {', '.join(map(str, both.columns))})")
        groups = list(by)
        measures = [m for m in measures if m not in groups]
    return measures, groups


def compare_results(a, b, by: Sequence[str] | None = None):
    """The mean of each measure of results frames ``a`` and ``b`` by their grouping columns:
    a frame with, per measure, ``<m> A``, ``<m> B`` and ``<m> B-A``, plus ``n A`` / ``n B`` (rows
    averaged), and the grouping columns used."""
    import pandas as pd

    measures, groups = _measures_and_groups([a, b], by)
    if not measures:
        return pd.DataFrame(), groups
    def agg(f):
        present = [g for g in groups if g in f.columns]
        if len(present) < len(groups):
            f = f.assign(**{g: "-" for g in groups if g not in f.columns})
        keyed = f.groupby(groups, dropna=False) if groups else f.assign(_all="all").groupby("_all")
        out = keyed[[m for m in measures if m in f.columns]].mean()
        out["n"] = keyed.size()
        return out
    ma, mb = agg(a), agg(b)
    table = ma.add_suffix(" A").join(mb.add_suffix(" B"), how="outer")
    cols = []
    for m in measures:
        if f"{m} A" in table and f"{m} B" in table:
            table[f"{m} B-A"] = table[f"{m} B"] - table[f"{m} A"]
            cols += [f"{m} A", f"{m} B", f"{m} B-A"]
    table = table[cols + ["n A", "n B"]]
    table[["n A", "n B"]] = table[["n A", "n B"]].astype("Int64")  # a group missing on one side: <NA>
    return table, groups


def compare(ref_a: str, ref_b: str, *, by: Sequence[str] | None = None,
            notebooks: Sequence[str] | None = None) -> str:
    """The text :func:`cli_compare` prints (see the module docstring)."""
    import pandas as pd

    fa, fb = run_folder(ref_a), run_folder(ref_b)
    pa, pb = folder_parameters(fa), folder_parameters(fb)
    wanted = set(notebooks or [])
    lines = [f"A = {ref_a} ({fa})", f"B = {ref_b} ({fb})", ""]
    shared = sorted(s for s in set(pa) & set(pb) if not wanted or s in wanted)
    diffs = []
    for stem in shared:
        for k in sorted(set(pa[stem]) | set(pb[stem])):
            # a name papermill did not inject ran with the notebook's own default
            va, vb = (canonical(p[stem][k]) if k in p[stem] else "(default)" for p in (pa, pb))
            if va != vb:
                diffs.append((stem, k, va, vb))
    if diffs:
        w = max(len(f"{s}.{k}") for s, k, _, _ in diffs)
        lines.append("parameters that differ:")
        lines += [f"  {s + '.' + k:{w}s}  A {va}  B {vb}" for s, k, va, vb in diffs]
    elif shared:
        lines.append(f"parameters: the same for {', '.join(shared)}")
    for only, who in ((sorted(set(pa) - set(pb)), "A"), (sorted(set(pb) - set(pa)), "B")):
        only = [s for s in only if not wanted or s in wanted]
        if only:
            lines.append(f"only in {who}: {', '.join(only)}")
    names = sorted({p.name for p in (fa / "results").glob("*.csv")} & {p.name for p in (fb / "results").glob("*.csv")})
    names = [n for n in names if not wanted or n[:-4] in wanted]
    if not names:
        lines.append("\nno results file is in both runs")
    for name in names:
        a, b = pd.read_csv(fa / "results" / name), pd.read_csv(fb / "results" / name)
        table, groups = compare_results(a, b, by)
        lines.append("")
        if table.empty:
            lines.append(f"{name}: no numeric measure to compare")
            continue
        lines.append(f"{name}: mean by {', '.join(map(str, groups)) or '(all rows)'}; "
                     f"rows averaged: n A, n B")
        shown = table
        if len(table) > MAX_ROWS:
            delta = table[[c for c in table.columns if c.endswith("B-A")]].abs().max(axis=1)
            shown = table.loc[delta.sort_values(ascending=False, na_position="first").index[:MAX_ROWS]]
            lines.append(f"({len(table)} groups; the {MAX_ROWS} with the largest differences; narrow with --by)")
        lines.append(shown.to_string(float_format=lambda x: f"{x:.4f}", na_rep="-"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands
def cli_runs(args: argparse.Namespace) -> int:
    """``semalign runs``: the runs folder, one line per run."""
    found = list_runs()
    if not found:
        print(f"no runs in {runs_root()} (make one: semalign run 02_transforms -p runs 1)")
        return 0
    w = max(len("name"), *(len(r["name"]) for r in found))
    print(f"{'name':{w}s}  {'updated':16s}  notebooks (overrides)")
    for r in found:
        nbs = "; ".join(f"{s} ({', '.join(f'{k}={canonical(v)}' for k, v in sorted(o.items())) or 'profile values'})"
                        if o is not None else s for s, o in r["notebooks"].items())
        print(f"{r['name']:{w}s}  {r['updated'] or '?':16s}  {nbs}")
    print(f"({len(found)} runs in {runs_root()}; compare two with `semalign compare A B`, 'book' is the book's own)")
    return 0


def cli_compare(args: argparse.Namespace) -> int:
    """``semalign compare A B [--by COL,COL] [--notebook STEM …]``."""
    by = [c.strip() for c in (args.by or "").split(",") if c.strip()] or None
    print(compare(args.a, args.b, by=by, notebooks=args.notebook))
    return 0


def cli_sweep(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """The sweep half of ``semalign run``: prints where the notebook and the results went."""
    info = sweep(args.notebook, args.profile, overrides, name=getattr(args, "name", None),
                 force=getattr(args, "force", False),
                 say=lambda line: print(f"[semalign run] {line}", flush=True), progress_prefix="[semalign run]   ")
    print(f"run:      {info['name']} ({info['folder']})")
    print(f"notebook: {info['notebook']}")
    for p in info["result_paths"]:
        print(f"results:  {p}")
    print(f"compare:  semalign compare book {info['name']}")
    return 0


__all__ = ["RUNS_ENV", "runs_root", "sweep", "sweep_name", "list_runs", "run_folder", "folder_parameters",
           "compare", "compare_results", "cli_runs", "cli_compare", "cli_sweep"]
