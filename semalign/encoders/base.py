"""The encoder registry and the embedding engine shared by every encoder kind.

An *encoder* turns a list of inputs (texts, or images given as paths / uint8 arrays) into a
float32 matrix ``(n, dim)``. Every encoder is an :class:`Encoder` subclass built from a
*spec* (a dict from a registry YAML file) by a *kind* builder::

    # semalign/encoders/registry_mine.yml
    module: semalign.encoders.mine          # imported only when one of its encoders is built
    encoders:
      my-encoder: {kind: my-kind, modality: text, domain: general, dim: 64}

    # semalign/encoders/mine.py
    from semalign.encoders import Encoder, register_kind

    class MyEncoder(Encoder):
        def _embed_batch(self, batch):      # list of inputs -> (len(batch), dim) array or tensor
            ...

    @register_kind("my-kind")
    def build(spec: dict, device: str) -> Encoder:
        return MyEncoder.from_spec(spec, device=device)

Where specs come from, in order (a later source overrides an earlier one by name):
every ``semalign/encoders/registry*.yml`` shipped with the package, the YAML files named in
``SEMALIGN_ENCODERS`` (``os.pathsep``-separated), and :func:`register_encoder` calls.

The engine (:meth:`Encoder.embed`) is written once here: validation, batching (texts sorted by
length so a batch pads to similar lengths; the original order is restored), ``torch.inference_mode``,
batch-size halving on out-of-memory, a tqdm progress bar, float32 output.
"""

from __future__ import annotations

from semalign.errors import SemalignError

import copy
import importlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import yaml

from semalign.vocab import Domain, Modality

#: The domain of the two towers of a CLIP-style model (the Fig. 4 baselines): neither general
#: nor medical in Table 1's sense, so not a :class:`~semalign.vocab.Domain`.
MULTIMODAL = "multimodal"
#: The words a registry entry may use (exported for compatibility; parse with
#: :func:`parse_modality` / :func:`parse_domain`).
MODALITIES: tuple[str, ...] = tuple(m.value for m in Modality)
DOMAINS: tuple[str, ...] = (*(d.value for d in Domain), MULTIMODAL)

# Kinds implemented by this package's own modules: a user YAML may use them without `module:`.
BUILTIN_KIND_MODULES = {
    "hf": "semalign.encoders.hf",
    "wordllama": "semalign.encoders.static",
    "cnn": "semalign.encoders.cnn",
}

_KINDS: dict[str, Callable[[dict, str], "Encoder"]] = {}
_USER_SPECS: dict[str, dict] = {}

# A hub id: "org/name" with the characters the hub allows.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# A registry name is a plain name: it becomes a folder name (embedding cache) and a CLI word.
_BAD_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")

HOW_TO_ADD = (
    "To add an encoder: write a YAML file `encoders: {NAME: {kind: hf, id: ORG/MODEL, modality: "
    "text, domain: general, pooling: mean}}` and point SEMALIGN_ENCODERS at it, or call "
    "semalign.encoders.register_encoder(NAME, spec) in Python; a hub id (org/name) or a local "
    "model folder also works directly."
)


class EncoderError(SemalignError, RuntimeError):
    """An encoder cannot be found, loaded or used; the message says what to do."""


def parse_modality(value: Any, where: str = "encoder") -> Modality:
    """The :class:`~semalign.vocab.Modality` of a registry entry's ``modality:``, or one
    EncoderError naming ``where`` and the words allowed."""
    try:
        return Modality.parse(value)
    except ValueError as e:
        raise EncoderError(f"{where}: {e}") from None


