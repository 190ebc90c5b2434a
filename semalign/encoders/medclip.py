"""MedCLIP (Wang et al., EMNLP 2022) rebuilt from hub parts, loaded from its released checkpoint.

MedCLIP's weights are not on the Hugging Face hub. Its GitHub repository
(https://github.com/RyanWangZf/MedCLIP) points, in ``medclip/medclip_vit_weight.txt``, to
``https://storage.googleapis.com/pytrial/medclip-vit-pretrained.zip`` -- the file its README's
``MedCLIPModel(vision_cls=MedCLIPVisionModelViT).from_pretrained()`` downloads. The zip holds
``pytorch_model.bin``, a ``state_dict`` of MedCLIP's ``MedCLIPModel``. Download it yourself and
set ``SEMALIGN_MEDCLIP_WEIGHTS`` to the zip, to the unpacked ``pytorch_model.bin`` or to the
folder holding it. (The ResNet-50 variant, ``medclip-pretrained.zip``, is not supported: it
needs torchvision's ResNet, which this project must not install.)

The architecture, as in MedCLIP's ``modeling_medclip.py`` / ``constants.py``:

* vision -- ``MedCLIPVisionModelViT``: a Swin-tiny (``microsoft/swin-tiny-patch4-window7-224``,
  whose config is transformers' ``SwinConfig()`` defaults) ``AutoModel``; its ``pooler_output``
  (mean of the final layer-normed tokens) -> ``Linear(768, 512, bias=False)``
  (``projection_head``). Grey-level input repeated to 3 channels.
* text -- ``MedCLIPTextModel``: Bio_ClinicalBERT (``emilyalsentzer/Bio_ClinicalBERT``) with
  ``output_hidden_states``; the hidden states of layers 1, 2 and the last
  (``hidden_states[1]``, ``[2]``, ``[-1]``) are each averaged over the tokens, then over the
  three layers -> ``Linear(768, 512, bias=False)``. Tokenizer ``model_max_length = 77``.
* ``logit_scale`` (learned temperature, not needed for embeddings); ``encode_image`` /
  ``encode_text`` L2-normalise the projections, and so do we.
* image preprocessing -- ``MedCLIPFeatureExtractor``: grey level, padded with black to a centred
  square of side ``max(224, H, W)``, bicubic resize to 224 x 224, scaled to [0, 1], normalised
  with ``IMG_MEAN = 0.5862785803043838``, ``IMG_STD = 0.27950088968644304``.

One deviation, on purpose: MedCLIP averages the text tokens *including padding* (its mean has
no mask), so a prompt's embedding depends on the longest prompt in its batch. We average over
the real tokens (``text_pooling: masked``), which equals MedCLIP's output for a prompt run on
its own and makes embeddings batch-independent (cacheable); ``text_pooling: medclip-padded``
reproduces MedCLIP's padded mean exactly.

Checkpoint keys (MedCLIP layout) -> this module's::

    vision_model.model.*            -> vision.*              (SwinModel)
    vision_model.projection_head.*  -> vision_projection.*
    text_model.model.*              -> text.*                (BertModel, with its unused pooler)
    text_model.projection_head.*    -> text_projection.*
    logit_scale                     -> logit_scale

Buffers that older transformers saved and current ones recompute (BERT's
``embeddings.position_ids``, Swin's ``relative_position_index``) are checked against the
recomputed values and dropped. Any other missing, unexpected or mis-shaped key is refused
with one error listing them (:class:`MedCLIPCheckpointError`).
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from semalign.encoders.base import Encoder, EncoderError, register_kind, torch_dtype

WEIGHTS_ENV = "SEMALIGN_MEDCLIP_WEIGHTS"
WEIGHTS_URL = "https://storage.googleapis.com/pytrial/medclip-vit-pretrained.zip"
WEIGHTS_NAME = "pytorch_model.bin"
VISION_HUB = "microsoft/swin-tiny-patch4-window7-224"
TEXT_HUB = "emilyalsentzer/Bio_ClinicalBERT"
IMG_SIZE = 224
IMG_MEAN = 0.5862785803043838
IMG_STD = 0.27950088968644304
MAX_LENGTH = 77
PROJ_DIM = 512
TEXT_POOLINGS = ("masked", "medclip-padded")

KEY_MAP = (  # (MedCLIP prefix, our prefix), first match wins
    ("vision_model.model.", "vision."),
    ("vision_model.projection_head.", "vision_projection."),
    ("text_model.model.", "text."),
    ("text_model.projection_head.", "text_projection."),
    ("logit_scale", "logit_scale"),
)
# Buffers persisted by the transformers MedCLIP was saved with (2022), recomputed today.
DERIVED_BUFFERS = (re.compile(r"\.embeddings\.position_ids$"),
                   re.compile(r"\.embeddings\.token_type_ids$"),
                   re.compile(r"\.relative_position_index$"))

HOW_TO_GET = (
    f"MedCLIP's weights are not on the Hugging Face hub. Download {WEIGHTS_URL} (linked from "
    f"https://github.com/RyanWangZf/MedCLIP, file medclip/medclip_vit_weight.txt) and set "
    f"{WEIGHTS_ENV} to the zip, to its {WEIGHTS_NAME} or to the folder holding it "
    f"(or give `weights:` in the encoder spec)."
)


class MedCLIPCheckpointError(EncoderError):
    """The checkpoint does not fit the MedCLIP-ViT architecture; the message lists the keys."""


# --------------------------------------------------------------------------------------------
# architecture
# --------------------------------------------------------------------------------------------
class MedCLIP(nn.Module):
    """MedCLIP-ViT: Swin vision tower and BERT text tower, each with a bias-free projection.

    ``towers``: which towers get real (CPU) parameters; the others are built on the ``meta``
    device -- they have the right keys and shapes for checking a checkpoint but use no memory.
    """

    def __init__(self, vision_config: Any, text_config: Any, proj_dim: int = PROJ_DIM,
                 towers: tuple[str, ...] = ("vision", "text"), logit_scale_init: float = 0.07):
        super().__init__()
        from transformers import BertModel, SwinModel

        self.towers = tuple(towers)
        with torch.device("cpu" if "vision" in towers else "meta"):
            self.vision = SwinModel(vision_config, add_pooling_layer=True)
            self.vision_projection = nn.Linear(self.vision.num_features, proj_dim, bias=False)
        with torch.device("cpu" if "text" in towers else "meta"):
            self.text = BertModel(text_config, add_pooling_layer=True)
            self.text_projection = nn.Linear(text_config.hidden_size, proj_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / logit_scale_init)))

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(n, 1 or 3, H, W)`` normalised pixels -> projected ``(n, proj_dim)`` (not normalised)."""
        if pixel_values.shape[1] == 1:
            pixel_values = pixel_values.repeat(1, 3, 1, 1)
        out = self.vision(pixel_values=pixel_values)
        return self.vision_projection(out.pooler_output)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    pooling: str = "masked") -> torch.Tensor:
        """Token ids ``(n, L)`` -> projected ``(n, proj_dim)`` (not normalised).

        Mean over tokens of hidden states 1, 2 and last, then mean over those three layers.
        ``pooling="masked"`` averages real tokens only; ``"medclip-padded"`` averages all ``L``
        positions as MedCLIP does.
        """
        out = self.text(input_ids=input_ids, attention_mask=attention_mask,
                        output_hidden_states=True)
        hs = out.hidden_states
        layers = torch.stack([hs[1], hs[2], hs[-1]])  # (3, n, L, h)
        if pooling == "medclip-padded":
            tok = layers.mean(dim=2)
        elif pooling == "masked":
            m = attention_mask.to(layers.dtype)[None, :, :, None]  # (1, n, L, 1)
            tok = (layers * m).sum(dim=2) / m.sum(dim=2).clamp(min=1.0)
        else:
            raise EncoderError(f"text_pooling {pooling!r}: use one of {TEXT_POOLINGS}")
        return self.text_projection(tok.mean(dim=0))


