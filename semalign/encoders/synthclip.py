"""Kind ``synthclip``: a MedCLIP-like image–text model trained here — the offline Fig. 4 baseline.

Fig. 4 compares the paper's method with the standard zero-shot of multimodal models. No
registry package ships CLIP or MedCLIP weights, so the offline profile trains its own
two-tower model, contrastively, on SynthCXR *training* image–report pairs, and scores it with
the same standard zero-shot (:func:`semalign.zeroshot.standard_zeroshot`) as MedCLIP.

What it shares with MedCLIP (Wang et al., EMNLP 2022): an image tower and a text tower, each
projected into a joint space, trained on chest X-ray image–report pairs with a contrastive
image–text objective and a learned temperature; zero-shot by cosine similarity between an
image and the class prompts. What it is **not**: MedCLIP is a Swin-tiny image tower and a
BioClinicalBERT text tower, trained on MIMIC-CXR and CheXpert (some 200k images) with its
*semantic matching* loss (soft targets from the findings of each report, so two reports with
the same findings are not pushed apart). ``synthclip`` is:

* image tower — a general registry CNN (``mobilenet-v2`` or ``efficientnet-lite0``, ImageNet
  weights from its wheel, loaded by :mod:`semalign.encoders.cnn`) at ``resolution`` px (128 by
  default: the CPU budget), its stride-32 stages and head convolution fine-tuned (the earlier
  layers frozen: their features are computed once), global-average pooled, then a linear
  projection to ``proj_dim``;
* text tower — the registry's ``minilm-l6``, frozen (LiT-style: the reports are embedded
  once), then a trainable linear projection to ``proj_dim``;
* objective — CLIP's symmetric InfoNCE (image→text and text→image cross-entropy over a batch)
  with a learned temperature (initialised at 0.07, logit scale capped at 100 as in CLIP). No
  label is used anywhere: a report with the same findings as another is a negative;
* data — ``n_pairs`` SynthCXR image–report pairs from their own seed stream
  (``TRAIN_SEED + seed``, ids ``synthclip-…``): none is a task's test, train or pool image, nor
  one of the ``synthcxr-pairs`` (stream ``50_000 + seed``) that Fig. 4 uses as the paper's
  anchors. The images are generated at 224 px (the tasks' size) and go through the same
  preprocessing as at inference. No augmentation.

Fitted once and cached in ``$SEMALIGN_CACHE/standins/`` under a key made of the whole recipe,
both base encoders' fingerprints (weights sha256) and the SynthCXR generator version (atomic
write; a damaged file is refitted, never used). The encoders expose ``fit_ids`` (the training
pairs' ids), so :func:`semalign.encoders.standins.check_disjoint` can refuse any overlap with a
test set. Optimiser: AdamW (weight decay 0.01, torch's default), learning rate ``lr_tower`` for
the pretrained CNN stages (fine-tuning) and ``lr_head`` for the new projections and the
temperature; batch ``batch`` (the last incomplete batch of an epoch is dropped, so every step
sees ``batch - 1`` negatives); BatchNorm statistics stay ImageNet's (eval mode). These are
standard CLIP fine-tuning settings chosen before any result was seen, not tuned.
"""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any, Sequence

import numpy as np

from semalign.encoders.base import Encoder, EncoderError, register_kind
from semalign.encoders.standins import _digest, _fit_path, _load_npz, _save_npz
from semalign.paths import fits_dir

__all__ = ["DEFAULTS", "TRAIN_SEED", "ID_PREFIX", "train_ids", "training_pairs", "info_nce",
           "train_contrastive", "fit_synthclip", "SynthClipImageEncoder", "SynthClipTextEncoder"]

FIT_VERSION = 1  # part of the cache key: bump when the fitting code changes its numbers
TRAIN_SEED = 930_000  # SynthCXR seed stream of the training pairs (no task, pool or pair set uses it)
ID_PREFIX = "synthclip"

#: The recipe (spec keys of a ``synthclip`` registry entry; defaults of :func:`fit_synthclip`).
DEFAULTS: dict[str, Any] = dict(image_base="mobilenet-v2", text_base="minilm-l6", n_pairs=2048, resolution=128,
                                proj_dim=256, epochs=5, batch=128, lr_tower=1e-4, lr_head=1e-3, weight_decay=0.01,
                                temperature=0.07, seed=0)

#: Where each supported CNN's fine-tuned part starts: (module list, first trainable index) —
#: the stride-32 stages (the last two) and the 1x1 head convolution.
_TAIL = {"mobilenet-v2": ("features", 14), "efficientnet-lite0": ("_blocks", 11)}
_META = ("fit_ids", "loss", "fit_cpu_seconds", "fit_wall_seconds")  # stored with a fit, not weights
_MAX_LOGIT_SCALE = math.log(100.0)