def parse_domain(value: Any, where: str = "encoder") -> Domain | str:
    """The :class:`~semalign.vocab.Domain` of a registry entry's ``domain:`` (or
    :data:`MULTIMODAL`), or one EncoderError naming ``where`` and the words allowed."""
    if value == MULTIMODAL:
        return MULTIMODAL
    try:
        return Domain.parse(value)
    except ValueError:
        raise EncoderError(f"{where}: unknown domain {value!r}: use one of "
                           f"{', '.join(map(repr, DOMAINS))}") from None


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def _name_problem(name: Any, *, registry: bool) -> str | None:
    """Why ``name`` cannot name an encoder (None when it can).

    Every encoder name must hold a letter or digit and no control character, and no
    ``/``-separated part of it may be ``.`` or ``..``: names become folder names (the cache
    maps other characters to ``_``), so ``..`` or ``../x`` would escape their folder.
    ``registry=True`` (names in a registry YAML or :func:`register_encoder`) also forbids
    ``/`` and ``\\`` altogether: a hub id (``org/name``) goes in the entry's ``id:``.
    """
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not re.search(r"[A-Za-z0-9]", name):
        return "it holds no letter or digit"
    if re.search(r"[\x00-\x1f\x7f]", name):
        return "it holds a control character"
    if registry and _BAD_NAME_CHARS.search(name):
        return "it holds a path separator ('/' or '\\'); put a hub id in the entry's `id:` instead"
    if any(part in (".", "..") for part in re.split(r"[/\\]", name)) or name.startswith(("/", "~")):
        return "it would be read as a path outside its folder"
    return None


def check_encoder_name(name: Any, *, registry: bool = False, where: str = "encoder name") -> str:
    """``name`` if it may name an encoder, else one EncoderError saying why and what to use."""
    why = _name_problem(name, registry=registry)
    if why:
        raise EncoderError(f"{where} {name!r} is not allowed: {why}. Use a plain name of letters, "
                           f"digits, '.', '_' and '-' (e.g. 'my-encoder').")
    return name


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
def register_kind(kind: str) -> Callable:
    """Decorator: ``@register_kind("tfidf-svd") def build(spec: dict, device: str) -> Encoder``."""

    def deco(fn: Callable[[dict, str], "Encoder"]) -> Callable[[dict, str], "Encoder"]:
        _KINDS[kind] = fn
        return fn

    return deco


def register_encoder(name: str, spec: dict) -> None:
    """Add (or replace) a registry entry from Python. ``spec`` is what a YAML entry holds;
    give ``module`` unless ``kind`` is one of this package's kinds (``hf``, ``wordllama``,
    ``cnn``) or already registered."""
    check_encoder_name(name, registry=True, where=f"register_encoder({name!r}, spec): the name")
    if not isinstance(spec, dict) or "kind" not in spec:
        raise EncoderError(f"register_encoder({name!r}, spec): spec must be a dict with a 'kind' key")
    for key, parse in (("modality", parse_modality), ("domain", parse_domain)):
        if key in spec:
            parse(spec[key], f"register_encoder({name!r}, spec)")
    s = dict(spec)
    s.setdefault("_source", "register_encoder()")
    _USER_SPECS[name] = s


def _package_registry_files() -> list[Path]:
    folder = resources.files("semalign.encoders")
    return sorted(Path(str(p)) for p in folder.iterdir()
                  if p.name.startswith("registry") and p.name.endswith((".yml", ".yaml")))


def _user_registry_files() -> list[Path]:
    """The files named in ``SEMALIGN_ENCODERS`` (``os.pathsep``-separated; empty parts skipped)."""
    raw = os.environ.get("SEMALIGN_ENCODERS", "")
    files = []
    for part in raw.split(os.pathsep):
        if not part.strip():
            continue
        p = Path(part.strip()).expanduser()
        if not p.exists():
            raise EncoderError(f"SEMALIGN_ENCODERS names {p}, which does not exist: fix the path or "
                               f"remove it from SEMALIGN_ENCODERS (a YAML registry with `encoders:` "
                               f"expected; parts are separated by {os.pathsep!r})")
        if not p.is_file():
            raise EncoderError(f"SEMALIGN_ENCODERS names {p}, which is not a file (a YAML registry "
                               f"with `encoders:` expected): fix the path or remove it from "
                               f"SEMALIGN_ENCODERS")
        files.append(p)
    return files


_PARSED: dict[tuple, Any] = {}


