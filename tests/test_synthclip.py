"""synthclip: the MedCLIP-like image–text stand-in trained here (semalign.encoders.synthclip).

Fast tests train tiny towers with the real objective and loop on constructed data whose answer
is known; the slow ones fit the real towers (registry CNN + MiniLM) and score Fig. 4 with them.
"""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from semalign.encoders import encoder_specs  # noqa: E402
from semalign.encoders import synthclip as SC  # noqa: E402
from semalign.zeroshot import standard_zeroshot  # noqa: E402

NAMES = ("synthclip-image", "synthclip-text")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread (two OpenMP threads spin for ages on a shared, busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- objective ----
def test_info_nce_is_zero_for_matched_pairs_and_log_b_for_uninformative_ones():
    z = torch.eye(8)
    big = torch.tensor(math.log(100.0))
    assert SC.info_nce(z, z, big).item() < 1e-3, "each row matches only its own pair"
    same = torch.ones(8, 4)  # every image equally similar to every text
    assert SC.info_nce(same, same, big).item() == pytest.approx(math.log(8), rel=1e-5)
    perm = torch.roll(torch.eye(8), 1, dims=0)  # each image matches another row's text
    assert SC.info_nce(z, perm, big).item() > math.log(8), "worse than chance when pairs are swapped"


def _latent_world(rng, n=512, d=4, d_img=12, d_txt=10, noise=0.05):
    """Paired rows from shared latent factors: x_img = z A + e, x_txt = z B + e."""
    a, b = rng.normal(size=(d, d_img)), rng.normal(size=(d, d_txt))
    z = rng.normal(size=(n, d))
    f = lambda m: torch.tensor(m, dtype=torch.float32)  # noqa: E731
    return z, a, b, f(z @ a + noise * rng.normal(size=(n, d_img))), f(z @ b + noise * rng.normal(size=(n, d_txt)))


def test_training_decreases_the_loss_and_gives_a_zero_shot_classifier():
    """Tiny linear towers trained with the real loop on pairs that share latent factors: the
    contrastive loss falls, and the trained model's standard zero-shot separates images by the
    sign of factor 0 with prompts written from factor 0 alone (no label seen in training)."""
    rng = np.random.default_rng(0)
    z, a, b, x_img, x_txt = _latent_world(rng)
    torch.manual_seed(0)
    img_t, txt_t = torch.nn.Linear(12, 8, bias=False), torch.nn.Linear(10, 8, bias=False)
    scale, losses = SC.train_contrastive(img_t, txt_t, x_img, x_txt, epochs=12, batch=64, lr=1e-2, seed=0)
    assert len(losses) == 12 * (512 // 64)
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < 0.5 * first, (first, last)
    assert scale > math.log(1 / 0.07), "the learned temperature sharpens as the pairs are learned"

    test = rng.normal(size=(200, 4))
    test[:, 0] = np.r_[rng.uniform(0.5, 2, 100), -rng.uniform(0.5, 2, 100)]
    y = np.r_[np.ones(100, int), np.zeros(100, int)]
    prompt = lambda sign: np.c_[np.full(10, 2.0 * sign), 0.2 * rng.normal(size=(10, 3))] @ b  # noqa: E731
    with torch.no_grad():
        emb = lambda tower, x: tower(torch.tensor(x, dtype=torch.float32)).numpy()  # noqa: E731
        res = standard_zeroshot(emb(img_t, test @ a), y, emb(txt_t, prompt(+1)), emb(txt_t, prompt(-1)))
    assert res.auroc > 0.97, res.auroc


def test_training_is_seeded_and_refuses_unpaired_inputs():
    rng = np.random.default_rng(1)
    _, _, _, x_img, x_txt = _latent_world(rng, n=64)

    def run():
        torch.manual_seed(0)
        i, t = torch.nn.Linear(12, 4), torch.nn.Linear(10, 4)
        return SC.train_contrastive(i, t, x_img, x_txt, epochs=2, batch=16, seed=3)[1]

    assert run() == run()
    with pytest.raises(SC.EncoderError, match="as many of each"):
        SC.train_contrastive(torch.nn.Linear(12, 4), torch.nn.Linear(10, 4), x_img, x_txt[:10], epochs=1, batch=8)


# -------------------------------------------------------------------------------- registry ----
def test_registry_entries_share_one_recipe_and_show_it():
    specs = encoder_specs()
    img, txt = (specs[n] for n in NAMES)
    assert (img["modality"], txt["modality"]) == ("image", "text")
    assert img["domain"] == txt["domain"] == "medical (stand-in)"
    assert img["fit"] == txt["fit"] and img["recipe"] == txt["recipe"], "two towers of one fit"
    assert set(img["fit"]) == set(SC.DEFAULTS), "the recipe names every parameter of the fit"
    assert all(s["description"].startswith("Stand-in (not MedCLIP)") for s in (img, txt))
    assert img["dim"] == txt["dim"] == img["fit"]["proj_dim"]
    # what the book shows agrees with what the code fits
    f, shown = img["fit"], " ".join(str(v) for v in img["recipe"].values())
    for key in ("base", "data", "objective", "steps", "batch", "resolution", "seed"):
        assert key in img["recipe"], key
    steps = f["epochs"] * (f["n_pairs"] // f["batch"])
    assert f"{f['n_pairs']:,}" in shown and f"{steps} AdamW steps" in shown and f"{f['epochs']} epochs" in shown
    assert str(img["recipe"]["batch"]) == str(f["batch"]) and str(img["recipe"]["seed"]) == str(f["seed"])
    assert img["recipe"]["resolution"] == f"{f['resolution']} px"
    assert f["image_base"] in img["recipe"]["base"] and f["text_base"] in img["recipe"]["base"]
    assert str(SC.TRAIN_SEED + f["seed"]) in img["recipe"]["data"]


def test_unknown_recipe_parameters_are_refused():
    with pytest.raises(SC.EncoderError, match="unknown recipe parameter"):
        SC._recipe({"n_pair": 10})


def test_training_pairs_are_their_own_stream():
    """Ids and pixels: the training pairs are none of Fig. 4's anchor pairs or a task's images."""
    from semalign.data import get_pairs, get_task
    from semalign.encoders import standins

    assert SC.TRAIN_SEED not in (50_000, standins.TRAIN_SEED)
    b = SC.training_pairs(24, seed=0)
    assert list(b.labels["id"]) == SC.train_ids(24) and all(i.startswith("synthclip-930000-") for i in SC.train_ids(24))
    digest = lambda ims: {hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for a in ims}  # noqa: E731
    ours = digest(b.images)
    pairs = get_pairs("synthcxr-pairs", n=24, seed=0)
    task = get_task("synthcxr-pneumonia", n_train_per_class=6, n_test_per_class=6, n_pool=12)
    for name, df, col in (("pairs", pairs, "image"), ("test", task.test, "input"), ("train", task.train, "input"),
                          ("anchors", task.anchors, "input")):
        assert not set(SC.train_ids(24)) & set(map(str, df["id"])), name
        assert not ours & digest(df[col]), f"a training image is one of the {name} images"


# ------------------------------------------------------------------- real towers (slow) ------
TINY = dict(n_pairs=24, resolution=32, proj_dim=8, epochs=2, batch=8, seed=0)


@pytest.mark.slow
def test_tiny_real_fit_is_cached_keyed_and_refitted_when_damaged():
    d1 = SC.fit_synthclip(**TINY)
    files = sorted((SC.fits_dir()).glob("synthclip-*.npz"))
    assert files
    assert d1["img_proj"].shape == (8, 1280) and d1["txt_proj"].shape == (8, 384)
    assert d1["fit_ids"].tolist() == SC.train_ids(24) and len(d1["loss"]) == 2 * (24 // 8)
    newest = max(files, key=lambda p: p.stat().st_mtime_ns)
    mtime = newest.stat().st_mtime_ns
    d2 = SC.fit_synthclip(**TINY)
    assert newest.stat().st_mtime_ns == mtime and SC._weights_digest(d1) == SC._weights_digest(d2), "served from the cache"
    newest.write_bytes(newest.read_bytes()[:100])  # damaged
    d3 = SC.fit_synthclip(**TINY)
    assert SC._weights_digest(d3) == SC._weights_digest(d1), "refitted, and the fit is deterministic"
    before = set((SC.fits_dir()).glob("synthclip-*.npz"))
    SC.fit_synthclip(**{**TINY, "epochs": 1})
    assert len(set((SC.fits_dir()).glob("synthclip-*.npz")) - before) == 1, "a recipe change is a new key"


@pytest.mark.slow
def test_tiny_real_towers_embed_in_one_space_and_guard_their_fit_ids():
    from semalign.data import get_task
    from semalign.encoders import get_encoder, standins

    img = get_encoder("synthclip-image", device="cpu", fit=TINY, dim=8)
    txt = get_encoder("synthclip-text", device="cpu", fit=TINY, dim=8)
    assert img.fit_ids == txt.fit_ids == frozenset(SC.train_ids(24))
    task = get_task("synthcxr-pneumonia", n_train_per_class=4, n_test_per_class=4, n_pool=8)
    ei = img.embed(list(task.test["input"]), progress=False)
    et = txt.embed(["No acute cardiopulmonary abnormality.", "Right lower lobe pneumonia."], progress=False)
    assert ei.shape == (8, 8) and et.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(ei, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(et, axis=1), 1, atol=1e-5)
    standins.check_disjoint(img, task.test["id"])  # no overlap: no error
    with pytest.raises(standins.FitOverlapError):
        standins.check_disjoint(img, SC.train_ids(3))
    fp = img.fingerprint()
    assert fp["weights_sha256"] == SC._weights_digest(img._fit) and fp["recipe"]["resolution"] == 32
    assert fp != get_encoder("synthclip-image", device="cpu", fit={**TINY, "epochs": 1}, dim=8).fingerprint()


@pytest.mark.slow
def test_real_synthclip_scores_a_synthcxr_task_through_fig4(book_fits):
    """The registry's synthclip towers (the real recipe: fitted once, then cached) as Fig. 4's
    baseline beside the paper's method and the probe, on one small SynthCXR task."""
    import time

    from semalign.report import fig4

    t0, c0 = time.perf_counter(), time.process_time()
    tp = {"synthcxr-*": {"n_train_per_class": 20, "n_test_per_class": 20, "n_pool": 20}}
    res, info = fig4.compute(["synthcxr-vindr-cardiomegaly"], ["mobilenet-v2"], "minilm-l6", pairs="synthcxr-pairs",
                             n_pairs=60, pair_pool=80, runs=2, device="cpu", task_params=tp,
                             baselines={"synthclip": ["synthclip-image", "synthclip-text"]})
    print(f"fig4.compute with synthclip: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU")
    base, probe = res[res.approach == "synthclip"], res[res.approach == "probe"]
    assert len(base) == 1 and len(probe) == 1 and (res.approach == "unimodal").sum() == 2
    assert base["vision_encoder"].item() == "synthclip-image" and base["domain"].item() == "medical (stand-in)"
    assert (res["auroc_se"] > 0).all() and res["auroc_se"].lt(0.2).all()
    assert info["domains"]["synthclip-image"] == "medical (stand-in)", "the baseline's towers are described too"
    bars = fig4.frame(res)
    assert set(bars["kind"]) == {fig4.OURS, fig4.APPROACH_LABELS["synthclip"], fig4.PROBE}
    assert "MedCLIP-like" in fig4.reading(res) and "linear probe" in fig4.reading(res)
    spec = fig4.chart(bars).to_dict()
    assert any(layer["mark"]["type"] == "tick" for layer in spec["layer"])
    k = fig4.numbers(res)
    assert k["synthclip_pairs"] == 1 and k["probe_pairs"] == 1
    assert re.search(r"\d\.\d{3} ± \d\.\d{3}", fig4.table(res).iloc[0, 0])
