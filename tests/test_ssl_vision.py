"""The self-supervised medical vision stand-in (kind ``ssl-vision``): augmentations, NT-Xent,
the cached fit (on a tiny CNN and tiny images), leakage guards and the registry entry."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest

from semalign.encoders import EncoderError, encoder_specs, get_encoder
from semalign.encoders import ssl_vision as V
from semalign.encoders.standins import FitOverlapError, check_disjoint, fits_dir

torch = pytest.importorskip("torch")
nn = torch.nn

IDENTITY = V.Augment(scale=(1.0, 1.0), ratio=(1.0, 1.0), rotate_deg=0.0, translate=0.0, gamma=(1.0, 1.0),
                     contrast=(1.0, 1.0), brightness=0.0, blur_p=0.0, noise_p=0.0)


class Tiny(nn.Module):
    """A base with the interface of cnn.py's models: ``features`` and ``forward_features``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)

        def block(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

        self.features = nn.Sequential(block(3, 8, 2), block(8, 16, 2), block(16, 16, 1))

    def forward_features(self, x):
        return self.features(x).mean(dim=(2, 3))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and on a shared machine two OpenMP threads per
    process can be many times slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny(monkeypatch):
    """Register base "tiny" (weights identity "tiny-v1") and return a small recipe on it."""
    monkeypatch.setitem(V.BASES, "tiny", lambda: (Tiny(), "tiny-v1"))
    return V.Recipe(base="tiny", n_train=24, steps=3, batch=8, resolution=16, freeze=1, proj_hidden=16,
                    proj_dim=8, lr=3e-3)


def _fits() -> list:
    return sorted(fits_dir().glob("ssl-vision-*.npz"))


# --------------------------------------------------------------------------------------------
# augmentations
# --------------------------------------------------------------------------------------------
def _images(n=6, s=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, 1, s, s), dtype=np.float32))


def test_augment_keeps_shape_and_range_and_is_seed_deterministic():
    x = _images()
    a = V.augment(x, torch.Generator().manual_seed(1))
    b = V.augment(x, torch.Generator().manual_seed(1))
    c = V.augment(x, torch.Generator().manual_seed(2))
    assert a.shape == (6, 1, 16, 16) and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert V.augment(x, torch.Generator().manual_seed(1), out=8).shape == (6, 1, 8, 8)


def test_augment_with_no_randomness_is_the_encoders_own_downsampling():
    # identity ranges: the view is the image box-filtered by 2, as the encoder preprocesses it
    x = _images()
    v = V.augment(x, torch.Generator().manual_seed(0), IDENTITY)
    np.testing.assert_allclose(v.numpy(), torch.nn.functional.avg_pool2d(x, 2).numpy(), atol=1e-5)


def test_augment_crops_the_area_it_is_given():
    # a horizontal ramp: a square crop of a quarter of the area spans half of the ramp
    s = 64
    ramp = torch.linspace(0, 1, s).expand(5, 1, s, s).contiguous()
    aug = dataclasses.replace(IDENTITY, scale=(0.25, 0.25))
    v = V.augment(ramp, torch.Generator().manual_seed(3), aug)
    span = (v[:, 0].mean(1).amax(1) - v[:, 0].mean(1).amin(1)).numpy()
    np.testing.assert_allclose(span, 0.5, atol=2.5 / s)
    assert len({round(float(x), 3) for x in v[:, 0, 0, 0]}) > 1  # at random places


# --------------------------------------------------------------------------------------------
# the objective
# --------------------------------------------------------------------------------------------
def test_nt_xent_known_answer_on_identical_orthogonal_views():
    n, tau = 4, 0.5
    z = torch.eye(n, 8)
    # positive similarity 1/tau, the 2n-2 negatives 0
    want = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2))
    assert float(V.nt_xent(z, z.clone(), tau)) == pytest.approx(want, rel=1e-5)


def test_nt_xent_identical_views_beat_random_views():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(32, 64, generator=g)
    same = float(V.nt_xent(z1, z1.clone(), 0.2))
    rand = float(V.nt_xent(z1, torch.randn(32, 64, generator=g), 0.2))
    assert same < 0.5 < math.log(63) - 1 < rand  # random pairs: about log(2n - 1)


