"""Kind ``ssl-vision``: a general ImageNet CNN continued self-supervised on SynthCXR training images.

The paper's medical vision model, RAD-DINO, is a general architecture (DINOv2) trained
*without labels* on chest X-rays. This stand-in is built the same way, at CPU scale: the
registry's ImageNet ``mobilenet-v2`` (:mod:`semalign.encoders.cnn`, its shipped weights) is
trained further on 2,000 SynthCXR training images of its own seed stream
(:data:`TRAIN_SEED` + seed, ids ``synthssl-…``; no task's test, train, anchor-pool or pair
image) with a self-supervised objective: no finding label, no report is read.

Recipe (:class:`Recipe`; the defaults are the registry entry ``standin-vision-ssl``):

* **Base: mobilenet-v2**, not efficientnet-lite0: 0.30 vs 0.39 GMACs per 224 px image and a
  plain ``features`` sequence (no TensorFlow "SAME" padding recomputed per call), so more
  steps fit the CPU budget. Its stem and first six inverted-residual blocks (``features[:7]``,
  the high-resolution part) stay frozen in eval mode: back-propagating through them is most of
  a step's cost and low-level filters transfer across domains. The rest trains, BatchNorm in
  train mode (its statistics adapt to radiographs).
* **Objective: SimCLR's NT-Xent** (Chen et al. 2020): two augmented views of each image,
  positives = the other view, negatives = the other ``2 * batch - 2`` views, cosine similarity
  over temperature 0.2 (MoCo v2's value, suited to small batches), through a 2-layer MLP
  projector (1280 -> 512 -> 128) that is thrown away afterwards. Chosen over RAD-DINO's own
  family (DINO self-distillation) and over SimSiam/BYOL because the negatives make it
  collapse-free with no teacher, centring or momentum schedule to tune, which matters for a
  short run at batch 64 on CPU; it is still label-free instance discrimination on radiographs.
* **Budget:** 112 px (half the generator's 224 px: a step is ~4x cheaper), 60 steps of 64
  images (128 views, about two passes over the 2,000 images), AdamW 3e-4 with 10 % linear
  warm-up then cosine decay, weight decay 1e-4. The step count is what the CPU budget allows,
  not a tuned value: a step costs about 3 s of one core (1.5-2 s on two idle cores), so 60
  steps plus rendering the images is about two minutes. Batch 64 rather than more, shorter
  steps: NT-Xent gets better with more negatives per step.
* **Augmentations** (pure torch, seeded by one ``torch.Generator``; :func:`augment`): random
  resized crop (area 35-100 %, aspect 3/4-4/3) with a small rotation (±10°) and translation
  (±5 %), sampled at twice the resolution and box-filtered by 2 (no aliasing); gamma, contrast
  and brightness jitter; Gaussian blur and Gaussian noise, each on half the views. These mimic
  what varies between radiographs of the same anatomy (exposure, positioning, noise). **No
  horizontal flip**: a chest film is lateralised (the heart is on the image right), and a flip
  would teach the encoder that a mirrored, dextrocardic film is the same image.

Embedding = the backbone's global-average-pooled 1280-channel map (not the projector's output)
at the training resolution: grey image resized to 224 px (PIL bilinear), box-filtered to
112 px, replicated to RGB, ImageNet mean/std — exactly the un-augmented view of training.

The fit is cached in ``$SEMALIGN_CACHE/standins/`` under a key made of the whole recipe, the
base weights' sha256, :data:`semalign.data.synthcxr.SYNTHCXR_VERSION`, the seed stream and
:data:`FIT_VERSION` (atomic write; a damaged or mismatching file is refitted, never used; one
process fits while the others wait on a lock). The encoder exposes ``fit_ids`` (the training
images) for :func:`semalign.encoders.standins.check_disjoint`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from semalign.encoders.base import Encoder, EncoderError, register_kind
from semalign.encoders.cnn import IMAGENET_MEAN, IMAGENET_STD, features
from semalign.encoders.standins import _digest, _fit_path, _load_fit, _prep, _save_npz

FIT_VERSION = 1  # bump when the training code changes what a recipe produces
TRAIN_SEED = 920_000  # SynthCXR seed stream of the training images (no task, pool or pair uses it)
ID_PREFIX = "synthssl"  # id prefix of the training images
_W = "w."  # prefix of the backbone's weights in the cached file (other keys: fit_ids, losses)


@dataclass(frozen=True)
class Augment:
    """Ranges of :func:`augment` (per view, uniform unless stated)."""

    scale: tuple[float, float] = (0.35, 1.0)  # crop area, fraction of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect (log-uniform)
    rotate_deg: float = 10.0  # ± rotation
    translate: float = 0.05  # ± shift, fraction of the side
    gamma: tuple[float, float] = (0.7, 1.4)  # x ** gamma (log-uniform)
    contrast: tuple[float, float] = (0.7, 1.3)  # around the view's mean
    brightness: float = 0.1  # ± offset
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.0)  # pixels at the output resolution
    noise_p: float = 0.5
    noise_std: tuple[float, float] = (0.0, 0.03)


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a fit (its cache key, with the base weights' sha256)."""

    base: str = "mobilenet-v2"  # a registry CNN (kind cnn) or a name in BASES
    n_train: int = 2000  # SynthCXR training images (own seed stream)
    steps: int = 60
    batch: int = 64  # images per step (2 views each)
    resolution: int = 112  # training and embedding side, pixels
    freeze: int = 7  # leading modules of the base's `features` kept frozen
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: float = 0.1  # fraction of the steps
    temperature: float = 0.2
    proj_hidden: int = 512
    proj_dim: int = 128
    seed: int = 0
    augment: Augment = field(default_factory=Augment)

    @classmethod
    def from_spec(cls, spec: dict) -> "Recipe":
        """The recipe of a registry entry: its fields given as top-level keys (``steps: 60``,
        ``augment: {rotate_deg: 5}``); unknown keys are ignored (they are the entry's own)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: spec[k] for k in names & set(spec) if k != "augment"}
        aug = spec.get("augment") or {}
        bad = set(aug) - {f.name for f in dataclasses.fields(Augment)}
        if bad:
            raise EncoderError(f"encoder {spec.get('name')!r}: unknown augment key(s) {sorted(bad)}")
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
        try:
            r = cls(**kw, augment=Augment(**aug))
        except TypeError as e:
            raise EncoderError(f"encoder {spec.get('name')!r}: bad recipe: {e}") from None
        for k in ("n_train", "steps", "batch", "resolution"):
            if not (isinstance(getattr(r, k), int) and getattr(r, k) >= 1):
                raise EncoderError(f"encoder {spec.get('name')!r}: {k} must be a whole number >= 1")
        if r.batch < 2:
            raise EncoderError(f"encoder {spec.get('name')!r}: batch must be >= 2 (NT-Xent needs negatives)")
        return r


def display_recipe(r: Recipe) -> dict[str, str | int]:
    """The recipe as the book shows it next to the encoder's name (short, readable values).
    The registry entry's ``recipe:`` must equal this for its own fit parameters (tested)."""
    a = r.augment
    return {
        "base": f"{r.base} (ImageNet weights), first {r.freeze} feature modules frozen",
        "data": f"{r.n_train:,} SynthCXR training images (own seed stream {TRAIN_SEED:,}+seed), no labels",
        "objective": f"SimCLR NT-Xent (temperature {r.temperature:g}), {r.proj_hidden}-{r.proj_dim} MLP projector",
        "steps": r.steps,
        "batch": r.batch,
        "resolution": f"{r.resolution} px",
        "seed": r.seed,
        "augmentations": (f"crop {a.scale[0]:.0%}-{a.scale[1]:.0%}, rotation ±{a.rotate_deg:g}°, shift "
                          f"±{a.translate:.0%}, gamma/contrast/brightness jitter, blur and noise (p "
                          f"{a.blur_p:g}/{a.noise_p:g}); no flip"),
    }