def preprocess_image(img: Any, size: int = IMG_SIZE, mean: float = IMG_MEAN,
                     std: float = IMG_STD) -> np.ndarray:
    """MedCLIP's image preprocessing: image (path or array) -> float32 ``(1, size, size)``.

    Grey level; black padding to a centred square of side ``max(size, H, W)``; bicubic resize to
    ``size`` x ``size``; ``/255``; ``(x - mean) / std``.
    """
    from PIL import Image

    from semalign.images import read_image

    g = read_image(img, mode="gray")  # uint8 (H, W)
    h, w = g.shape
    side = max(size, h, w)
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(Image.fromarray(g, mode="L"), (int((side - w) / 2), int((side - h) / 2)))
    if side != size:
        canvas = canvas.resize((size, size), resample=Image.BICUBIC)
    x = np.asarray(canvas, dtype=np.float32) / 255.0
    return ((x - np.float32(mean)) / np.float32(std))[None]


# --------------------------------------------------------------------------------------------
# checkpoint
# --------------------------------------------------------------------------------------------
def _our_key(key: str) -> str | None:
    for src, dst in KEY_MAP:
        if key == src.rstrip(".") and src == dst:
            return dst
        if key.startswith(src) and src.endswith("."):
            return dst + key[len(src):]
    return None


