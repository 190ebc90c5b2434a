"""The one registry of :mod:`semalign.data`: datasets, tasks and image–report pair pools.

A *source module* (one per data source, in :mod:`semalign.data.sources`) declares what it
offers with one call each, and nothing else in the package names it::

    from semalign.data.registry import Task, dataset, pairs, task
    from semalign.vocab import Modality

    @dataset("toy", manifest="toy")                  # load_dataset("toy", **params)
    def load(n: int = 10) -> pd.DataFrame: ...

    @task("toy-binary", dataset="toy", modality=Modality.TEXT, finding=None, positive=1)
    def toy_binary(seed: int = 0) -> Task: ...      # get_task("toy-binary", seed=...)

    @pairs("toy-pairs", dataset="toy")               # get_pairs("toy-pairs", n, seed)
    def toy_pairs(n: int = 100, seed: int = 0) -> pd.DataFrame: ...

``dataset=`` of a task or pair pool is the *manifest* name (``data_manifests/<name>.yml``, what
``semalign data check`` shows): the task's :attr:`Task.dataset`, and its
:attr:`Task.publishable` comes from that manifest's ``access``. A builder returns a
:class:`Task`; :func:`get_task` stamps the declared ``dataset``, ``finding``, ``positive`` and
``publishable`` on it, so a builder never repeats them.

Lookups (:func:`load_dataset`, :func:`get_task`, :func:`get_pairs`, the ``list_*`` functions
and :func:`task_spec`) see every source once :mod:`semalign.data` is imported: its
``__init__`` imports the sources package once (:func:`discover`). This module imports no source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

import pandas as pd

from semalign.data.errors import DataError
from semalign.data.manifests import get_manifest, register_check
from semalign.vocab import Finding, Modality, finding as as_finding

__all__ = [
    "Task", "Spec", "TaskSpec", "recipe_key",
    "dataset", "task", "pairs", "discover",
    "list_datasets", "load_dataset", "list_tasks", "task_spec", "get_task", "list_pairs", "get_pairs",
]

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- the task record
@dataclass
class Task:
    """A classification task.

    train / test: DataFrames with columns ``id`` (str), ``input`` (str for text, uint8 (H, W)
    array or image path for images) and ``label`` (a member of ``classes``); anchors: DataFrame
    ``id, input`` — the pool anchors are drawn from, disjoint from test. ``dataset_key`` names
    the exact recipe (name + hash of its parameters) for the embedding cache.

    Declared by the task's registration (:func:`task`) and set by :func:`get_task`:
    ``dataset`` — the manifest name of the data it is built from (``"synthcxr"``,
    ``"mimic-cxr"``, ...); ``finding`` — the :class:`~semalign.vocab.Finding` a binary finding
    task is about (``None`` for a multi-class task); ``positive`` — the class of ``classes`` that
    means "finding present" (``None`` when not binary); ``publishable`` — may the book show
    per-sample derived values (one point per sample's embedding; never its text or pixels)?
    False for data under a credentialed access (the manifest's ``access``). ``shared_pool_keys``:
    ``{id family: cache key}`` for anchor rows generated once and shared by several tasks (a
    family is an id without its trailing digits, e.g. ``"synthpool-3-"``); other rows are keyed
    by ``dataset_key``. ``shared_pools``: ``{id family: DataFrame id, input}``, every row of a
    shared family when the task holds only some of them (the SynthCXR tasks each draw their test
    and train rows from one shared pool): the whole family is embedded, under its shared key, and
    the task's rows are picked from it, so every task hits one cache entry.
    """

    name: str
    modality: Modality
    classes: list
    train: pd.DataFrame
    test: pd.DataFrame
    anchors: pd.DataFrame
    dataset_key: str
    description: str = ""
    recipe: dict = field(default_factory=dict)
    dataset: str = ""
    finding: Finding | None = None
    positive: Any | None = None
    publishable: bool = False
    shared_pool_keys: dict[str, str] = field(default_factory=dict)
    shared_pools: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.modality = Modality.parse(self.modality)

    def summary(self) -> pd.DataFrame:
        """Counts per split and class (aggregates only: safe to publish)."""
        rows = []
        for split in ("train", "test"):
            vc = getattr(self, split)["label"].value_counts()
            rows += [{"split": split, "label": c, "count": int(vc.get(c, 0))} for c in self.classes]
        rows.append({"split": "anchors", "label": "(unlabelled)", "count": len(self.anchors)})
        return pd.DataFrame(rows)


def recipe_key(name: str, recipe: dict) -> str:
    """``name@<12 hex>`` from the recipe's parameters (and the generator/parser version)."""
    h = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{name}@{h}"


# --------------------------------------------------------------------------- registrations
@dataclass(frozen=True)
class Spec:
    """A registration: ``name``, ``dataset`` (the manifest name of its data), the function
    ``build`` that makes it and the ``module`` that registered it. A dataset or a pair pool is a
    plain Spec: ``build(**params) -> DataFrame``."""

    name: str
    dataset: str
    build: Callable[..., Any]
    module: str


@dataclass(frozen=True)
class TaskSpec(Spec):
    """A registered task: what :func:`get_task` builds (``build(**params) -> Task``), and what is
    known without building it."""

    modality: Modality
    finding: Finding | None
    positive: Any | None

    @property
    def publishable(self) -> bool:
        """False when the task's dataset is credentialed (its manifest's ``access``)."""
        return _manifest_of(self.name, self.dataset)["access"] != "credentialed"


_DATASETS: dict[str, Spec] = {}
_TASKS: dict[str, TaskSpec] = {}
_PAIRS: dict[str, Spec] = {}


def _module_of(fn: Callable) -> str:
    inner = getattr(fn, "func", fn)  # functools.partial
    return getattr(inner, "__module__", "?")


def _add(table: dict, kind: str, spec: Any) -> None:
    old = table.get(spec.name)
    # re-registering from the same module (a reload) replaces; two modules claiming a name is a bug
    if old is not None and old.module != spec.module:
        raise DataError(f"{kind} {spec.name!r} is registered twice: by {old.module} and by {spec.module}; "
                        f"rename one of them")
    table[spec.name] = spec


def dataset(name: str, *, manifest: str | None = None,
            check: Callable[[dict, bool], dict] | None = None) -> Callable[[F], F]:
    """Decorator: register ``fn(**params) -> DataFrame`` as dataset ``name`` of :func:`load_dataset`.

    ``manifest``: its ``data_manifests/`` name (default ``name``). ``check``: for a bundled or
    generated dataset only, ``check(manifest, verify) -> {"folder", "files", "state",
    "next_step"}`` — what ``semalign data check`` reports for it (default: ready).
    """

    def deco(fn: F) -> F:
        spec = Spec(name, manifest or name, fn, _module_of(fn))
        _add(_DATASETS, "dataset", spec)
        if check is not None:
            register_check(spec.dataset, check)
        return fn

    return deco


def task(name: str, *, dataset: str, modality: Modality | str, finding: Finding | str | None = None,
         positive: Any | None = None) -> Callable[[F], F]:
    """Decorator: register ``fn(**params) -> Task`` as task ``name`` of :func:`get_task`.

    ``dataset``: the manifest name of its data; ``modality``: a :class:`~semalign.vocab.Modality`
    (or its word); ``finding``: the :class:`~semalign.vocab.Finding` (or its name) of a binary
    finding task; ``positive``: the class that means "finding present".
    """
    spec_finding = None if finding is None else as_finding(finding)
    spec_modality = Modality.parse(modality)

    def deco(fn: F) -> F:
        _add(_TASKS, "task", TaskSpec(name, dataset, fn, _module_of(fn), spec_modality, spec_finding, positive))
        return fn

    return deco


def pairs(name: str, *, dataset: str) -> Callable[[F], F]:
    """Decorator: register ``fn(n, seed, **params) -> DataFrame`` (``id, image, text`` with
    ``attrs["dataset_key"]``) as pair pool ``name`` of :func:`get_pairs`."""

    def deco(fn: F) -> F:
        _add(_PAIRS, "pairs", Spec(name, dataset, fn, _module_of(fn)))
        return fn

    return deco


def discover(package: str = "semalign.data.sources") -> None:
    """Import every module of ``package`` once, so that their registrations run.

    A new source is a new module in that package: no list names it.
    """
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__, package + "."):
        importlib.import_module(info.name)


# --------------------------------------------------------------------------- lookups
def _manifest_of(what: str, name: str) -> dict:
    try:
        return get_manifest(name)
    except DataError as e:
        raise DataError(f"{what} is declared on dataset {name!r}, which has no manifest: add "
                        f"data_manifests/{name}.yml (or fix the task's dataset=). {e}") from None


def _call(kind: str, name: str, fn: Callable, params: Mapping[str, Any]) -> Any:
    """``fn(**params)``; a parameter ``fn`` does not take is one DataError naming those it takes."""
    try:
        inspect.signature(fn).bind(**params)
    except TypeError:
        sig = inspect.signature(fn)
        takes = [p for p in sig.parameters if sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]
        bad = sorted(set(params) - set(takes))
        raise DataError(f"{kind} {name!r} has no parameter(s) {bad}; it takes: {', '.join(takes) or 'none'}") from None
    return fn(**params)


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_DATASETS)