def train_ids(n_train: int = 2000, seed: int = 0) -> list[str]:
    """Ids of the SynthCXR images a fit with ``n_train`` and ``seed`` trains on."""
    return [f"{ID_PREFIX}-{TRAIN_SEED + seed}-{i:06d}" for i in range(n_train)]


# --------------------------------------------------------------------------------------------
# bases
# --------------------------------------------------------------------------------------------
#: Extra bases by name: ``name -> () -> (model, weights identity)``; the model has a
#: ``features`` ``nn.Sequential`` and ``forward_features(x) -> (n, dim)``. Registry CNNs
#: (kind ``cnn``) need no entry.
BASES: dict[str, Callable[[], tuple[Any, str]]] = {}


def load_base(name: str) -> tuple[Any, str]:
    """``(model, weights_sha256)`` of a base: a :data:`BASES` entry or a registry CNN, loaded
    by :mod:`semalign.encoders.cnn` (its ImageNet weights, strict keys) on the CPU."""
    if name in BASES:
        model, ident = BASES[name]()
    else:
        from semalign.encoders.base import get_encoder
        from semalign.encoders.cnn import CNNEncoder

        enc = get_encoder(name, device="cpu", dtype="float32")
        if not isinstance(enc, CNNEncoder):
            raise EncoderError(f"ssl-vision base {name!r} is not a registry CNN (kind cnn); use mobilenet-v2")
        model, ident = enc.model, enc.weights_sha256
    if not hasattr(model, "features") or not hasattr(model, "forward_features"):
        raise EncoderError(f"ssl-vision base {name!r} has no `features` sequence to freeze and train "
                           f"(supported: mobilenet-v2)")
    return model, ident