def _list(keys: list[str], n: int = 8) -> str:
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def map_medclip_state_dict(state_dict: Mapping[str, torch.Tensor], model: MedCLIP) -> dict:
    """MedCLIP checkpoint ``state_dict`` -> a ``state_dict`` for ``model`` (every key mapped).

    Raises :class:`MedCLIPCheckpointError` listing the unmapped (extra), missing and mis-shaped
    keys if there are any. Derived buffers (see module docstring) are compared with the model's
    own values when those are real, then dropped.
    """
    if any(k.startswith("vision_model.model.conv1.") or k.startswith("vision_model.model.fc.")
           for k in state_dict):
        raise MedCLIPCheckpointError(
            "this is a MedCLIP-ResNet50 checkpoint (vision_model.model.conv1/fc keys); only "
            "MedCLIP-ViT (Swin) is supported -- use medclip-vit-pretrained.zip. " + HOW_TO_GET)
    ours = model.state_dict()
    buffers = dict(model.named_buffers())  # includes non-persistent ones
    mapped: dict[str, torch.Tensor] = {}
    extra, shape_bad, buffer_bad = [], [], []
    for key, value in state_dict.items():
        k = _our_key(key)
        if k is None:
            extra.append(key)
            continue
        if k not in ours:
            if any(p.search(k) for p in DERIVED_BUFFERS) and k in buffers:
                b = buffers[k]
                if b.is_meta:
                    continue  # shape-only tower: nothing to compare against
                if tuple(b.shape) != tuple(value.shape) and b.numel() == value.numel():
                    b = b.reshape(value.shape)  # older Swin kept it 2-D, newer flattens it
                if tuple(b.shape) != tuple(value.shape) or not torch.equal(b.to(value.dtype), value):
                    buffer_bad.append(key)
                continue
            extra.append(key)
            continue
        if tuple(ours[k].shape) != tuple(value.shape):
            shape_bad.append(f"{key} {tuple(value.shape)} (expected {tuple(ours[k].shape)})")
            continue
        mapped[k] = value
    # report missing keys in MedCLIP's names: that is what the user can look for in the file
    back = {dst: src for src, dst in KEY_MAP}

    def medclip_name(k: str) -> str:
        for dst, src in back.items():
            if dst.endswith(".") and k.startswith(dst):
                return src + k[len(dst):]
            if k == dst:
                return src
        return k

    missing = sorted(medclip_name(k) for k in ours
                     if k not in mapped and medclip_name(k) not in state_dict)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_list(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected: {_list(sorted(extra))}")
    if shape_bad:
        problems.append(f"{len(shape_bad)} with the wrong shape: {_list(shape_bad, 4)}")
    if buffer_bad:
        problems.append(f"{len(buffer_bad)} buffers that differ from the architecture's: "
                        f"{_list(buffer_bad, 4)}")
    if problems:
        raise MedCLIPCheckpointError(
            "the checkpoint does not match MedCLIP-ViT (Swin-tiny + Bio_ClinicalBERT, 512-d "
            "projections): " + "; ".join(problems) + ". Is it medclip-vit-pretrained.zip's "
            "pytorch_model.bin, and do the vision/text configs match it?")
    return mapped


def resolve_weights(weights: str | os.PathLike | None) -> Path:
    """The ``pytorch_model.bin`` (or ``.safetensors``) to load: ``weights`` if given, else
    ``$SEMALIGN_MEDCLIP_WEIGHTS``; a folder means its ``pytorch_model.bin``; a zip is unpacked
    once into ``<cache>/medclip/``."""
    raw = weights or os.environ.get(WEIGHTS_ENV)
    if not raw:
        raise EncoderError(f"MedCLIP weights not configured: {WEIGHTS_ENV} is not set. {HOW_TO_GET}")
    p = Path(raw).expanduser()
    if p.is_dir():
        cands = [p / WEIGHTS_NAME, p / "model.safetensors"]
        found = [c for c in cands if c.is_file()]
        if not found:
            raise EncoderError(f"MedCLIP weights: folder {p} has no {WEIGHTS_NAME}. {HOW_TO_GET}")
        return found[0]
    if not p.is_file():
        raise EncoderError(f"MedCLIP weights: {p} does not exist. {HOW_TO_GET}")
    if zipfile.is_zipfile(p) and not _is_torch_file(p):
        return _unzip_weights(p)
    return p


def _is_torch_file(p: Path) -> bool:
    """``torch.save`` writes a zip too: it is recognised by its ``<name>/data.pkl`` member."""
    with zipfile.ZipFile(p) as zf:
        return any(m.endswith("/data.pkl") or m == "data.pkl" for m in zf.namelist())


def _unzip_weights(zpath: Path) -> Path:
    from semalign._io import atomic_write
    from semalign.paths import cache_dir

    with zipfile.ZipFile(zpath) as zf:
        members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] == WEIGHTS_NAME]
        if len(members) != 1:
            raise EncoderError(f"MedCLIP weights: {zpath} should hold one {WEIGHTS_NAME}, found "
                               f"{len(members)}. {HOW_TO_GET}")
        st = zpath.stat()
        out = cache_dir() / "medclip" / f"{zpath.stem}-{st.st_size}-{st.st_mtime_ns}" / WEIGHTS_NAME
        if not out.is_file():
            with zf.open(members[0]) as src, atomic_write(out, "wb") as dst:
                for block in iter(lambda: src.read(1 << 20), b""):
                    dst.write(block)
    return out