def _parsed_yaml(path: Path) -> Any:
    """``yaml.safe_load`` of a registry file, parsed once per version of the file (its path,
    size and modification time) and handed out as a deep copy: a notebook resolves encoder
    names hundreds of times and parsing the registry was seconds of each chapter."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _PARSED:
        text = path.read_text(encoding="utf-8")
        _PARSED[key] = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return copy.deepcopy(_PARSED[key])


def _read_registry_file(path: Path, origin: str = "encoder registry") -> dict[str, dict]:
    """The entries of one registry YAML file, or one EncoderError naming ``origin`` (e.g.
    ``SEMALIGN_ENCODERS file``), the file and what is wrong with it."""
    where = f"{origin} {path}"
    fix = " Fix the file" + (" or remove it from SEMALIGN_ENCODERS." if "SEMALIGN_ENCODERS" in origin else ".")
    try:
        doc = _parsed_yaml(path)
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        detail = (f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None and problem
                  else " ".join(str(e).split()))
        raise EncoderError(f"{where} is not valid YAML ({detail}).{fix}") from None
    except UnicodeDecodeError as e:
        raise EncoderError(f"{where} is not UTF-8 text ({e.reason} at byte {e.start}).{fix}") from None
    except OSError as e:
        raise EncoderError(f"{where} cannot be read ({e.strerror or e}).{fix}") from None
    if doc is None:
        doc = {}
    shape = "`module: a.python.module` (optional) and `encoders: {NAME: {kind: ..., ...}}`"
    if not isinstance(doc, dict):
        raise EncoderError(f"{where} holds a {type(doc).__name__}, not a mapping: a registry file "
                           f"holds {shape}.{fix}")
    entries = doc.get("encoders")
    if entries is None:
        entries = {}
    if not isinstance(entries, dict):
        raise EncoderError(f"{where}: `encoders:` must map names to specs (got a "
                           f"{type(entries).__name__}); a registry file holds {shape}.{fix}")
    module = doc.get("module")
    if module is not None and not (isinstance(module, str) and module.strip()):
        raise EncoderError(f"{where}: `module:` must be a Python module name such as "
                           f"semalign.encoders.mine, got {module!r}.{fix}")
    out = {}
    for name, spec in entries.items():
        check_encoder_name(name, registry=True, where=f"{where}: entry")
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
            raise EncoderError(f"{where}: entry {name!r} must be a mapping with a `kind:` (e.g. "
                               f"`kind: hf`), got {spec!r:.80}.{fix}")
        for key, parse in (("modality", parse_modality), ("domain", parse_domain)):
            if key in spec:
                parse(spec[key], f"{where}: entry {name!r}")
        s = dict(spec)
        if module and "module" not in s:
            s["module"] = module
        s["_source"] = str(path)
        out[str(name)] = s
    return out


def encoder_specs() -> dict[str, dict]:
    """Every registry entry by name (package files, then SEMALIGN_ENCODERS, then Python)."""
    specs: dict[str, dict] = {}
    for path in _package_registry_files():
        for name, s in _read_registry_file(path).items():
            if name in specs:
                raise EncoderError(f"encoder {name!r} is defined twice: in {specs[name]['_source']} "
                                   f"and {path}")
            specs[name] = s
    for path in _user_registry_files():
        specs.update(_read_registry_file(path, "SEMALIGN_ENCODERS file"))
    specs.update(copy.deepcopy(_USER_SPECS))
    for name, s in specs.items():
        s["name"] = name
    return specs


def list_encoders(modality: str | None = None, domain: str | None = None) -> list[str]:
    """Registry names, sorted; optionally only one modality ("text"/"image") or domain."""
    out = []
    for name, s in encoder_specs().items():
        if modality and parse_modality(s.get("modality", "text"), f"encoder {name!r}") != parse_modality(modality):
            continue
        if domain and parse_domain(s.get("domain", "general"), f"encoder {name!r}") != parse_domain(domain):
            continue
        out.append(name)
    return sorted(out)


def _kind_builder(spec: dict) -> Callable[[dict, str], "Encoder"]:
    kind = spec["kind"]
    if kind not in _KINDS:
        module = spec.get("module") or BUILTIN_KIND_MODULES.get(kind)
        if module:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise EncoderError(f"encoder {spec.get('name')!r}: cannot import module {module!r} "
                                   f"that implements kind {kind!r}: {e}") from e
    if kind not in _KINDS:
        raise EncoderError(
            f"encoder {spec.get('name')!r}: no builder for kind {kind!r} "
            f"(module {spec.get('module')!r} has no @register_kind({kind!r}) function). "
            f"Known kinds: {', '.join(sorted(set(_KINDS) | set(BUILTIN_KIND_MODULES)))}."
        )
    return _KINDS[kind]


def _looks_like_path(s: str) -> bool:
    """True for strings meant as a filesystem path: ``/…``, ``./…``, ``../…``, ``~…``, ``.``."""
    return s.startswith(("/", ".", "~")) or (os.sep != "/" and s.startswith(os.sep))


def _local_folder_spec(raw: str) -> dict | None:
    """The spec of a local model folder ``raw``; None when ``raw`` is not meant as one.

    A string that names an existing folder, or looks like a path, is judged here, before any
    hub logic: an existing folder with ``config.json`` is a model; a folder without it, a file
    or a missing path is one EncoderError saying so. (An existing relative folder whose name
    is also a valid hub id, such as ``org/name``, and that holds no ``config.json`` is left to
    the hub: it is likely a partial download beside the user's notebook.)
    """
    path = Path(raw).expanduser()
    pathlike = _looks_like_path(raw)
    if path.is_dir():
        if (path / "config.json").is_file():
            folder = path.resolve()
            # the folder's own name, after resolving: "model/.." must not be named ".."
            return {"kind": "hf", "id": str(folder), "name": folder.name or str(folder),
                    "_source": "local folder"}
        if not pathlike and _HUB_ID.match(raw):
            return None
        raise EncoderError(
            f"{path} is a folder but holds no config.json (not a saved model): give a folder "
            f"written by save_pretrained() or `hf download ORG/MODEL --local-dir FOLDER`, a hub "
            f"id (org/name) or a registry name (`semalign encoders` lists them).")
    if path.exists():
        if pathlike:
            raise EncoderError(f"{path} is a file, not a model folder: give the folder that holds "
                               f"its config.json and weights, or a registry name "
                               f"(`semalign encoders` lists them).")
        return None
    if pathlike:
        shown = raw if str(path.absolute()) == raw else f"{raw} ({path.absolute()})"
        raise EncoderError(f"no such folder: {shown} (encoder given as a local path). Check the "
                           f"path, or give a hub id (org/name) or a registry name (`semalign "
                           f"encoders` lists them).")
    return None


def resolve_spec(name_or_id: str) -> dict:
    """The spec for a registry name, a local model folder or a hub id (``org/name``).

    Order: registry names first; then a string naming an existing folder or looking like a
    path (``/ . ~``) is a local model folder, checked at once (see :func:`_local_folder_spec`);
    then a hub id. Anything else is one EncoderError listing the known names.
    """
    if not isinstance(name_or_id, (str, os.PathLike)):
        raise EncoderError(f"an encoder is named by a string (registry name, hub id or local "
                           f"folder), got a {type(name_or_id).__name__}")
    raw = os.fspath(name_or_id)
    specs = encoder_specs()
    if raw in specs:
        return specs[raw]
    local = _local_folder_spec(raw)
    if local is not None:
        return local
    if _HUB_ID.match(raw):
        # a hub id that the registry knows gets the registry's spec
        hits = [s for s in specs.values() if s.get("id") == raw]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise EncoderError(f"hub id {raw!r} is registered under several names: "
                               f"{', '.join(sorted(s['name'] for s in hits))}; use one of them")
        return {"kind": "hf", "id": raw, "name": raw, "_source": "hub id"}
    known = ", ".join(sorted(specs)) or "(none)"
    raise EncoderError(f"unknown encoder {raw!r}: not a registry name, a local folder or a "
                       f"hub id (org/name). Known encoders: {known}. {HOW_TO_ADD}")


def get_encoder(name: str, device: str = "auto", dtype: str | None = None, **overrides: Any) -> "Encoder":
    """Build an encoder from a registry name, a hub id or a local model folder.

    ``device``: "auto" (CUDA, then MPS, then CPU) or an explicit torch device string.
    ``dtype``: None picks bfloat16 (or float16 without bf16 support) on GPU and float32 on CPU.
    ``overrides``: spec fields to change for this instance (e.g. ``pooling="last-token"``,
    ``max_length=128``, ``revision="abc123"``).
    """
    dev = resolve_device(device)  # a bad device fails before anything is loaded
    check_device_available(dev)
    spec = copy.deepcopy(resolve_spec(name))
    spec.update(overrides)
    spec["dtype"] = dtype or spec.get("dtype") or default_dtype(dev)
    return _kind_builder(spec)(spec, dev)


# --------------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------------
DEVICE_FORMS = "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def check_device(device: Any) -> str:
    """``device`` as a normalised string if it is one of :data:`DEVICE_FORMS`, else one
    EncoderError. Only the spelling is checked (see :func:`check_device_available`)."""
    text = str(device).strip().lower() if isinstance(device, str) or type(device).__name__ == "device" else None
    if text is None or not _DEVICE.match(text):
        raise EncoderError(f"device {device!r} is not valid: use {DEVICE_FORMS}")
    return text


def check_device_available(device: str) -> None:
    """One EncoderError when an explicit ``cuda``/``cuda:N``/``mps`` is absent on this machine
    (torch's own error is an assertion deep in ``.to(device)``)."""
    if not device.startswith(("cuda", "mps")):
        return
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EncoderError(f"device {device!r}: CUDA is not available here (no GPU, or torch "
                               f"built without CUDA); use --device cpu or auto")
        if ":" in device:
            n, idx = torch.cuda.device_count(), int(device.split(":", 1)[1])
            if n and idx >= n:
                raise EncoderError(f"device {device!r}: this machine has {n} CUDA device(s), "
                                   f"cuda:0 to cuda:{n - 1}")
        return
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise EncoderError(f"device {device!r}: MPS (Apple GPU) is not available here; use "
                           f"--device cpu or auto")


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" if available, then "mps", then "cpu"; an explicit device of
    :data:`DEVICE_FORMS` is returned as is (whether it exists is
    :func:`check_device_available`'s job); anything else is an EncoderError."""
    device = check_device(device)
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str) -> str:
    """bfloat16 on a GPU that supports it, float16 on other GPUs/MPS, float32 on CPU."""
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device.startswith("mps"):
        return "float16"
    return "float32"


def torch_dtype(name: str):
    import torch

    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    except KeyError:
        raise EncoderError(f"dtype {name!r} not supported: use float32, bfloat16 or float16") from None


def is_oom(err: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors (torch raises different types across versions)."""
    import torch

    if isinstance(err, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


# --------------------------------------------------------------------------------------------
# the encoder base class and engine
# --------------------------------------------------------------------------------------------
class Encoder:
    """Base class: subclasses implement :meth:`_embed_batch` (and usually override
    :meth:`fingerprint` to add what identifies their weights).

    Attributes: ``name``, ``modality`` (a :class:`~semalign.vocab.Modality`, equal to "text" or
    "image"), ``domain`` (a :class:`~semalign.vocab.Domain` or :data:`MULTIMODAL`),
    ``dim`` (output width), ``device``, ``dtype`` (str), ``spec`` (the registry entry),
    ``batch_size`` (default batch size of :meth:`embed`).
    """

    default_batch_size = 32

    def __init__(self, name: str, modality: str, domain: str, dim: int, *, spec: dict | None = None,
                 device: str = "cpu", dtype: str = "float32", batch_size: int | None = None):
        modality = parse_modality(modality, f"encoder {name!r}")
        domain = parse_domain(domain, f"encoder {name!r}")
        check_encoder_name(name)  # names become cache folder names: no "..", no "../x"
        self.name, self.modality, self.domain, self.dim = name, modality, domain, int(dim)
        self.spec = dict(spec or {})
        self.device, self.dtype = device, dtype
        bs = batch_size if batch_size is not None else self.spec.get("batch_size")
        self.batch_size = check_batch_size(bs, f"encoder {name!r}: batch_size") \
            if bs is not None else self.default_batch_size

    @classmethod
    def from_spec(cls, spec: dict, device: str = "cpu", **kwargs: Any) -> "Encoder":
        """Construct with name/modality/domain/dim/dtype taken from ``spec`` (kwargs override)."""
        args = dict(name=spec.get("name", "encoder"), modality=spec.get("modality", "text"),
                    domain=spec.get("domain", "general"), dim=spec.get("dim", 0))
        args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
        return cls(**args, spec=spec, device=device, dtype=spec.get("dtype", "float32"), **kwargs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, modality={str(self.modality)!r}, "
                f"domain={str(self.domain)!r}, dim={self.dim}, device={self.device!r}, dtype={self.dtype!r})")

    # -- to implement ----------------------------------------------------------------------
    def _embed_batch(self, batch: list) -> Any:
        """Embed one batch: ``list`` of inputs -> array/tensor ``(len(batch), dim)``."""
        raise NotImplementedError

    def _sort_key(self, item: Any) -> int:
        """Length proxy used to sort texts so batches pad little (characters by default)."""
        return len(item) if isinstance(item, str) else 0

    def fingerprint(self) -> dict:
        """What identifies this encoder's output: the embedding cache key is built from it.

        Subclasses add the weights (revision or sha256) and anything that changes the numbers.
        """
        keys = ("kind", "id", "revision", "pooling", "max_length", "preprocessing", "weights_sha256")
        fp = {k: self.spec[k] for k in keys if self.spec.get(k) is not None}
        fp.update(name=self.name, modality=self.modality, dim=self.dim, dtype=self.dtype,
                  encoder_class=f"{type(self).__module__}.{type(self).__qualname__}")
        return fp

    # -- engine ----------------------------------------------------------------------------
    def _validate(self, inputs: Any) -> list:
        if isinstance(inputs, (str, bytes, os.PathLike)) or (
                isinstance(inputs, np.ndarray) and self.modality == "text"):
            raise EncoderError(f"{self.name}.embed(inputs): inputs must be a list of "
                               f"{'texts' if self.modality == 'text' else 'images'}, got one "
                               f"{type(inputs).__name__}; wrap it in a list")
        if isinstance(inputs, np.ndarray) and self.modality == "image":
            # a stacked (n, H, W) or (n, H, W, 3) uint8 array: one image per row
            if inputs.ndim not in (3, 4):
                raise EncoderError(f"{self.name}.embed: an image array must be (n, H, W) or "
                                   f"(n, H, W, 3), got shape {inputs.shape}")
            return list(inputs)
        items = list(inputs)
        if self.modality == "text":
            bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
            if bad:
                raise EncoderError(f"{self.name} is a text encoder: input {bad[0]} is a "
                                   f"{type(items[bad[0]]).__name__}, expected str")
        else:
            bad = [i for i, x in enumerate(items) if not isinstance(x, (str, os.PathLike, np.ndarray))]
            if bad:
                raise EncoderError(f"{self.name} is an image encoder: input {bad[0]} is a "
                                   f"{type(items[bad[0]]).__name__}; give paths or uint8 arrays "
                                   f"(H, W) / (H, W, 3)")
        return items

    def embed(self, inputs: Sequence, batch_size: int | None = None, progress: bool = True) -> np.ndarray:
        """Embed ``inputs`` -> ``np.float32`` array ``(len(inputs), dim)``, rows in input order.

        Texts are processed in order of length (fewer pad tokens); the output order is the
        input order. On out-of-memory the batch size is halved and the batch retried, down to 1.
        """
        if batch_size is not None:
            check_batch_size(batch_size, f"{self.name}.embed(batch_size=...)")
        items = self._validate(inputs)
        n = len(items)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        if self.modality == "text":
            # stable sort, longest first: the first batch shows at once whether memory suffices
            order = sorted(range(n), key=lambda i: -self._sort_key(items[i]))
        else:
            order = list(range(n))
        bs = max(1, int(batch_size or self.batch_size))
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"embed {self.name}", unit=self.modality, disable=not progress,
                   leave=False)
        try:
            import torch

            with torch.inference_mode():
                start = 0
                while start < n:
                    idx = order[start:start + bs]
                    try:
                        vecs = self._embed_batch([items[i] for i in idx])
                    except Exception as e:  # noqa: BLE001 — only OOM is handled, rest re-raised
                        if not is_oom(e) or len(idx) == 1:
                            raise
                        # halve what actually ran out of memory (a short last batch is smaller than bs)
                        bs = max(1, len(idx) // 2)
                        self._after_oom()
                        continue
                    vecs = _to_numpy(vecs)
                    if vecs.shape != (len(idx), self.dim):
                        raise EncoderError(f"{self.name}: a batch of {len(idx)} gave shape "
                                           f"{vecs.shape}, expected ({len(idx)}, {self.dim})")
                    out[idx] = vecs
                    start += len(idx)
                    bar.update(len(idx))
        finally:
            bar.close()
        self.last_batch_size = bs  # what finally fitted; useful after a back-off
        return out

    def _after_oom(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def check_batch_size(value: Any, where: str = "batch size") -> int:
    """``value`` as an int >= 1, or one EncoderError (0, negatives, floats and text are refused
    rather than silently replaced by a default)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1
    if not ok:
        raise EncoderError(f"{where} must be a positive whole number (1, 2, ...), got {value!r}")
    return int(value)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def iter_batches(items: Sequence, batch_size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), batch_size):
        yield items[i:i + batch_size]