# --------------------------------------------------------------------------------------------
# augmentations and the objective (pure torch)
# --------------------------------------------------------------------------------------------
def _uniform(g, n: int, lo: float, hi: float):
    import torch

    return lo + (hi - lo) * torch.rand(n, generator=g)


def augment(x, g, aug: Augment = Augment(), out: int | None = None):
    """Random views of grey images ``x`` ``(n, 1, S, S)`` in [0, 1] -> ``(n, 1, out, out)`` in
    [0, 1] (``out`` defaults to ``S // 2``: sampled at ``S``, box-filtered by 2). Every draw
    comes from ``g`` (a CPU ``torch.Generator``), so a seed gives the same views."""
    import torch
    import torch.nn.functional as F

    n, _, s, _ = x.shape
    out = out or s // 2
    # random resized crop + rotation + shift, as one affine map of the output grid
    area = _uniform(g, n, *aug.scale)
    logr = _uniform(g, n, math.log(aug.ratio[0]), math.log(aug.ratio[1]))
    w = torch.sqrt(area * torch.exp(logr)).clamp(max=1.0)  # half-widths in [-1, 1] coordinates
    h = torch.sqrt(area / torch.exp(logr)).clamp(max=1.0)
    cx = (1 - w) * _uniform(g, n, -1, 1) + _uniform(g, n, -2 * aug.translate, 2 * aug.translate)
    cy = (1 - h) * _uniform(g, n, -1, 1) + _uniform(g, n, -2 * aug.translate, 2 * aug.translate)
    th = torch.deg2rad(_uniform(g, n, -aug.rotate_deg, aug.rotate_deg))
    theta = torch.stack([torch.stack([w * torch.cos(th), -h * torch.sin(th), cx], 1),
                         torch.stack([w * torch.sin(th), h * torch.cos(th), cy], 1)], 1).to(x)
    grid = F.affine_grid(theta, [n, 1, 2 * out, 2 * out], align_corners=False)
    v = F.avg_pool2d(F.grid_sample(x, grid.to(x.device), mode="bilinear", padding_mode="zeros",
                                   align_corners=False), 2)
    # exposure: gamma, contrast around the view's mean, brightness
    col = lambda t: t.to(v).view(n, 1, 1, 1)  # noqa: E731
    gamma = torch.exp(_uniform(g, n, math.log(aug.gamma[0]), math.log(aug.gamma[1])))
    v = v.clamp(0, 1) ** col(gamma)
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    v = (v - mean) * col(_uniform(g, n, *aug.contrast)) + mean + col(_uniform(g, n, -aug.brightness, aug.brightness))
    # Gaussian blur (separable, one kernel per view; sigma ~0 leaves the view as it is)
    sigma = _uniform(g, n, *aug.blur_sigma) * (torch.rand(n, generator=g) < aug.blur_p)
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-0.5 * (r[None] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).to(v)
    v = v.clamp(0, 1).view(1, n, out, out)
    v = F.conv2d(F.pad(v, (2, 2, 0, 0), mode="replicate"), k.view(n, 1, 1, 5), groups=n)
    v = F.conv2d(F.pad(v, (0, 0, 2, 2), mode="replicate"), k.view(n, 1, 5, 1), groups=n).view(n, 1, out, out)
    # Gaussian noise
    std = _uniform(g, n, *aug.noise_std) * (torch.rand(n, generator=g) < aug.noise_p)
    noise = torch.randn(n, 1, out, out, generator=g).to(v)
    return (v + col(std) * noise).clamp(0, 1)