def read_state_dict(path: Path) -> dict:
    """Tensors of a ``.bin``/``.pt`` (``torch.load``, weights only) or ``.safetensors`` file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any unreadable file gets the same advice
        raise EncoderError(f"MedCLIP weights: cannot read {path} as a torch state dict: {e}. "
                           f"{HOW_TO_GET}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise EncoderError(f"MedCLIP weights: {path} holds a {type(sd).__name__}, not a state dict")
    return sd


def _meta_prefixes(towers: tuple[str, ...]) -> tuple[str, ...]:
    out = ()
    if "vision" not in towers:
        out += ("vision.", "vision_projection.")
    if "text" not in towers:
        out += ("text.", "text_projection.")
    return out or ("\0",)


def load_medclip(weights: str | os.PathLike | None, vision_config: Any, text_config: Any,
                 towers: tuple[str, ...] = ("vision", "text"), proj_dim: int = PROJ_DIM) -> MedCLIP:
    """Build :class:`MedCLIP` from configs and load a MedCLIP checkpoint into it (strict)."""
    path = resolve_weights(weights)
    sd = read_state_dict(path)
    model = MedCLIP(vision_config, text_config, proj_dim=proj_dim, towers=towers)
    mapped = map_medclip_state_dict(sd, model)
    real = {k: v for k, v in mapped.items()
            if (k.startswith(("vision.", "vision_projection.")) and "vision" in towers)
            or (k.startswith(("text.", "text_projection.")) and "text" in towers)
            or k == "logit_scale"}
    result = model.load_state_dict(real, strict=False)
    # every real parameter must have been filled (the mapping already checked the keys)
    unfilled = [k for k in result.missing_keys if not k.startswith(_meta_prefixes(towers))]
    if unfilled or result.unexpected_keys:
        raise MedCLIPCheckpointError(f"internal: unfilled {unfilled[:5]}, unexpected "
                                     f"{result.unexpected_keys[:5]}")
    # drop the shape-only (meta) tower: it has no values and cannot be moved to a device
    if "vision" not in towers:
        model.vision = model.vision_projection = None
    if "text" not in towers:
        model.text = model.text_projection = None
    model.weights_path = path
    return model.eval()


# --------------------------------------------------------------------------------------------
# configs and tokenizer from hub parts
# --------------------------------------------------------------------------------------------
def _resolve(ref: str, what: str) -> tuple[str, dict]:
    """A hub id or local folder -> (source, from_pretrained kwargs), using the registry's rules
    (local folder, ``$SEMALIGN_MODELS_DIR/<org>/<name>``, then the hub)."""
    from semalign.encoders.hf import resolve_source

    source, local = resolve_source({"id": ref, "name": what})
    kw = {"local_files_only": True} if (not local and os.environ.get("HF_HUB_OFFLINE") == "1") else {}
    return source, kw


def _hub_error(ref: str, what: str, err: BaseException) -> EncoderError:
    return EncoderError(
        f"MedCLIP {what}: cannot load {ref!r} ({type(err).__name__}: {str(err).splitlines()[0][:160]}). "
        f"Download it (`huggingface-cli download {ref} --local-dir $SEMALIGN_MODELS_DIR/{ref}`) and "
        f"set SEMALIGN_MODELS_DIR, or give a local folder in the spec.")


def load_config(ref: Any, kind: str):
    """``ref``: a dict of config fields (``SwinConfig``/``BertConfig`` kwargs), a local folder or a
    hub id. ``kind``: "swin" or "bert"."""
    from transformers import AutoConfig, BertConfig, SwinConfig

    cls = {"swin": SwinConfig, "bert": BertConfig}[kind]
    if isinstance(ref, Mapping):
        return cls(**{k: v for k, v in ref.items() if k != "model_type"})
    source, kw = _resolve(str(ref), f"{kind} config")
    try:
        cfg = AutoConfig.from_pretrained(source, **kw)
    except (OSError, ValueError) as e:
        raise _hub_error(str(ref), f"{kind} config", e) from None
    if getattr(cfg, "model_type", None) != kind:
        raise EncoderError(f"MedCLIP: {ref} is a {cfg.model_type!r} model, a {kind!r} one is needed")
    return cfg


def load_tokenizer(ref: str, max_length: int = MAX_LENGTH):
    from transformers import AutoTokenizer

    source, kw = _resolve(str(ref), "tokenizer")
    try:
        tok = AutoTokenizer.from_pretrained(source, **kw)
    except (OSError, ValueError) as e:
        raise _hub_error(str(ref), "tokenizer", e) from None
    tok.model_max_length = max_length  # MedCLIP's processor sets 77
    return tok


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
class MedCLIPEncoder(Encoder):
    """One MedCLIP tower as a registry encoder; embeddings are L2-normalised 512-d projections
    (``normalize: false`` in the spec returns the raw projections)."""

    default_batch_size = 16

    def __init__(self, *args: Any, model: MedCLIP, tokenizer: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.model, self.tokenizer = model, tokenizer
        self.text_pooling = self.spec.get("text_pooling", "masked")
        self.normalize = bool(self.spec.get("normalize", True))
        self.max_length = int(self.spec.get("max_length") or MAX_LENGTH)
        self.image_size = (int(self.model.vision.config.image_size)
                           if self.model.vision is not None else IMG_SIZE)
        self._sha: str | None = None

    def fingerprint(self) -> dict:
        from semalign._io import sha256_file

        fp = super().fingerprint()
        if self._sha is None:
            self._sha = sha256_file(self.model.weights_path)
        fp.update(weights_sha256=self._sha, normalize=self.normalize,
                  preprocessing=({"text_pooling": self.text_pooling, "max_length": self.max_length}
                                 if self.modality == "text" else
                                 {"pad_square": True, "size": self.image_size, "resample": "bicubic",
                                  "mean": IMG_MEAN, "std": IMG_STD}))
        return fp

    def _embed_batch(self, batch: list) -> Any:
        dtype = next(self.model.parameters()).dtype
        if self.modality == "image":
            pix = np.stack([preprocess_image(x, size=self.image_size) for x in batch])
            vec = self.model.encode_image(torch.from_numpy(pix).to(self.device, dtype=dtype))
        else:
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
            vec = self.model.encode_text(enc["input_ids"].to(self.device),
                                         enc["attention_mask"].to(self.device),
                                         pooling=self.text_pooling)
        vec = vec.float()
        if self.normalize:
            vec = torch.nn.functional.normalize(vec, p=2, dim=-1)
        return vec


@register_kind("medclip")
def build(spec: dict, device: str) -> Encoder:
    """Build one MedCLIP tower (``modality: image`` or ``text``) from a registry spec.

    Spec fields: ``weights`` (else ``$SEMALIGN_MEDCLIP_WEIGHTS``); ``vision_config`` (dict of
    SwinConfig fields, hub id or folder; default Swin-tiny); ``text_config`` and ``tokenizer``
    (hub id or folder; default Bio_ClinicalBERT); ``proj_dim`` (512); ``text_pooling``
    (``masked`` | ``medclip-padded``); ``max_length`` (77); ``normalize`` (true).
    """
    spec = dict(spec)
    modality = spec.get("modality")
    if modality not in ("image", "text"):
        raise EncoderError(f"encoder {spec.get('name')!r}: kind medclip needs modality 'image' or "
                           f"'text' (one tower per registry entry)")
    if spec.get("text_pooling", "masked") not in TEXT_POOLINGS:
        raise EncoderError(f"encoder {spec.get('name')!r}: text_pooling must be one of {TEXT_POOLINGS}")
    resolve_weights(spec.get("weights"))  # fail on missing weights before any hub access
    vision_cfg = load_config(spec.get("vision_config") or {}, "swin")
    text_ref = spec.get("text_config") or TEXT_HUB
    text_cfg = load_config(text_ref, "bert")
    tokenizer = None
    if modality == "text":
        tokenizer = load_tokenizer(spec.get("tokenizer") or (text_ref if isinstance(text_ref, str)
                                                             else TEXT_HUB),
                                   int(spec.get("max_length") or MAX_LENGTH))
    proj_dim = int(spec.get("proj_dim") or PROJ_DIM)
    towers = ("vision",) if modality == "image" else ("text",)
    model = load_medclip(spec.get("weights"), vision_cfg, text_cfg, towers=towers, proj_dim=proj_dim)
    model.to(device=device, dtype=torch_dtype(spec.get("dtype", "float32")))
    if spec.get("dim") and int(spec["dim"]) != proj_dim:
        raise EncoderError(f"encoder {spec.get('name')!r}: dim {spec['dim']} != proj_dim {proj_dim}")
    spec["dim"] = proj_dim
    spec.setdefault("domain", "medical")
    return MedCLIPEncoder(spec.get("name", "medclip"), modality, spec["domain"], proj_dim,
                          spec=spec, device=device, dtype=spec.get("dtype", "float32"),
                          model=model, tokenizer=tokenizer)