def load_dataset(name: str, **params: Any) -> pd.DataFrame:
    """A dataset as records: ``id``, ``text`` and/or ``image``, label columns, ``split``.

    ``params`` go to the dataset's loader (see its source module, e.g. ``path=`` for a local
    copy, ``n``/``seed``/``size`` for SynthCXR).
    """
    if name not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())} "
                        f"(tasks are built with get_task: {', '.join(list_tasks())})")
    return _call("dataset", name, _DATASETS[name].build, params)


def list_tasks() -> list[str]:
    """Names accepted by :func:`get_task`."""
    return sorted(_TASKS)


def task_spec(name: str) -> TaskSpec:
    """What is declared about task ``name`` (dataset, modality, finding, positive), without
    building it."""
    if name not in _TASKS:
        raise DataError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    return _TASKS[name]


def get_task(name: str, **params: Any) -> Task:
    """Build task ``name`` (see :func:`list_tasks`); ``params`` override its recipe defaults."""
    spec = task_spec(name)
    t = _call("task", name, spec.build, params)
    if t.name != name or t.modality is not spec.modality:
        raise DataError(f"task {name!r} ({spec.module}) built a Task named {t.name!r} of modality "
                        f"{t.modality!r}, but is registered as {name!r} ({spec.modality!r}): fix its builder")
    return dataclasses.replace(t, dataset=spec.dataset, finding=spec.finding, positive=spec.positive,
                               publishable=spec.publishable)


def list_pairs() -> list[str]:
    """Names accepted by :func:`get_pairs`."""
    return sorted(_PAIRS)


def get_pairs(name: str = "synthcxr-pairs", n: int = 2000, seed: int = 0, **params: Any) -> pd.DataFrame:
    """Image–report pairs (the paper's MIMIC-CXR role in the zero-shot experiment).

    Returns a DataFrame ``id, image, text`` (image: uint8 (H, W) array or a file path) with
    ``df.attrs["dataset_key"]`` for the embedding cache. Names: :func:`list_pairs`
    (``synthcxr-pairs`` offline; ``mimic-cxr-pairs``, ``iu-xray-pairs`` from local copies).
    """
    if name not in _PAIRS:
        raise DataError(f"unknown pairs {name!r}; known: {', '.join(list_pairs())}")
    return _call("pairs", name, _PAIRS[name].build, {"n": n, "seed": seed, **params})