def to_model_input(v):
    """Grey views ``(n, 1, H, W)`` in [0, 1] -> ``(n, 3, H, W)``, ImageNet mean/std."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=v.dtype, device=v.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=v.dtype, device=v.device).view(1, 3, 1, 1)
    return (v.expand(-1, 3, -1, -1) - mean) / std


def nt_xent(z1, z2, temperature: float = 0.2):
    """SimCLR's NT-Xent loss of paired projections ``z1``, ``z2`` ``(n, d)``: row ``i`` of
    ``z1`` must pick row ``i`` of ``z2`` (and vice versa) among the other ``2n - 1`` views."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def _source(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(n, H, W)`` -> uint8 ``(n, 1, size, size)``, resized as the encoder resizes."""
    out = np.empty((len(images), 1, size, size), np.uint8)
    for i in range(0, len(images), 256):
        out[i:i + 256] = np.rint(_prep(list(images[i:i + 256]), size) * 255)
    return out


def ssl_train(model, images: np.ndarray, recipe: Recipe, *, device: str = "cpu",
              progress: bool | None = None) -> list[float]:
    """Train ``model`` (a base, changed in place) self-supervised on uint8 grey ``images``
    ``(n, H, W)`` by ``recipe``; returns the loss of every step. ``progress``: a tqdm bar
    (None: only on a terminal)."""
    import torch
    from tqdm import tqdm

    r = recipe
    torch.manual_seed(r.seed)  # the projector's initialisation
    g = torch.Generator().manual_seed(r.seed)
    if not 0 <= r.freeze < len(model.features):
        raise EncoderError(f"ssl-vision: freeze={r.freeze} must leave at least one of the base's "
                           f"{len(model.features)} feature modules to train (0 to {len(model.features) - 1})")
    src = torch.from_numpy(_source(images, 2 * r.resolution))
    frozen, trained = model.features[:r.freeze], model.features[r.freeze:]
    model.to(device)
    for p in frozen.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        dim = model.eval().forward_features(to_model_input(torch.zeros(2, 1, r.resolution, r.resolution,
                                                                       device=device))).shape[1]
    nn = torch.nn
    proj = nn.Sequential(nn.Linear(dim, r.proj_hidden), nn.BatchNorm1d(r.proj_hidden), nn.ReLU(inplace=True),
                         nn.Linear(r.proj_hidden, r.proj_dim)).to(device)
    params = [p for p in trained.parameters() if p.requires_grad] + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=r.weight_decay)
    warm = max(1, round(r.warmup * r.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                              0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, r.steps - warm))))
    frozen.eval()  # frozen BatchNorm keeps its ImageNet statistics
    trained.train()
    proj.train()
    batch = min(r.batch, len(src))
    order = torch.randperm(len(src), generator=g)
    pos, losses = 0, []
    bar = tqdm(range(r.steps), desc="fit standin-vision-ssl", unit="step", disable=None if progress is None
               else not progress, leave=False)
    for _ in bar:
        if pos + batch > len(order):
            order, pos = torch.randperm(len(src), generator=g), 0
        x = src[order[pos:pos + batch]].float().div_(255)
        pos += batch
        views = augment(torch.cat([x, x]), g, r.augment, r.resolution).to(device)
        with torch.no_grad():
            h = frozen(to_model_input(views))
        z = proj(trained(h).mean(dim=(2, 3)))
        loss = nt_xent(z[:batch], z[batch:], r.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    for p in frozen.parameters():
        p.requires_grad_(True)
    return losses


def fit_ssl_vision(recipe: Recipe = Recipe(), *, device: str = "cpu", progress: bool | None = None,
                   base: tuple[Any, str] | None = None) -> dict[str, np.ndarray]:
    """Fit (or load from the cache) the stand-in: ``{"w.<name>": backbone weights, "fit_ids":
    training image ids, "losses": loss per step}``. Fitted on ``recipe.n_train`` SynthCXR
    images of seed ``TRAIN_SEED + recipe.seed`` (their labels are never read). ``base``: the
    ``(model, weights_sha256)`` of :func:`load_base`, if already loaded (it is trained in place)."""
    from semalign._io import file_lock
    from semalign.data.synthcxr import SYNTHCXR_VERSION, generate

    model, base_sha = base or load_base(recipe.base)
    ids = train_ids(recipe.n_train, recipe.seed)
    key = {"recipe": dataclasses.asdict(recipe), "base_weights": base_sha, "generator_version": SYNTHCXR_VERSION,
           "train_seed": TRAIN_SEED, "id_prefix": ID_PREFIX, "fit_version": FIT_VERSION}
    path = _fit_path("ssl-vision", key)
    if (d := _load_fit(path, ids)) is not None:
        return d
    with file_lock(path.with_suffix(".lock")):
        if (d := _load_fit(path, ids)) is not None:  # fitted by another process meanwhile
            return d
        b = generate(recipe.n_train, seed=TRAIN_SEED + recipe.seed, size=224, id_prefix=ID_PREFIX)
        if list(b.labels["id"]) != ids:
            raise EncoderError("ssl-vision: SynthCXR ids of the training images changed; update train_ids")
        losses = ssl_train(model, b.images, recipe, device=device, progress=progress)
        d = {_W + k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
        d.update(fit_ids=np.array(ids, dtype=str), losses=np.array(losses, np.float32))
        _save_npz(path, d)
    return d


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
class SSLVisionEncoder(Encoder):
    """The self-supervised backbone's global-average-pooled features at the training resolution."""

    default_batch_size = 64

    def __init__(self, *a: Any, model: Any, recipe: Recipe, fit: dict[str, np.ndarray], **kw: Any):
        super().__init__(*a, **kw)
        from semalign.encoders.base import torch_dtype

        self.recipe, self.model = recipe, model.eval().to(self.device, dtype=torch_dtype(self.dtype))
        #: ids of the SynthCXR training images (own seed stream)
        self.fit_ids: frozenset[str] = frozenset(fit["fit_ids"].tolist())
        self._sha = weights_sha256(fit)

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "weights_sha256": self._sha, "pooling": "global-average",
                "recipe": dataclasses.asdict(self.recipe),
                "preprocessing": f"grey, resize {2 * self.recipe.resolution} bilinear, box filter /2, "
                                 f"rgb, imagenet mean/std"}

    def _pixels(self, batch: list):
        import torch
        import torch.nn.functional as F

        x = F.avg_pool2d(torch.from_numpy(_prep(batch, 2 * self.recipe.resolution)), 2)
        return to_model_input(x).to(self.device, dtype=next(self.model.parameters()).dtype)

    def _embed_batch(self, batch: list):
        return features(self.model, self._pixels(batch)).float()


def weights_sha256(fit: dict[str, np.ndarray]) -> str:
    """sha256 of a fit's backbone weights (what the embeddings depend on)."""
    return _digest({k: v for k, v in fit.items() if k.startswith(_W)})


@register_kind("ssl-vision")
def build(spec: dict, device: str) -> Encoder:
    import torch

    recipe = Recipe.from_spec(spec)
    model, sha = load_base(recipe.base)
    fit = fit_ssl_vision(recipe, device=device, base=(model, sha))
    model.load_state_dict({k[len(_W):]: torch.from_numpy(np.array(v)) for k, v in fit.items() if k.startswith(_W)},
                          strict=True)
    with torch.no_grad():
        dim = model.eval().cpu().forward_features(to_model_input(torch.zeros(1, 1, 32, 32))).shape[1]
    return SSLVisionEncoder.from_spec({**spec, "dim": dim, "recipe": display_recipe(recipe)}, device=device,
                                      model=model, recipe=recipe, fit=fit)
