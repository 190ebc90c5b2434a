"""Datasets, subset recipes and tasks.

>>> from semalign.data import load_dataset, get_task, get_pairs
>>> df = load_dataset("openi-reports")      # id, text, findings, impression, MeSH, labels, split
>>> task = get_task("openi-5class")         # Task(name, modality, classes, train, test, anchors, ...)
>>> task.dataset, task.finding, task.publishable
('openi-reports-offline', None, True)
>>> pairs = get_pairs("synthcxr-pairs", n=500, seed=0)   # id, image, text

Manifests (``data_manifests/*.yml``) describe each dataset; ``semalign data check`` compares
the user's local copies with them. The offline datasets need nothing: the Open-i reports are
read in place from a registry asset and SynthCXR is generated. Nothing here imports a model.

Layout. The shared core: :mod:`.registry` (the :class:`Task` record and the one registration
mechanism: ``@dataset``, ``@task``, ``@pairs``), :mod:`.manifests` (manifests and the check of
local copies), :mod:`.local` (tables and seeded draws of local copies), :mod:`.errors`. The
format readers :mod:`.openi` (the Open-i XML archive) and :mod:`.synthcxr` (the procedural
generator). One module per source in :mod:`.sources` (Open-i, SynthCXR, MIMIC-CXR, RSNA,
VinDr-CXR, IU X-ray) declares its datasets, tasks and pairs; importing this package imports
them once. **To add a new offline task**: a manifest + one source module + a profile line —
the exact recipe is in :mod:`semalign.data.sources`.
"""

from __future__ import annotations

import sys

from semalign.data.errors import DataError
from semalign.data.registry import (
    Task,
    discover,
    get_pairs,
    get_task,
    list_datasets,
    list_pairs,
    list_tasks,
    load_dataset,
    task_spec,
)

__all__ = ["DataError", "Task", "get_pairs", "get_task", "list_datasets", "list_pairs", "list_tasks",
           "load_dataset", "task_spec", "cli"]


def cli(args) -> int:
    """``semalign data check [NAME ...]`` and ``semalign data ls``."""
    from semalign.data.manifests import check, manifests

    try:
        ms = manifests()
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = args.names or sorted(ms)
    unknown = [n for n in names if n not in ms]
    if unknown:
        print(f"error: unknown dataset(s) {unknown}; known: {', '.join(sorted(ms))}", file=sys.stderr)
        return 2
    if args.action == "ls":
        for n in names:
            m = ms[n]
            print(f"{n:24s} {m['access']:12s} {m['licence'][:40]:40s} {m['homepage']}")
        return 0
    worst = 0
    for n in names:
        r = check(n)
        m = ms[n]
        print(f"{n}  [{m['access']}]  {r['state'].upper()}" + (f"  ({r['folder']})" if r["folder"] else ""))
        for s in r["files"]:
            print(f"    {s.status:28s} {s.path}" + (f"  — {s.detail}" if s.detail else ""))
        if r["state"] != "ready":
            print(f"    next step: {r['next_step']}")
        if r["state"] == "damaged":
            worst = 1
    return worst


discover()  # every source module registers its datasets, tasks and pairs (semalign.data.sources)
