"""Kind ``hf``: any transformers model — text encoders, decoder LLMs, ViT-like vision
encoders and the two CLIP towers — loaded with the real ``from_pretrained`` path.

Where the weights come from (first that applies):
``path`` (a local folder) · ``asset`` + ``subdir`` (a registry wheel) · ``asset_parts`` (one zip
in several wheels) · ``id`` when it is a local folder · ``$SEMALIGN_MODELS_DIR/<org>/<name>`` ·
the Hugging Face hub (``id`` + ``revision``; honours ``HF_HUB_OFFLINE`` and ``HF_TOKEN``).
A hub model is pinned to the commit its ``config.json`` resolves to (the ``snapshots/<sha>/``
folder of the hub cache), and that commit is in :meth:`HFEncoder.fingerprint`, hence in the
embedding cache key; a local folder is identified by the sha256 of its weight files.

Pooling (the ``pooling`` spec field; defaults per family, see :func:`default_pooling`):

``cls``
    ``last_hidden_state[:, 0]`` — ViT (after its final LayerNorm), DINOv2 and RAD-DINO (there it
    equals ``pooler_output``: the LayerNorm'ed CLS token, what RAD-DINO's card uses).
``pooler``
    the model's ``pooler_output`` (BERT's tanh head; rarely what you want for retrieval).
``mean``
    mean of ``last_hidden_state`` over the tokens whose attention mask is 1 — sentence
    encoders (MiniLM, MPNet, BioLORD), RoBERTa, and decoder LLMs (Llama-2, Meditron) by default.
``last-token``
    hidden state of the last non-pad token (decoder LLMs, option). Found from the attention
    mask, so it is right for left and right padding; we pad on the right anyway, because Llama
    derives position ids from the cache position, not the mask, and left padding would shift
    them (a text would embed differently alone and in a batch).
``clip``
    CLIP's projected embedding: ``get_text_features`` / ``get_image_features`` (in transformers
    5 these return a ``BaseModelOutputWithPooling`` whose ``pooler_output`` is the projection;
    in 4.x a tensor — both handled).

``normalize: true`` L2-normalises after pooling (the sentence-transformers models do; their
folders' ``modules.json`` says so and is read when the spec does not say).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from semalign.encoders.base import (_HUB_ID, Encoder, EncoderError, _looks_like_path, register_kind,
                                    torch_dtype)
from semalign.paths import models_dir

VISION_TYPES = {"vit", "dinov2", "dinov2_with_registers", "deit", "beit", "convnext", "convnextv2",
                "swin", "swinv2", "rad_dino", "dinov3_vit", "siglip_vision_model", "clip_vision_model"}
CLIP_TYPES = {"clip", "siglip", "chinese_clip"}
# models whose position ids start at pad_token_id + 1 (RoBERTa's 514 positions hold 512 tokens)
OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "bart"}
POOLINGS = ("cls", "pooler", "mean", "last-token", "clip")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


# --------------------------------------------------------------------------------------------
# where the weights are
# --------------------------------------------------------------------------------------------
def _is_model_dir(p: Path) -> bool:
    return p.is_dir() and (p / "config.json").is_file()


def resolve_source(spec: dict) -> tuple[str, bool]:
    """``(path_or_hub_id, is_local)`` for a spec (see the module docstring for the order)."""
    if spec.get("path"):
        p = Path(spec["path"]).expanduser()
        if not _is_model_dir(p):
            raise EncoderError(f"encoder {spec.get('name')!r}: path {p} " + _not_a_model_dir(p))
        return str(p), True
    if spec.get("asset"):
        from semalign.assets import fetch

        p = fetch(spec["asset"]) / spec.get("subdir", "")
        if not _is_model_dir(p):
            raise EncoderError(f"encoder {spec.get('name')!r}: asset {spec['asset']!r} has no model "
                               f"folder at {p}")
        return str(p), True
    if spec.get("asset_parts"):
        from semalign.assets import fetch_split_zip

        root = fetch_split_zip(spec.get("asset_name") or spec["name"], list(spec["asset_parts"]),
                               check=spec.get("asset_check"))
        p = root / spec.get("subdir", "")
        if not _is_model_dir(p):
            raise EncoderError(f"encoder {spec.get('name')!r}: no model folder at {p}")
        return str(p), True
    hub_id = spec.get("id")
    if not hub_id:
        raise EncoderError(f"encoder {spec.get('name')!r}: the spec needs `id` (hub id or folder), "
                           f"`path`, `asset` or `asset_parts`")
    p = Path(hub_id).expanduser()
    if _is_model_dir(p):
        return str(p), True
    if _looks_like_path(str(hub_id)):  # meant as a folder: never ask the hub for "/etc"
        raise EncoderError(f"encoder {spec.get('name')!r}: id {p} " + _not_a_model_dir(p))
    md = models_dir()
    # only a real hub id (org/name) is looked up under SEMALIGN_MODELS_DIR: "../x" must not escape it
    if md is not None and _HUB_ID.match(str(hub_id)) and _is_model_dir(md / hub_id):
        return str(md / hub_id), True
    return hub_id, False


def _not_a_model_dir(p: Path) -> str:
    """The end of an error about a folder that should hold a saved model but does not."""
    if p.is_dir():
        return ("is a folder but holds no config.json (not a saved model): give a folder written "
                "by save_pretrained() or `hf download ORG/MODEL --local-dir FOLDER`")
    if p.exists():
        return "is a file, not a model folder: give the folder that holds its config.json"
    return "does not exist (no such folder): check the path"


def _access_refused(err: BaseException) -> bool:
    """True when the hub refused access (a gated or private model), not merely unreachable:
    huggingface_hub's ``GatedRepoError`` anywhere in the chain, or transformers' re-raised
    ``OSError`` whose text says "gated" or carries HTTP 401 / 403."""
    e: BaseException | None = err
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ == "GatedRepoError":
            return True
        e = e.__cause__ or e.__context__
    text = str(err).lower()
    return "gated" in text or re.search(r"\b40[13]\b", text) is not None


def _missing_model_error(spec: dict, err: BaseException) -> EncoderError:
    """One error that says what is missing and what to do (raise it ``from None``: the hub
    client's traceback says nothing more)."""
    hub_id = spec.get("id") or spec.get("name")
    md = models_dir()
    where = f"SEMALIGN_MODELS_DIR={md} has no {md / hub_id} folder" if md else \
        "SEMALIGN_MODELS_DIR is not set"
    refused = _access_refused(err)
    gated = refused or bool(spec.get("gated"))
    url = f"https://huggingface.co/{hub_id}"
    head = (f"cannot load encoder {spec.get('name')!r} (hub id {hub_id!r}, revision "
            f"{spec.get('revision') or 'main'}): ")
    if refused:
        head += ("the hub refused access: it is a gated (or private) model and this machine is "
                 "not logged in with an account that accepted its licence.")
    elif "not a valid repository" in str(err) or type(err).__name__ == "RepositoryNotFoundError":
        head += "the hub has no such model (check the id) and it is not on this machine."
    else:
        head += ("the weights are not on this machine and the hub could not be reached"
                 + (" (and it is a gated model)." if gated else "."))
    lines = [head, f"  where to get it: {url}" + (f" — {spec['access']}" if spec.get("access") else "")]
    if gated:
        lines.append(f"  gated model: log in on {url}, accept its licence (access conditions) "
                     f"there, then log in here with `hf auth login` or set HF_TOKEN to a token of "
                     f"that account;")
    lines += [
        f"  then either: `hf download {hub_id} --local-dir $SEMALIGN_MODELS_DIR/{hub_id}` and set "
        f"SEMALIGN_MODELS_DIR (now: {where}),",
        "  or let it download into the hub cache (HF_HOME / HF_HUB_CACHE): unset HF_HUB_OFFLINE"
        + (" and log in as above" if gated else "") + ",",
        "  or pass a local folder: get_encoder('/path/to/model').",
        f"  (underlying error: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})",
    ]
    return EncoderError("\n".join(lines))


def weights_sha256(folder: str | Path) -> str:
    """sha256 over the weight files of a local model folder (name + content, sorted by name).

    Memoised in ``<cache_dir>/weights-sha256.json`` by (path, size, mtime) because hashing a
    7B model takes a while and a folder rarely changes.
    """
    from semalign._io import atomic_write_text, sha256_file
    from semalign.paths import cache_dir
    import hashlib

    folder = Path(folder).resolve()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise EncoderError(f"{folder} holds no weight file ({', '.join(WEIGHT_SUFFIXES)})")
    memo_path = cache_dir() / "weights-sha256.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    h = hashlib.sha256()
    changed = False
    for f in files:
        st = f.stat()
        key = f"{f}|{st.st_size}|{st.st_mtime_ns}"
        if key not in memo:
            memo[key] = sha256_file(f)
            changed = True
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + memo[key].encode() + b"\n")
    if changed:
        try:
            atomic_write_text(memo_path, json.dumps(memo, indent=0))
        except OSError:
            pass  # the memo is only an optimisation
    return h.hexdigest()