def train_ids(n_pairs: int = DEFAULTS["n_pairs"], seed: int = 0) -> list[str]:
    """Ids of the SynthCXR pairs the model is trained on (a function of its recipe)."""
    return [f"{ID_PREFIX}-{TRAIN_SEED + seed}-{i:06d}" for i in range(int(n_pairs))]


def training_pairs(n_pairs: int = DEFAULTS["n_pairs"], seed: int = 0, size: int = 224):
    """The training pairs: a :class:`semalign.data.synthcxr.SynthBatch` of ``n_pairs`` images and
    reports at the default prevalence, from the stream ``TRAIN_SEED + seed``."""
    from semalign.data.synthcxr import generate

    b = generate(int(n_pairs), seed=TRAIN_SEED + int(seed), size=size, id_prefix=ID_PREFIX)
    if list(b.labels["id"]) != train_ids(n_pairs, seed):
        raise EncoderError("synthclip: SynthCXR ids of the training pairs changed; update train_ids")
    return b


# --------------------------------------------------------------------------------------------
# the objective and the training loop (tower-agnostic: the tests train tiny towers with it)
# --------------------------------------------------------------------------------------------
def info_nce(z_img, z_txt, logit_scale):
    """CLIP's symmetric InfoNCE of a batch of paired rows ``(b, d)``, ``(b, d)`` (L2-normalised
    here): mean of the image→text and text→image cross-entropies of the logits
    ``exp(logit_scale) * z_img @ z_txt.T``, the pair of row i being the target of row i."""
    import torch
    import torch.nn.functional as F

    zi, zt = F.normalize(z_img, dim=-1), F.normalize(z_txt, dim=-1)
    logits = logit_scale.exp() * zi @ zt.T
    target = torch.arange(len(zi), device=zi.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def train_contrastive(image_tower, text_tower, x_img, x_txt, *, epochs: int, batch: int,
                      param_groups: Sequence[dict] | None = None, lr: float = 1e-3, weight_decay: float = 0.01,
                      temperature: float = 0.07, seed: int = 0, progress: bool = False) -> tuple[float, list[float]]:
    """Train two towers (``nn.Module``: batch of inputs -> joint-space rows) on paired inputs
    ``x_img[i]`` / ``x_txt[i]`` (tensors, one row per pair) with :func:`info_nce` and a learned
    temperature. ``param_groups``: AdamW groups (default: every parameter of both towers at
    ``lr``); the temperature joins at ``lr`` without weight decay. Batches are a seeded
    permutation per epoch; an epoch's last incomplete batch is dropped (one batch of all pairs
    when there are fewer than ``batch``). The towers' train/eval mode is the caller's.
    Returns ``(logit_scale, per-step losses)``."""
    import torch
    from tqdm.auto import tqdm

    n = len(x_img)
    if n != len(x_txt) or n < 2:
        raise EncoderError(f"train_contrastive: {n} images and {len(x_txt)} texts; need as many of each, at least 2")
    device = x_img.device
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1.0 / temperature), device=device))
    groups = [dict(g) for g in param_groups] if param_groups else [
        {"params": [*image_tower.parameters(), *text_tower.parameters()]}]
    opt = torch.optim.AdamW([*groups, {"params": [logit_scale], "weight_decay": 0.0}], lr=lr,
                            weight_decay=weight_decay)
    g = torch.Generator().manual_seed(int(seed))
    b = min(int(batch), n)
    steps = epochs * (n // b)
    losses: list[float] = []
    with tqdm(total=steps, desc="fit synthclip", disable=not progress, leave=False) as bar:
        for _ in range(int(epochs)):
            perm = torch.randperm(n, generator=g).to(device)
            for i in range(0, n - b + 1, b):
                idx = perm[i:i + b]
                loss = info_nce(image_tower(x_img[idx]), text_tower(x_txt[idx]), logit_scale)
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    logit_scale.clamp_(0.0, _MAX_LOGIT_SCALE)
                losses.append(float(loss.detach()))
                bar.update(1)
    return float(logit_scale.detach()), losses


# --------------------------------------------------------------------------------------------
# the real towers
# --------------------------------------------------------------------------------------------
def _split(model: Any, arch: str):
    """``(frozen trunk, trainable tail)`` of a registry CNN: ``trunk(x)`` is the feature map
    before the stride-32 stages, ``tail(h)`` the pooled 1280-d features after them."""
    import torch
    from torch import nn

    if arch not in _TAIL:
        raise EncoderError(f"synthclip: image_base arch {arch!r} not supported; use one of {sorted(_TAIL)}")
    k = _TAIL[arch][1]
    F = torch.nn.functional
    if arch == "mobilenet-v2":
        trunk = model.features[:k]
        tail_mods = nn.ModuleList([model.features[k:]])

        def tail(h):
            return model.features[k:](h).mean(dim=(2, 3))
    else:  # efficientnet-lite0: stem, blocks[:k] | blocks[k:], head conv
        def trunk(x):
            x = F.relu6(model._bn0(model._conv_stem(x)))
            for blk in model._blocks[:k]:
                x = blk(x)
            return x
        tail_mods = nn.ModuleList([*model._blocks[k:], model._conv_head, model._bn1])

        def tail(h):
            for blk in model._blocks[k:]:
                h = blk(h)
            return F.relu6(model._bn1(model._conv_head(h))).mean(dim=(2, 3))
    return trunk, tail, tail_mods


def _tail_state(model: Any, arch: str) -> dict[str, Any]:
    """The fine-tuned part of ``model``'s state dict (keys of the full model)."""
    where, k = _TAIL[arch]
    keep = [f"{where}.{i}." for i in range(k, len(getattr(model, where)))]
    keep += ["_conv_head.", "_bn1."] if arch != "mobilenet-v2" else []
    return {n: v for n, v in model.state_dict().items() if any(n.startswith(p) for p in keep)}


def _pixels(images: Sequence, resolution: int, device: str):
    import torch

    from semalign.encoders.cnn import preprocess

    return torch.from_numpy(np.stack([preprocess(im, resolution, resolution) for im in images])).to(device)


def _base(name: str, modality: str, device: str) -> Encoder:
    """A base tower from the registry, in float32 (it is trained or fed to training)."""
    from semalign.encoders.base import get_encoder

    enc = get_encoder(name, device=device, dtype="float32")
    if modality == "image" and (getattr(enc, "spec", {}).get("kind") != "cnn" or not hasattr(enc, "model")):
        raise EncoderError(f"synthclip: image_base {name!r} must be a registry CNN (kind cnn: "
                           f"{', '.join(sorted(_TAIL))})")
    if str(enc.modality) != modality:
        raise EncoderError(f"synthclip: {modality}_base {name!r} is not an {modality} encoder")
    return enc


def _recipe(params: dict) -> dict:
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise EncoderError(f"synthclip: unknown recipe parameter(s) {unknown}; known: {', '.join(DEFAULTS)}")
    r = {**DEFAULTS, **params}
    ints = ("n_pairs", "resolution", "proj_dim", "epochs", "batch", "seed")
    return {k: (int(v) if k in ints else float(v) if isinstance(v, (int, float)) else str(v)) for k, v in r.items()}


def fit_synthclip(device: str = "cpu", progress: bool = False, **params: Any) -> dict[str, np.ndarray]:
    """Fit (or load from the cache) the synthclip towers; ``params``: the recipe (see
    :data:`DEFAULTS`). Returns the fitted arrays: ``tail.<state key>`` (the fine-tuned CNN
    stages), ``img_proj`` ``(proj_dim, 1280)``, ``txt_proj`` ``(proj_dim, d_text)``,
    ``logit_scale``, and, not part of the weights, ``fit_ids``, ``loss`` (per step) and the fit's
    CPU / wall seconds."""
    from semalign._io import file_lock
    from semalign.data.synthcxr import SYNTHCXR_VERSION

    r = _recipe(params)
    img_enc, txt_enc = _base(r["image_base"], "image", device), _base(r["text_base"], "text", device)
    arch = str(img_enc.spec.get("arch"))
    key = {"kind": "synthclip", "v": FIT_VERSION, **r, "image_fingerprint": img_enc.fingerprint(),
           "text_fingerprint": txt_enc.fingerprint(), "generator_version": SYNTHCXR_VERSION}
    path = _fit_path("synthclip", key)  # key holds its own kind and version
    if (d := _load_npz(path)) is not None:
        return d
    with file_lock(path.with_suffix(".lock")):
        if (d := _load_npz(path)) is not None:  # fitted by another process meanwhile
            return d
        d = _fit(img_enc, txt_enc, arch, r, device, progress)
        _save_npz(path, d)
    return d


def _fit(img_enc, txt_enc, arch: str, r: dict, device: str, progress: bool) -> dict[str, np.ndarray]:
    import torch
    from torch import nn

    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(r["seed"])
    pairs = training_pairs(r["n_pairs"], r["seed"])
    model = img_enc.model.float().eval()
    trunk, tail, tail_mods = _split(model, arch)
    with torch.inference_mode():
        h = torch.cat([trunk(_pixels(pairs.images[i:i + 64], r["resolution"], device))
                       for i in range(0, len(pairs.images), 64)])
    h = h.clone()  # out of inference mode: the trainable tail is fed from it
    t = torch.from_numpy(txt_enc.embed(pairs.reports, progress=progress)).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in tail_mods.parameters():
        p.requires_grad_(True)
    img_proj = nn.Linear(1280, r["proj_dim"], bias=False).to(device)
    txt_proj = nn.Linear(t.shape[1], r["proj_dim"], bias=False).to(device)

    class ImageTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.tail, self.proj = tail_mods, img_proj

        def forward(self, x):
            return self.proj(tail(x))

    groups = [{"params": list(tail_mods.parameters()), "lr": r["lr_tower"]},
              {"params": [*img_proj.parameters(), *txt_proj.parameters()], "lr": r["lr_head"]}]
    scale, losses = train_contrastive(ImageTower(), txt_proj, h, t, epochs=r["epochs"], batch=r["batch"],
                                      param_groups=groups, lr=r["lr_head"], weight_decay=r["weight_decay"],
                                      temperature=r["temperature"], seed=r["seed"], progress=progress)
    model.eval()
    d = {f"tail.{k}": v.detach().cpu().numpy().copy() for k, v in _tail_state(model, arch).items()}
    d.update(img_proj=img_proj.weight.detach().cpu().numpy().copy(),
             txt_proj=txt_proj.weight.detach().cpu().numpy().copy(),
             logit_scale=np.array([scale], np.float32), loss=np.array(losses, np.float32),
             fit_ids=np.array(train_ids(r["n_pairs"], r["seed"]), dtype=str),
             fit_cpu_seconds=np.array([time.process_time() - c0]), fit_wall_seconds=np.array([time.perf_counter() - t0]))
    return d


def _weights_digest(fit: dict[str, np.ndarray]) -> str:
    return _digest({k: v for k, v in fit.items() if k not in _META})


class _SynthClip(Encoder):
    """Shared by the two towers: the fit, its digest and ``fit_ids``."""

    def __init__(self, *a: Any, fit: dict[str, np.ndarray], base: Encoder, recipe: dict, **kw: Any):
        super().__init__(*a, **kw)
        self._fit, self.base, self.recipe = fit, base, recipe
        self._sha = _weights_digest(fit)
        #: ids of the SynthCXR image–report pairs the model was trained on (its own seed stream)
        self.fit_ids: frozenset[str] = frozenset(fit["fit_ids"].tolist())

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "weights_sha256": self._sha, "recipe": self.recipe,
                "base": self.base.fingerprint()}

    def _project(self, x, key: str):
        import torch

        w = torch.from_numpy(self._fit[key]).to(x.device)
        return torch.nn.functional.normalize(x.float() @ w.T, dim=-1)