# --------------------------------------------------------------------------------------------
# the fit (tiny base, tiny images)
# --------------------------------------------------------------------------------------------
def test_training_loss_decreases_on_a_toy_set():
    # 16 distinct smooth patterns: views of one pattern can be told from the others, so the
    # contrastive loss must fall well below its start (about log(2 * 16 - 1) = 3.4)
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = np.stack([np.asarray(Image.fromarray((rng.random((3, 3)) * 255).astype(np.uint8)).resize(
        (32, 32), Image.BILINEAR)) for _ in range(16)])
    r = V.Recipe(base="tiny", n_train=16, steps=60, batch=16, resolution=16, freeze=1, proj_hidden=16, proj_dim=8,
                 lr=3e-3)
    model = Tiny()
    before = [p.detach().clone() for p in model.features[0].parameters()]
    losses = np.array(V.ssl_train(model, imgs, r, progress=False))
    assert len(losses) == 60 and np.isfinite(losses).all()
    assert losses[:8].mean() > 2.8 and losses[-8:].mean() < losses[:8].mean() - 0.6
    # the frozen module did not move; the others did
    assert all(torch.equal(a, b) for a, b in zip(before, model.features[0].parameters()))
    assert not torch.equal(Tiny().features[2][0].weight, model.features[2][0].weight)


def test_fit_is_cached_and_keyed_by_the_recipe_and_the_base_weights(tiny, monkeypatch):
    d1 = V.fit_ssl_vision(tiny, progress=False)
    (path,) = _fits()
    mtime = path.stat().st_mtime_ns
    d2 = V.fit_ssl_vision(tiny, progress=False)
    assert path.stat().st_mtime_ns == mtime and V.weights_sha256(d1) == V.weights_sha256(d2)
    V.fit_ssl_vision(dataclasses.replace(tiny, steps=4), progress=False)
    V.fit_ssl_vision(dataclasses.replace(tiny, augment=dataclasses.replace(tiny.augment, rotate_deg=5.0)),
                     progress=False)
    assert len(_fits()) == 3
    monkeypatch.setitem(V.BASES, "tiny", lambda: (Tiny(), "tiny-v2"))  # other base weights
    V.fit_ssl_vision(tiny, progress=False)
    assert len(_fits()) == 4
    monkeypatch.setattr("semalign.data.synthcxr.SYNTHCXR_VERSION", 999)  # a new generator
    V.fit_ssl_vision(tiny, progress=False)
    assert len(_fits()) == 5


def test_a_damaged_cache_is_refitted_never_used(tiny):
    d1 = V.fit_ssl_vision(tiny, progress=False)
    (path,) = _fits()
    path.write_bytes(path.read_bytes()[:200])  # truncated
    d2 = V.fit_ssl_vision(tiny, progress=False)
    assert path.stat().st_size > 200
    assert d2["fit_ids"].tolist() == d1["fit_ids"].tolist() and d2.keys() == d1.keys()
    for k in d1:  # refitted by the same process with the same seed: the same fit
        if k != "fit_ids":
            np.testing.assert_allclose(d2[k], d1[k], atol=1e-6)
    # a readable file that claims other training images is refitted too
    from semalign.encoders.standins import _load_npz, _save_npz

    bad = _load_npz(path)
    bad["fit_ids"] = np.array(["synthcxr-pneumonia-test-7920-000000"] * len(bad["fit_ids"]))
    _save_npz(path, bad)
    d3 = V.fit_ssl_vision(tiny, progress=False)
    assert d3["fit_ids"].tolist() == V.train_ids(tiny.n_train, tiny.seed)


def test_fit_ids_are_the_images_it_trained_on_and_no_task_image(tiny):
    from semalign.data import get_task
    from semalign.data.synthcxr import generate

    d = V.fit_ssl_vision(tiny, progress=False)
    fit_ids = set(d["fit_ids"].tolist())
    assert fit_ids == set(V.train_ids(tiny.n_train)) and len(fit_ids) == tiny.n_train
    trained = generate(tiny.n_train, seed=V.TRAIN_SEED, size=224, id_prefix=V.ID_PREFIX)
    assert set(trained.labels["id"]) == fit_ids
    digest = lambda a: hashlib.sha256(a.tobytes()).hexdigest()  # noqa: E731
    seen = {digest(a) for a in trained.images}
    for name in ("synthcxr-pneumonia", "synthcxr-vindr-cardiomegaly"):
        t = get_task(name, n_train_per_class=4, n_test_per_class=4, n_pool=tiny.n_train)
        for part in (t.test, t.train, t.anchors):
            assert not fit_ids & set(part["id"])
            assert not seen & {digest(a) for a in part["input"]}  # no test/train/pool image either


def test_fit_refuses_a_recipe_that_trains_nothing(tiny):
    with pytest.raises(EncoderError, match="freeze=3"):
        V.fit_ssl_vision(dataclasses.replace(tiny, freeze=3), progress=False)


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
def _small_overrides(tiny) -> dict:
    return {k: getattr(tiny, k) for k in ("base", "n_train", "steps", "batch", "resolution", "freeze",
                                          "proj_hidden", "proj_dim", "lr")}