def state_dict_sha256(model: Any) -> str:
    """sha256 over a loaded model's tensors (name, dtype, shape, bytes): the last resort for a
    hub model whose commit and snapshot folder are unknown."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def hub_snapshot(repo_id: str, **kw: Any) -> tuple[str | None, Path]:
    """``(commit, snapshot folder)`` of a hub model: where its ``config.json`` resolves to.

    The hub cache keeps each commit's files in ``models--org--name/snapshots/<sha>/``; ``kw``
    (``revision``, ``local_files_only``) go to transformers' ``cached_file``, which downloads
    ``config.json`` if it may and raises ``OSError`` if the model is nowhere. ``commit`` is None
    when the folder is not named by a commit hash.
    """
    from transformers.utils import cached_file

    cfg = cached_file(repo_id, "config.json", **kw)
    if cfg is None:
        raise OSError(f"{repo_id} has no config.json")
    folder = Path(cfg).parent  # not resolved: the file itself is a symlink into blobs/
    commit = folder.name if folder.parent.name == "snapshots" and \
        re.fullmatch(r"[0-9a-f]{40}", folder.name) else None
    return commit, folder


def _sentence_transformers_defaults(folder: Path) -> dict:
    """Pooling, normalisation and max length from a sentence-transformers folder, if it is one."""
    out: dict[str, Any] = {}
    try:
        modules = json.loads((folder / "modules.json").read_text())
    except (OSError, ValueError):
        return out
    types = [m.get("type", "") for m in modules]
    out["normalize"] = any(t.endswith("Normalize") for t in types)
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            try:
                cfg = json.loads((folder / m.get("path", "") / "config.json").read_text())
            except (OSError, ValueError):
                continue
            if cfg.get("pooling_mode_mean_tokens"):
                out["pooling"] = "mean"
            elif cfg.get("pooling_mode_cls_token"):
                out["pooling"] = "cls"
            elif cfg.get("pooling_mode_lasttoken"):
                out["pooling"] = "last-token"
    try:
        out["max_length"] = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        pass
    return out


def _hub_sentence_transformers_folder(repo_id: str, **kw: Any) -> Path | None:
    """The snapshot folder holding a hub model's sentence-transformers configs (``modules.json``,
    its Pooling module's ``config.json``, ``sentence_bert_config.json``), fetched from the same
    commit as the weights (``kw``: ``revision``, ``local_files_only``); None if it has none."""
    from transformers.utils import cached_file

    opts = dict(kw, _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False, _raise_exceptions_for_gated_repo=False)
    try:
        mod = cached_file(repo_id, "modules.json", **opts)
        if not mod:
            return None
        for m in json.loads(Path(mod).read_text()):
            if m.get("type", "").endswith("Pooling") and m.get("path"):
                cached_file(repo_id, "config.json", subfolder=m["path"], **opts)
        cached_file(repo_id, "sentence_bert_config.json", **opts)
    except (OSError, ValueError, TypeError, AttributeError):
        return None  # only defaults: a model without readable configs keeps the family defaults
    return Path(mod).parent


def default_pooling(config: Any, modality: str) -> str:
    mt = getattr(config, "model_type", "")
    if mt in CLIP_TYPES:
        return "clip"
    if modality == "image":
        return "cls"
    return "mean"  # encoders and decoder LLMs alike (last-token is an option)


def is_decoder(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    return bool(getattr(config, "is_decoder", False)) or any(a.endswith("ForCausalLM") for a in archs) \
        or getattr(config, "model_type", "") in {"llama", "mistral", "qwen2", "gemma", "gpt2", "phi", "gpt_neox"}


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
class HFEncoder(Encoder):
    """A transformers model + tokenizer or image processor, pooled as ``spec["pooling"]``."""

    def __init__(self, *args: Any, model: Any, processor: Any, source: str, local: bool,
                 commit: str | None = None, snapshot: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.model, self.processor, self.source, self.local = model, processor, source, local
        # hub models: the commit the files were loaded from, and its snapshot folder in the cache
        self.commit, self.snapshot = commit, snapshot
        self.pooling = self.spec["pooling"]
        self.normalize = bool(self.spec.get("normalize", False))
        self.max_length = self.spec.get("max_length")
        self._weights_sha256: str | None = None

    # texts: sort by token count would need tokenising twice; characters are a good proxy
    def _sort_key(self, item: Any) -> int:
        return len(item) if isinstance(item, str) else 0

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        fp.update(pooling=self.pooling, normalize=self.normalize, max_length=self.max_length,
                  preprocessing=self._preprocessing_description())
        if self.local:
            # a folder's path says nothing about its content: hash the weights
            if self._weights_sha256 is None:
                self._weights_sha256 = weights_sha256(self.source)
            fp["weights_sha256"] = self._weights_sha256
            if self.spec.get("_source") == "local folder":
                fp.pop("id", None)  # a folder's path is not its identity; its weights are
        elif self.commit:
            # the immutable commit of the loaded files (from the snapshot path they resolved to), not
            # the branch name: after the hub moves `main`, the key changes. (transformers 5 no
            # longer sets config._commit_hash, which this used to read: every key said "main".)
            fp["revision"] = self.commit
        else:
            # no commit to name the weights by: hash them, like a local folder
            fp.pop("revision", None)
            if self._weights_sha256 is None:
                self._weights_sha256 = (weights_sha256(self.snapshot) if self.snapshot
                                        else state_dict_sha256(self.model))
            fp["weights_sha256"] = self._weights_sha256
        return fp

    def _preprocessing_description(self) -> Any:
        if self.modality == "text":
            return {"tokenizer": type(self.processor).__name__, "truncation": True,
                    "padding_side": "right", "max_length": self.max_length}
        try:
            return json.loads(self.processor.to_json_string())
        except Exception:  # noqa: BLE001 — only a description for the cache key
            return type(self.processor).__name__

    # -- batches -----------------------------------------------------------------------------
    def _embed_batch(self, batch: list) -> Any:
        import torch

        if self.modality == "text":
            enc = self.processor(batch, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items()
                   if k in ("input_ids", "attention_mask", "token_type_ids")}
            if self.pooling == "clip":
                out = self.model.get_text_features(input_ids=enc["input_ids"],
                                                   attention_mask=enc["attention_mask"])
                vec = out if torch.is_tensor(out) else out.pooler_output
            else:
                if getattr(self.model.config, "model_type", "") in ("mpnet", "roberta", "llama") \
                        and "token_type_ids" in enc:
                    enc.pop("token_type_ids")
                out = self.model(**enc)
                vec = pool(out, enc["attention_mask"], self.pooling)
        else:
            from semalign.images import to_pil_rgb

            pil = [to_pil_rgb(x) for x in batch]
            pix = self.processor(images=pil, return_tensors="pt")["pixel_values"]
            pix = pix.to(self.device, dtype=next(self.model.parameters()).dtype)
            if self.pooling == "clip":
                out = self.model.get_image_features(pixel_values=pix)
                vec = out if torch.is_tensor(out) else out.pooler_output
            else:
                vec = pool(self.model(pixel_values=pix), None, self.pooling)
        vec = vec.float()
        if self.normalize:
            vec = torch.nn.functional.normalize(vec, p=2, dim=-1)
        return vec


def pool(out: Any, mask: Any, pooling: str):
    """Pool a transformers output -> ``(batch, hidden)``; ``mask`` is the attention mask
    ``(batch, seq)`` (None for images)."""
    import torch

    h = out.last_hidden_state
    if pooling == "cls":
        return h[:, 0]
    if pooling == "pooler":
        if getattr(out, "pooler_output", None) is None:
            raise EncoderError("pooling 'pooler' asked, but the model has no pooler output")
        return out.pooler_output
    if mask is None:
        mask = torch.ones(h.shape[:2], dtype=torch.long, device=h.device)
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(h.dtype)
        # sum in float32: bf16 sums over 512 tokens lose digits
        return (h.float() * m.float()).sum(1) / m.float().sum(1).clamp(min=1e-9)
    if pooling == "last-token":
        pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (pos * mask).argmax(dim=1)  # index of the last 1, for right or left padding
        return h[torch.arange(h.shape[0], device=h.device), last]
    raise EncoderError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")


@register_kind("hf")
def build(spec: dict, device: str) -> Encoder:
    """Load a transformers model as an :class:`HFEncoder` (see the module docstring)."""
    import transformers
    from transformers import AutoConfig

    spec = dict(spec)
    source, local = resolve_source(spec)
    kw: dict[str, Any] = {}
    if not local and spec.get("revision"):
        kw["revision"] = spec["revision"]
    if not local and os.environ.get("HF_HUB_OFFLINE") == "1":
        kw["local_files_only"] = True
    commit = snapshot = None
    try:
        if not local:
            commit, folder = hub_snapshot(source, **kw)
            snapshot = str(folder)
            if commit:  # pin it: config, weights and tokenizer all come from this one commit
                kw["revision"] = commit
        config = AutoConfig.from_pretrained(source, **kw)
    except (OSError, ValueError) as e:
        if local:
            raise EncoderError(f"encoder {spec.get('name')!r}: {source} is not a loadable model "
                               f"folder: {e}") from None
        raise _missing_model_error(spec, e) from None

    mt = getattr(config, "model_type", "")
    if mt in CLIP_TYPES and not spec.get("modality"):
        raise EncoderError(f"{spec.get('name')!r} is a CLIP model: say which tower with "
                           f"modality='text' or modality='image' (registry: clip-vit-b32-text / -image)")
    modality = spec.get("modality") or ("image" if mt in VISION_TYPES else "text")
    # a sentence-transformers model says its pooling / normalisation / max length in its folder;
    # the spec's own fields win
    st_folder = Path(source) if local else _hub_sentence_transformers_folder(source, **kw)
    if st_folder is not None:
        for k, v in _sentence_transformers_defaults(st_folder).items():
            spec.setdefault(k, v)
    spec.setdefault("pooling", default_pooling(config, modality))
    if mt in CLIP_TYPES and spec["pooling"] != "clip":
        raise EncoderError(f"encoder {spec.get('name')!r}: a CLIP model is pooled with 'clip' "
                           f"(its projected embedding), not {spec['pooling']!r}")
    if spec["pooling"] not in POOLINGS:
        raise EncoderError(f"encoder {spec.get('name')!r}: pooling {spec['pooling']!r} not in {POOLINGS}")
    spec["modality"] = modality
    spec.setdefault("domain", "general")

    dtype = torch_dtype(spec.get("dtype", "float32"))
    model_cls = transformers.AutoModel  # for CLIP: CLIPModel, both towers; we call one
    load_kw = dict(kw, dtype=dtype)
    if mt == "vit":
        load_kw["add_pooling_layer"] = False  # an untrained tanh pooler otherwise; we use CLS
    try:
        model = model_cls.from_pretrained(source, **load_kw)
        if modality == "text":
            processor = transformers.AutoTokenizer.from_pretrained(source, **kw)
        else:
            processor = transformers.AutoImageProcessor.from_pretrained(source, **kw)
    except (OSError, ValueError) as e:
        if local:
            raise EncoderError(f"encoder {spec.get('name')!r}: could not load {source}: {e}") from None
        raise _missing_model_error(spec, e) from None
    model.eval().to(device)

    if modality == "text":
        processor.padding_side = "right"
        if processor.pad_token is None:  # Llama ships none; any id works, the mask hides it
            processor.pad_token = processor.eos_token or processor.unk_token
        if not spec.get("max_length"):
            ml = getattr(processor, "model_max_length", None) or 512
            if ml >= 100_000:  # the tokenizer does not say: the position table does
                tcfg = config.get_text_config() if hasattr(config, "get_text_config") else config
                ml = int(getattr(tcfg, "max_position_embeddings", 512) or 512)
                if mt in OFFSET_POSITION_TYPES:  # positions start after the pad id
                    ml -= int(getattr(config, "pad_token_id", 1) or 1) + 1
            spec["max_length"] = int(ml)

    dim = _output_dim(config, spec["pooling"], modality)
    if spec.get("dim") and int(spec["dim"]) != dim:
        raise EncoderError(f"encoder {spec.get('name')!r}: registry says dim {spec['dim']} but the "
                           f"model gives {dim}; fix the registry entry")
    spec["dim"] = dim
    name = spec.get("name") or source
    return HFEncoder(name, modality, spec["domain"], dim, spec=spec, device=device,
                     dtype=spec.get("dtype", "float32"), model=model, processor=processor,
                     source=source, local=local, commit=commit, snapshot=snapshot)


def _output_dim(config: Any, pooling: str, modality: str) -> int:
    if pooling == "clip":
        return int(config.projection_dim)
    if getattr(config, "model_type", "") in CLIP_TYPES:
        sub = config.text_config if modality == "text" else config.vision_config
        return int(sub.hidden_size)
    return int(getattr(config, "hidden_size", None) or config.get_text_config().hidden_size)