class SynthClipImageEncoder(_SynthClip):
    """Image tower: the fine-tuned CNN at ``resolution`` px -> pooled 1280-d -> projection, L2-normalised."""

    default_batch_size = 64

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        import torch

        arch = str(self.base.spec.get("arch"))
        self.model = self.base.model
        state = {k[5:]: torch.from_numpy(np.array(v)) for k, v in self._fit.items() if k.startswith("tail.")}
        if set(state) != set(_tail_state(self.model, arch)):
            raise EncoderError(f"{self.name}: the cached fit does not match the {arch} definition; delete it "
                               f"from {fits_dir()} to refit")
        self.model.load_state_dict(state, strict=False)
        self.model.eval()
        self.resolution = int(self.recipe["resolution"])

    def _embed_batch(self, batch: list):
        x = _pixels(batch, self.resolution, self.device).to(dtype=next(self.model.parameters()).dtype)
        from semalign.encoders.cnn import features

        return self._project(features(self.model, x), "img_proj")


class SynthClipTextEncoder(_SynthClip):
    """Text tower: the frozen base sentence encoder -> projection, L2-normalised."""

    default_batch_size = 128

    def _embed_batch(self, batch: list):
        import torch

        return self._project(torch.from_numpy(self.base.embed(batch, progress=False)).to(self.device), "txt_proj")


@functools.lru_cache(maxsize=4)
def _fit_cached(device: str, recipe_json: str) -> dict[str, np.ndarray]:
    # both towers of one recipe in one process share a single load of the fitted arrays
    return fit_synthclip(device=device, **json.loads(recipe_json))


@register_kind("synthclip")
def build(spec: dict, device: str) -> Encoder:
    """One tower of the model (``modality: image`` or ``text``); the recipe is the spec's ``fit:``
    mapping (keys of :data:`DEFAULTS`)."""
    r = _recipe(dict(spec.get("fit") or {}))
    fit = _fit_cached(device, json.dumps(r, sort_keys=True))
    modality = "image" if str(spec.get("modality", "image")) in ("image", "vision") else "text"
    cls = SynthClipImageEncoder if modality == "image" else SynthClipTextEncoder
    base = _base(r[f"{modality}_base"], modality, device)
    return cls.from_spec({**spec, "dim": r["proj_dim"]}, device=device, fit=fit, base=base, recipe=r)