def test_encoder_embeds_with_its_fitted_weights_and_guards_its_training_images(tiny, tmp_path):
    from PIL import Image

    from semalign.data import get_task
    from semalign.data.synthcxr import generate

    enc = get_encoder("standin-vision-ssl", device="cpu", **_small_overrides(tiny))
    assert enc.dim == 16 and enc.domain == "medical (stand-in)" and str(enc.modality) == "image"
    assert enc.spec["recipe"] == V.display_recipe(tiny) and enc.spec["recipe"]["steps"] == 3
    b = generate(3, seed=321, size=224)
    p = tmp_path / "x.png"
    Image.fromarray(b.images[0]).save(p)
    e = enc.embed([b.images[0], b.images[1], str(p)], progress=False)
    assert e.shape == (3, 16) and e.dtype == np.float32 and np.isfinite(e).all()
    np.testing.assert_allclose(e[0], e[2], atol=1e-5)
    assert not np.allclose(e[0], e[1])
    # the embedding is the fitted backbone's, not the base's initialisation
    base = Tiny().eval()
    with torch.no_grad():
        x = enc._pixels([b.images[0]])
        assert not np.allclose(base.forward_features(x).numpy()[0], e[0], atol=1e-4)
    fp = enc.fingerprint()
    assert fp["weights_sha256"] == V.weights_sha256(V.fit_ssl_vision(tiny, progress=False))
    other = get_encoder("standin-vision-ssl", device="cpu", **{**_small_overrides(tiny), "steps": 4})
    assert other.fingerprint()["weights_sha256"] != fp["weights_sha256"]
    # leakage guard: fine on a task's test ids, refused on its own training images
    check_disjoint(enc, get_task("synthcxr-pneumonia", n_train_per_class=4, n_test_per_class=4, n_pool=8).test["id"])
    with pytest.raises(FitOverlapError, match="standin-vision-ssl"):
        check_disjoint(enc, V.train_ids(2))


# --------------------------------------------------------------------------------------------
# the registry entry
# --------------------------------------------------------------------------------------------
def test_registry_entry_is_a_label_free_stand_in_whose_shown_recipe_is_its_fit():
    spec = encoder_specs()["standin-vision-ssl"]
    assert spec["kind"] == "ssl-vision" and spec["module"] == "semalign.encoders.ssl_vision"
    assert spec["domain"] == "medical (stand-in)" and spec["modality"] == "image" and spec["offline"] is True
    assert spec["description"].startswith("Stand-in (not a real medical model), NOT trained on labels")
    assert "supervised_on" not in spec
    recipe = V.Recipe.from_spec(spec)
    assert recipe.base == "mobilenet-v2" and recipe.seed == 0
    assert spec["recipe"] == V.display_recipe(recipe)  # what the book shows is what is fitted
    assert spec["preprocessing"].startswith(f"grey, resized to {2 * recipe.resolution} px")
    assert f"{recipe.resolution} px" in spec["preprocessing"]


@pytest.mark.parametrize("bad, match", [({"batch": 1}, "batch must be >= 2"), ({"steps": 0}, "steps"),
                                        ({"augment": {"flip": True}}, "unknown augment"),
                                        ({"steps": 2.5}, "steps")])
def test_bad_recipes_are_one_clear_error(bad, match):
    spec = {**encoder_specs()["standin-vision-ssl"], **bad}
    with pytest.raises(EncoderError, match=match):
        V.Recipe.from_spec(spec)


# --------------------------------------------------------------------------------------------
# the real stand-in (slow: fits mobilenet-v2 for about two minutes on two CPU cores)
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_stand_in_embeds_synthcxr_test_images_unlike_its_base(book_fits):
    from semalign.data import get_task

    t = get_task("synthcxr-pneumonia", n_train_per_class=4, n_test_per_class=4, n_pool=8)
    enc = get_encoder("standin-vision-ssl", device="cpu")
    check_disjoint(enc, t.test["id"])
    assert len(enc.fit_ids) == 2000 and enc.dim == 1280
    images = list(t.test["input"])
    e = enc.embed(images, progress=False)
    assert e.shape == (8, 1280) and np.isfinite(e).all() and e.std(axis=0).max() > 0
    base = get_encoder("mobilenet-v2", device="cpu")
    # same images, same 112 px input: only the weights differ
    with torch.no_grad():
        b = base.model.forward_features(enc._pixels(images)).numpy()
    assert not np.allclose(e, b, atol=1e-3)
    cos = (e * b).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(b, axis=1)
    assert (cos < 0.999).all()
    losses = V.fit_ssl_vision(V.Recipe.from_spec(enc.spec))["losses"]  # from the cache
    assert losses[-10:].mean() < losses[:10].mean()
