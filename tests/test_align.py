"""semalign.align against independent float64 numpy references (paper Sec. 3.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from semalign import align
from semalign.align import NotFittedError, Translator

METHODS = align.methods()  # the built-ins: collected before any test registers a method

CLOSED_FORM = ("naive", "linear", "l-ortho", "ortho")

# latentis's mismatched-shape fixtures: (x anchors shape, y anchors shape)
LATENTIS_SHAPES = [((50, 250), (50, 300)), ((1000, 100), (1000, 500))]


# ----------------------------------------------------------------------------------------
# Independent references: numpy float64, padding done literally on (N, D) matrices
# ----------------------------------------------------------------------------------------


def ref_scale(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = a.mean(axis=0)
    std = a.std(axis=0, ddof=1)
    std[std == 0] = 1.0
    return mean, std


def ref_pad(a: np.ndarray, dim: int) -> np.ndarray:
    out = np.zeros((a.shape[0], dim))
    out[:, : a.shape[1]] = a
    return out


def polar_np(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    return u @ vt


def ref_matrix(method: str, xp: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """The (D, D) map of each method on padded, standardised anchors."""
    if method == "naive":
        return np.eye(xp.shape[1])
    if method == "linear":
        return np.linalg.pinv(xp) @ yp
    if method == "l-ortho":
        return polar_np(np.linalg.pinv(xp) @ yp)
    if method == "ortho":
        return polar_np(xp.T @ yp)
    raise ValueError(method)


def ref_translate(method, xa, ya, x, std_scaling=True):
    d1, d2 = xa.shape[1], ya.shape[1]
    dim = max(d1, d2)
    if method == "naive":  # the paper's baseline: padding/cutting only, never scaled
        return ref_pad(x, dim)[:, :d2]
    if std_scaling:
        mx, sx = ref_scale(xa)
        my, sy = ref_scale(ya)
    else:
        mx, sx, my, sy = 0.0, 1.0, 0.0, 1.0
    xp = ref_pad((xa - mx) / sx, dim)
    yp = ref_pad((ya - my) / sy, dim)
    r = ref_matrix(method, xp, yp)
    out = (ref_pad((x - mx) / sx, dim) @ r)[:, :d2]
    return out * sy + my


def autograd_affine(xs: torch.Tensor, ys: torch.Tensor, seed: int, lr=1e-3, steps=300):
    """latentis's algorithm with plain autograd: nn.Linear(D, D) + Adam + F.mse_loss on padded data."""
    dim = max(xs.shape[1], ys.shape[1])
    xp, yp = F.pad(xs, (0, dim - xs.shape[1])), F.pad(ys, (0, dim - ys.shape[1]))
    torch.manual_seed(seed)
    lin = torch.nn.Linear(dim, dim).to(xs.dtype)  # latentis: a default (float32) module
    opt = torch.optim.Adam(lin.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(lin(xp), yp).backward()
        opt.step()
    return lin.weight.detach(), lin.bias.detach()


def pair(rng, n, d1, d2, noise=0.1):
    """Correlated anchors: y is a random linear image of x plus noise, with offsets/scales."""
    x = rng.normal(size=(n, d1)) * rng.uniform(0.5, 3, size=d1) + rng.normal(size=d1)
    a = rng.normal(size=(d1, d2)) / np.sqrt(d1)
    y = x @ a + noise * rng.normal(size=(n, d2)) + 5.0
    return x, y


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------------------
# Each formula against its reference
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", CLOSED_FORM)
@pytest.mark.parametrize("d1,d2", [(12, 12), (8, 15), (15, 8)])
@pytest.mark.parametrize("std_scaling", [True, False])
def test_closed_form_matches_padded_reference(rng, method, d1, d2, std_scaling):
    xa, ya = pair(rng, 60, d1, d2)
    x = rng.normal(size=(7, d1))
    t = Translator(method, std_scaling=std_scaling).fit(xa, ya)
    out = t.transform(x)
    assert out.dtype == np.float64 and out.shape == (7, d2)
    np.testing.assert_allclose(out, ref_translate(method, xa, ya, x, std_scaling), atol=1e-9)


@pytest.mark.parametrize("xshape,yshape", LATENTIS_SHAPES)
@pytest.mark.parametrize("method", CLOSED_FORM)
def test_latentis_fixtures(rng, xshape, yshape, method):
    xa, ya = rng.normal(size=xshape), rng.normal(size=yshape)
    t = Translator(method).fit(xa, ya)
    out = t.transform(xa)
    assert out.shape == (xshape[0], yshape[1])
    ref = ref_translate(method, xa, ya, xa)
    if method == "l-ortho" and xshape[0] < xshape[1]:
        # N < d1: the linear solution has rank N - 1 < d1, so its orthogonal factor is unique on
        # its range only: a partial isometry of rank N - 1 (q qᵀ a projector) with R = (R_lin R_linᵀ)^½ Q.
        q = t.R_.numpy()
        np.testing.assert_allclose((q @ q.T) @ (q @ q.T), q @ q.T, atol=1e-9)
        assert abs(np.trace(q @ q.T) - (xshape[0] - 1)) < 1e-6
        r_lin = Translator("linear").fit(xa, ya).R_.numpy()
        w, v = np.linalg.eigh(r_lin @ r_lin.T)
        w = np.where(w > 1e-12 * w.max(), w, 0.0)  # its null eigenvalues are rounding (±1e-16): sqrt would make 1e-8
        half = (v * np.sqrt(w)) @ v.T
        np.testing.assert_allclose(half @ q, r_lin, atol=1e-8)
    else:
        # ortho with N < d: Q is not unique either, but X Q on the anchors is (the null
        # directions of XᵀY are orthogonal to the anchors' row space).
        np.testing.assert_allclose(out, ref, atol=1e-8)


def test_drop_mean_direction_keeps_the_problem_and_fixes_tiny_n(rng):
    xa, ya = rng.normal(size=(30, 8)), rng.normal(size=(30, 5))
    xc, yc = torch.from_numpy(xa - xa.mean(0)), torch.from_numpy(ya - ya.mean(0))
    xr, yr = align.drop_mean_direction(xc, yc)
    assert xr.shape == (29, 8) and yr.shape == (29, 4 + 1)
    np.testing.assert_allclose(xr.T @ xr, xc.T @ xc, atol=1e-12)  # same Gram: same LS problem
    np.testing.assert_allclose(xr.T @ yr, xc.T @ yc, atol=1e-12)
    # N = 2 anchors: centred x has rank 1, and the shifted copy must give the same answer
    x2, y2 = rng.normal(size=(2, 2)), rng.normal(size=(2, 1))
    a = Translator("linear").fit(x2, y2).transform(x2[:1] + 0.3)
    b = Translator("linear").fit(x2 + 100, y2).transform(x2[:1] + 100.3)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_linear_is_minimum_norm_when_rank_deficient(rng):
    xa, ya = rng.normal(size=(20, 50)), rng.normal(size=(20, 30))
    for route in ("auto", "gelsd", "svd"):
        r = align.min_norm_lstsq(torch.from_numpy(xa), torch.from_numpy(ya), route=route).numpy()
        np.testing.assert_allclose(r, np.linalg.pinv(xa) @ ya, atol=1e-10)
    # zero-padded columns (rank-deficient by construction): their rows of R must be zero
    xz = np.hstack([xa[:, :10], np.zeros((20, 5))])
    for route in ("auto", "gelsd", "svd"):
        r = align.min_norm_lstsq(torch.from_numpy(xz), torch.from_numpy(ya), route=route).numpy()
        np.testing.assert_allclose(r[10:], 0, atol=1e-12)
        np.testing.assert_allclose(r, np.linalg.pinv(xz) @ ya, atol=1e-10)


def test_procrustes_state_reference(rng):
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    r = align.procrustes_state(torch.from_numpy(x), torch.from_numpy(y))["R"].numpy()
    np.testing.assert_allclose(r, polar_np(x.T @ y), atol=1e-12)
    # optimality: no random orthogonal matrix does better
    best = np.linalg.norm(x @ r - y)
    for _ in range(20):
        q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
        assert np.linalg.norm(x @ q - y) >= best - 1e-12


# ----------------------------------------------------------------------------------------
# affine: Gram-matrix Adam == autograd Adam
# ----------------------------------------------------------------------------------------


def test_linear_init_is_nn_linear():
    torch.manual_seed(7)
    lin = torch.nn.Linear(9, 9)
    w, b = align._linear_init(9, torch.float32, seed=7)
    assert torch.equal(w, lin.weight.detach()) and torch.equal(b, lin.bias.detach())
    # float64 fits start from the same (float32) draw, cast: not from a different float64 draw
    w64, b64 = align._linear_init(9, torch.float64, seed=7)
    assert w64.dtype == torch.float64
    assert torch.equal(w64, lin.weight.detach().double()) and torch.equal(b64, lin.bias.detach().double())


@pytest.mark.parametrize("n,d1,d2", [(80, 10, 10), (80, 6, 13), (80, 13, 6), (5, 30, 12)])
def test_affine_gram_adam_equals_autograd_adam_float64(rng, n, d1, d2):
    # (5, 30, 12): 2N < d1 takes the low-rank (W xᵀ) x route
    xa, ya = pair(rng, n, d1, d2)
    t = Translator("affine", seed=3).fit(xa, ya)
    xs = align.standardize(torch.from_numpy(xa), t.scaling_x_)
    ys = align.standardize(torch.from_numpy(ya), t.scaling_y_)
    w, b = autograd_affine(xs, ys, seed=3)
    np.testing.assert_allclose(t.R_.numpy(), w[:d2, :d1].T.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(t.b_.numpy(), b[:d2].numpy(), rtol=0, atol=1e-12)
    # and the stitched output equals the autograd model's, padded and cut
    x = rng.normal(size=(4, d1))
    xp = F.pad(align.standardize(torch.from_numpy(x), t.scaling_x_), (0, max(d1, d2) - d1))
    ref = align.destandardize((xp @ w.T + b)[:, :d2], t.scaling_y_).numpy()
    np.testing.assert_allclose(t.transform(x), ref, atol=1e-11)


def test_affine_gram_adam_equals_autograd_adam_float32(rng):
    xa, ya = pair(rng, 200, 24, 16)
    t = Translator("affine", seed=1).fit(xa.astype(np.float32), ya.astype(np.float32))
    assert t.R_.dtype == torch.float32
    xs = align.standardize(torch.from_numpy(xa.astype(np.float32)), t.scaling_x_)
    ys = align.standardize(torch.from_numpy(ya.astype(np.float32)), t.scaling_y_)
    w, b = autograd_affine(xs, ys, seed=1)
    np.testing.assert_allclose(t.R_.numpy(), w[:16, :24].T.numpy(), atol=2e-5)
    np.testing.assert_allclose(t.b_.numpy(), b[:16].numpy(), atol=2e-5)


def test_affine_is_seeded(rng):
    xa, ya = pair(rng, 50, 5, 7)
    a = Translator("affine", seed=0).fit(xa, ya).R_
    assert torch.equal(a, Translator("affine", seed=0).fit(xa, ya).R_)
    assert not torch.equal(a, Translator("affine", seed=1).fit(xa, ya).R_)


def test_closed_form_affine_on_centred_data_equals_linear(rng):
    """The identity behind the paper's affine vs linear: once both sides are centred on their
    anchor means, the least-squares affine map has bias exactly 0 and R equal to `linear`."""
    xa, ya = pair(rng, 100, 9, 14)
    t = Translator("linear").fit(xa, ya)
    xs = align.standardize(torch.from_numpy(xa), t.scaling_x_).numpy()
    ys = align.standardize(torch.from_numpy(ya), t.scaling_y_).numpy()
    aug = np.hstack([xs, np.ones((len(xs), 1))])
    coef = np.linalg.lstsq(aug, ys, rcond=None)[0]
    np.testing.assert_allclose(coef[-1], 0, atol=1e-12)  # bias
    np.testing.assert_allclose(coef[:-1], t.R_.numpy(), atol=1e-12)
    # Adam run long enough approaches the same optimum
    long = Translator("affine", lr=1e-2, steps=1000).fit(xa, ya)
    np.testing.assert_allclose(long.b_.numpy(), 0, atol=1e-6)
    np.testing.assert_allclose(long.R_.numpy(), t.R_.numpy(), atol=1e-6)


# ----------------------------------------------------------------------------------------
# Recovery of known maps
# ----------------------------------------------------------------------------------------


def test_recovers_orthogonal_map(rng):
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    x = rng.normal(size=(100, 16))
    for method in ("ortho", "l-ortho", "linear"):
        t = Translator(method, std_scaling=False).fit(x, x @ q)
        np.testing.assert_allclose(t.R_.numpy(), q, atol=1e-10)


def test_recovers_linear_map_rectangular(rng):
    a = rng.normal(size=(10, 25))
    x = rng.normal(size=(80, 10))
    t = Translator("linear", std_scaling=False).fit(x, x @ a)
    np.testing.assert_allclose(t.R_.numpy(), a, atol=1e-10)
    xn = rng.normal(size=(5, 10))
    np.testing.assert_allclose(t.transform(xn), xn @ a, atol=1e-10)


def test_recovers_affine_map(rng):
    a = rng.normal(size=(4, 4)) / 2
    c = rng.normal(size=4)
    x = rng.normal(size=(200, 4))
    t = Translator("affine", std_scaling=False, lr=5e-2, steps=3000).fit(x, x @ a + c)
    np.testing.assert_allclose(t.R_.numpy(), a, atol=1e-3)
    np.testing.assert_allclose(t.b_.numpy(), c, atol=1e-3)


def test_embedding_with_scaling_recovered_through_std_scaling(rng):
    """With std scaling, an orthogonal map of standardised data is recovered in raw units."""
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    z = rng.normal(size=(500, 8))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z.T)).T)  # exactly white: cov(z) = I
    x = z * 3.0 + 1.0
    y = (z @ q) * 0.5 - 2.0  # cov(z q) = I too, so standardising y gives back z q
    t = Translator("ortho").fit(x, y)
    np.testing.assert_allclose(t.R_.numpy(), q, atol=1e-9)
    np.testing.assert_allclose(t.transform(x), y, atol=1e-9)


# ----------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("d1,d2", [(10, 10), (6, 14)])
def test_round_trip_source(rng, method, d1, d2):
    xa, ya = pair(rng, 60, d1, d2)
    t = Translator(method, steps=20).fit(xa, ya)
    x = rng.normal(size=(9, d1))
    np.testing.assert_allclose(t.inverse_transform(t.transform(x)), x, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_round_trip_target_when_source_is_larger(rng, method):
    xa, ya = pair(rng, 60, 14, 6)
    t = Translator(method, steps=20).fit(xa, ya)
    y = rng.normal(size=(9, 6))
    np.testing.assert_allclose(t.transform(t.inverse_transform(y)), y, atol=1e-9)


# ----------------------------------------------------------------------------------------
# Array kinds, dtypes, devices, robustness
# ----------------------------------------------------------------------------------------


def test_kinds_and_dtypes(rng):
    xa, ya = pair(rng, 30, 5, 7)
    t = Translator("ortho").fit(xa.astype(np.float32), ya.astype(np.float32))
    out = t.transform(xa[:3].astype(np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    out = t.transform(torch.from_numpy(xa[:3]).float())
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    # float64 kept end to end
    t64 = Translator("ortho").fit(torch.from_numpy(xa), torch.from_numpy(ya))
    out = t64.transform(torch.from_numpy(xa[:3]))
    assert out.dtype == torch.float64 and t64.R_.dtype == torch.float64
    # ints and float16 become float32
    ints = np.arange(20).reshape(10, 2)
    assert Translator("naive").fit(ints, ya[:10].astype(np.float32)).dtype_ == torch.float32
    assert t.transform(xa[:2].astype(np.float16)).dtype == np.float32
    # float32 and float64 agree to float32 precision
    np.testing.assert_allclose(
        t.transform(xa[:3].astype(np.float32)), t64.transform(xa[:3]), rtol=1e-4, atol=1e-4
    )


def test_device_argument(rng):
    xa, ya = pair(rng, 30, 5, 7)
    t = Translator("linear", device="cpu").fit(torch.from_numpy(xa), ya)
    assert t.device_ == torch.device("cpu")
    assert isinstance(t.transform(xa), np.ndarray)


def test_constant_feature_keeps_scale_one(rng):
    xa, ya = pair(rng, 40, 6, 6)
    xa[:, 2] = 3.7
    ya[:, 0] = 0.0
    for method in METHODS:
        for dtype in (np.float32, np.float64):
            t = Translator(method, steps=10).fit(xa.astype(dtype), ya.astype(dtype))
            assert np.isfinite(t.transform(xa.astype(dtype))).all()
            if method == "naive":  # never scaled
                assert t.scaling_x_ is None and t.scaling_y_ is None
                continue
            assert float(t.scaling_x_["std"][2]) == 1.0 and float(t.scaling_y_["std"][0]) == 1.0
            assert float(t.scaling_x_["mean"][2]) == pytest.approx(3.7)
            # every other feature is scaled by its own std
            np.testing.assert_allclose(t.scaling_x_["std"][[0, 1, 3, 4, 5]], xa[:, [0, 1, 3, 4, 5]].std(0, ddof=1), rtol=1e-6)


def offset_pair(rng, n=200, d1=6, d2=8, offset=1e3):
    """Anchors with large offsets (±offset) and small spreads (std 1e-3..1e-2 per feature),
    rounded to float32 once: the float32 and float64 fits below see the very same values."""
    z = rng.normal(size=(n, d1))
    x = offset + z * np.geomspace(1e-3, 1e-2, d1)
    y = -offset + (z @ rng.normal(size=(d1, d2)) + 0.1 * rng.normal(size=(n, d2))) * np.geomspace(1e-2, 1e-3, d2) / np.sqrt(d1)
    return x.astype(np.float32), y.astype(np.float32)


def test_scaling_state_scales_tiny_spreads_in_float32(rng):
    """Only a feature constant over the anchors keeps std 1, whatever the dtype: a float32
    feature with mean 1e3 and std 1.03e-3 (17 float32 ulps) is real signal and is scaled."""
    col = lambda mean, std: mean + std * rng.normal(size=200)  # noqa: E731
    x = np.stack([col(1e3, 1.03e-3), col(-1e3, 5e-3), col(0.0, 1e-7), col(3e4, 0.1), np.full(200, 1e3 + 0.1)], 1)
    for dtype in (torch.float32, torch.float64):
        xt = torch.from_numpy(x).to(dtype)
        st_ = align.standard_scaling_state(xt)
        assert st_["std"].dtype == dtype and st_["mean"].dtype == dtype
        ref = xt.double().std(0)
        np.testing.assert_allclose(st_["std"][:4].double(), ref[:4], rtol=1e-6)
        assert float(st_["std"][4]) == 1.0  # really constant
        z = align.standardize(xt, st_)
        np.testing.assert_allclose(z[:, :4].double().std(0), 1.0, rtol=1e-5)
    # a std float32 cannot hold as a normal number (a column of zeros and one denormal): kept 1
    tiny = torch.zeros(100, 1)
    tiny[0] = 1e-45
    st_ = align.standard_scaling_state(tiny)
    assert float(st_["std"][0]) == 1.0 and torch.isfinite(align.standardize(tiny, st_)).all()
    # float64: a one-ulp spread is float64 rounding of a constant (CONSTANT_RTOL), kept 1
    c = 1e3 + 0.1
    one_ulp = torch.tensor([[c], [np.nextafter(c, 2e3)]] * 50, dtype=torch.float64)
    assert float(align.standard_scaling_state(one_ulp)["std"][0]) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_float32_and_float64_fits_agree_with_large_offsets(rng, method):
    """Scale invariance across dtypes: the float32 fit pre-processes like the float64 fit of the
    same values (the old float32 cut-off, 10·eps32·|mean| ≈ 1.2e-3, kept std 1 for the 1e-3
    features) and gives the same translation up to float32 rounding of the ~1e3 values."""
    xa, ya = offset_pair(rng)
    x = xa[:20] + np.float32(1e-3) * rng.normal(size=(20, 6)).astype(np.float32)
    t32 = Translator(method).fit(xa, ya)
    t64 = Translator(method).fit(xa.astype(np.float64), ya.astype(np.float64))
    assert t32.dtype_ == torch.float32 and t64.dtype_ == torch.float64
    if method != "naive":
        for a, b in ((t32.scaling_x_, t64.scaling_x_), (t32.scaling_y_, t64.scaling_y_)):
            np.testing.assert_allclose(a["std"].double(), b["std"], rtol=1e-6)
            np.testing.assert_allclose(a["mean"].double(), b["mean"], rtol=1e-7)
    out32 = t32.transform(x)
    out64 = t64.transform(x.astype(np.float64))
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    # float32 holds values near 1e3 to one ulp = 6.1e-5; the target stds are 1e-3..1e-2
    ulp = float(np.spacing(np.float32(1e3)))
    np.testing.assert_allclose(out32, out64, rtol=0, atol=4 * ulp)
    # and the fit did translate (not just keep the target mean): output spread is the target's
    if method != "naive":
        assert out64.std(0).min() > 0.3 * ya.std(0).min()


@pytest.mark.parametrize("std_scaling", [True, False])
@pytest.mark.parametrize("d1,d2", [(5, 9), (9, 5), (7, 7)])
def test_naive_is_padding_or_cutting_only(rng, std_scaling, d1, d2):
    """The paper's naive baseline is "no transformation": pad/cut, whatever std_scaling."""
    xa, ya = pair(rng, 30, d1, d2)
    xa, ya = xa * 3 + 10, ya * 0.2 - 4  # offsets and scales that scaling would touch
    x = rng.normal(size=(6, d1)) * 2 + 1
    for dtype in (np.float64, np.float32):
        t = Translator("naive", std_scaling=std_scaling).fit(xa.astype(dtype), ya.astype(dtype))
        assert t.scaling_x_ is None and t.scaling_y_ is None and t.R_ is None
        xin = x.astype(dtype)
        out = t.transform(xin)
        expected = np.pad(xin, ((0, 0), (0, max(0, d2 - d1))))[:, :d2]
        assert out.dtype == dtype and np.array_equal(out, expected)
        y = ya[:4].astype(dtype)
        assert np.array_equal(t.inverse_transform(y), np.pad(y, ((0, 0), (0, max(0, d1 - d2))))[:, :d1])
    # Translator("naive") (std_scaling=True by default) is the baseline stitch_grid uses
    t = Translator("naive").fit(xa, ya)
    assert np.array_equal(t.transform(x), Translator("naive", std_scaling=False).fit(xa, ya).transform(x))


def test_dtype_rules(rng):
    """Fit in float64 when either anchor set is float64; transform computes in float64 when the
    fit or the input is float64; outputs have the input's precision (float64 or float32)."""
    xa, ya = offset_pair(rng, n=80, d1=5, d2=7)
    x64 = xa[:10].astype(np.float64) + 1e-3 * rng.normal(size=(10, 5))  # not float32-representable
    for method in METHODS:
        # mixed anchors fit in float64, exactly as if both were float64
        ref = Translator(method, steps=20).fit(xa.astype(np.float64), ya.astype(np.float64))
        for a, b in ((xa.astype(np.float64), ya), (xa, ya.astype(np.float64))):
            t = Translator(method, steps=20).fit(a, b)
            assert t.dtype_ == torch.float64, method
            if t.R_ is not None:
                assert t.R_.dtype == torch.float64 and torch.equal(t.R_, ref.R_), method
            np.testing.assert_array_equal(t.transform(x64), ref.transform(x64))
        # float32 fit, float64 input: float64 out, computed in float64 with the float32 state
        t = Translator(method, steps=20).fit(xa, ya)
        assert t.dtype_ == torch.float32
        out = t.transform(x64)
        assert out.dtype == np.float64
        if method == "naive":
            expected = np.pad(x64, ((0, 0), (0, 2)))
        else:
            sx, sy = ({k: v.double().numpy() for k, v in s.items()} for s in (t.scaling_x_, t.scaling_y_))
            z = (x64 - sx["mean"]) / sx["std"]
            z = z @ t.R_.double().numpy() + (t.b_.double().numpy() if t.b_ is not None else 0.0)
            expected = z * sy["std"] + sy["mean"]
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
        # the inverse follows the same rule
        y64 = ya[:10].astype(np.float64) + 1e-4 * rng.normal(size=(10, 7))
        back = t.inverse_transform(y64)
        assert back.dtype == np.float64
        if method in ("ortho", "l-ortho"):
            zy = (y64 - sy["mean"]) / sy["std"]
            np.testing.assert_allclose(back, (zy @ t.R_.double().numpy().T) * sx["std"] + sx["mean"], rtol=0, atol=1e-9)
        # float32 (or float16, int) input: float32 out, from either fit
        for tt in (t, ref):
            assert tt.transform(xa[:3]).dtype == np.float32
            assert tt.transform(xa[:3].astype(np.float16)).dtype == np.float32
            assert tt.transform(torch.from_numpy(xa[:3])).dtype == torch.float32
        assert ref.transform(torch.from_numpy(x64)).dtype == torch.float64
    # ints count as float32: with a float64 side the fit is float64, else float32
    ints = rng.integers(0, 9, size=(20, 3))
    assert Translator("linear").fit(ints, ya[:20].astype(np.float64)).dtype_ == torch.float64
    assert Translator("linear").fit(ints, ya[:20]).dtype_ == torch.float32


def test_align_threads_restored(rng):
    before = torch.get_num_threads()
    xa, ya = pair(rng, 40, 6, 9)
    Translator("l-ortho").fit(xa, ya)
    assert torch.get_num_threads() == before
    cells = align.fit_pairs({"x": xa, "y": ya}, ["l-ortho", "affine"], steps=3)
    next(cells)
    assert torch.get_num_threads() == before  # also between the cells of the fast path
    list(cells)
    assert torch.get_num_threads() == before


def test_svd_falls_back_to_gesvd(rng, monkeypatch):
    xa, ya = pair(rng, 40, 6, 9)
    expected = Translator("ortho").fit(xa, ya).transform(xa)

    def broken(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", broken)
    np.testing.assert_allclose(Translator("ortho").fit(xa, ya).transform(xa), expected, atol=1e-10)
    np.testing.assert_allclose(
        Translator("l-ortho").fit(xa, ya).R_.numpy(),
        polar_np(np.linalg.pinv((xa - xa.mean(0)) / xa.std(0, ddof=1)) @ ((ya - ya.mean(0)) / ya.std(0, ddof=1))),
        atol=1e-9,
    )


# ----------------------------------------------------------------------------------------
# Misuse
# ----------------------------------------------------------------------------------------


def test_errors(rng):
    xa, ya = pair(rng, 20, 4, 5)
    with pytest.raises(NotFittedError, match=r"not fitted.*fit\(x_anchors, y_anchors\)"):
        Translator("ortho").transform(xa)
    with pytest.raises(NotFittedError):
        Translator("ortho").inverse_transform(ya)
    with pytest.raises(ValueError, match=r"same number of rows N.*\(20, 4\).*\(19, 5\)"):
        Translator().fit(xa, ya[:19])
    bad = xa.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"x_anchors \(shape \(N, d1\)\) contains 1 NaN/inf.*rows \[3\]"):
        Translator().fit(bad, ya)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"y_anchors .*NaN/inf"):
        Translator().fit(xa, np.where(bad[:, :1] > 0, np.inf, ya))
    with pytest.raises(ValueError, match=r"x_anchors must be a 2-D array of shape \(N, d1\); got shape \(20,\)"):
        Translator().fit(xa[:, 0], ya)
    with pytest.raises(ValueError, match=r"y_anchors must be a 2-D array of shape \(N, d2\)"):
        Translator().fit(xa, ya[None])
    with pytest.raises(ValueError, match=r"at least 2 anchors.*\(1, 4\)"):
        Translator().fit(xa[:1], ya[:1])
    t = Translator().fit(xa, ya)
    with pytest.raises(ValueError, match=r"x must have shape \(n, d1=4\).*got \(3, 5\)"):
        t.transform(ya[:3])
    with pytest.raises(ValueError, match=r"x must be a 2-D array of shape \(n, d1=4\).*reshape"):
        t.transform(xa[0])
    with pytest.raises(ValueError, match=r"y must have shape \(n, d2=5\)"):
        t.inverse_transform(xa)
    with pytest.raises(ValueError, match="method must be one of"):
        Translator("procrustes")
    with pytest.raises(TypeError, match="x_anchors must hold numbers"):
        Translator().fit(np.array([["a", "b"], ["c", "d"]]), ya[:2])


# ----------------------------------------------------------------------------------------
# Properties over shapes and scales
# ----------------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=24)


#: relative tolerance of the invariance properties, and the largest |shift| / scale drawn, per
#: dtype: the shifted data are rounded to the dtype, a relative error of ~eps · (|shift| / k)
#: in standardised units, amplified by the conditioning of the fit, so float32 gets smaller
#: relative offsets and a looser tolerance (worst seen in 6000 random float32 draws: 6e-4;
#: test_float32_and_float64_fits_agree_with_large_offsets covers float32 with 1e6 offsets).
#: The old float32 cut-off broke these properties by O(1) for scales below ~1e-6.
PROPERTY_TOL = {"float64": (1e-6, 1e5), "float32": (5e-3, 1e2)}


@settings(max_examples=40, deadline=None)
# always run: float32 at scale 1e-7 (the old 10·eps32·max(1, |mean|) cut-off took every such
# feature for constant), float32 at a large scale with an offset, float64 at both extremes
@example(n=30, d1=4, d2=6, log_scale=-7.0, rel_shift=0.3, dtype="float32", seed=1)
@example(n=30, d1=6, d2=4, log_scale=6.0, rel_shift=-1.0, dtype="float32", seed=2)
@example(n=30, d1=5, d2=5, log_scale=-8.0, rel_shift=1.0, dtype="float64", seed=3)
@example(n=30, d1=5, d2=3, log_scale=8.0, rel_shift=-0.5, dtype="float64", seed=4)
# two anchors: rank 1, the directions the centred anchor spans in x and y orthogonal after padding
@example(n=2, d1=4, d2=2, log_scale=0.0, rel_shift=0.0, dtype="float32", seed=0)
@given(
    n=st.integers(min_value=2, max_value=40),
    d1=dims,
    d2=dims,
    log_scale=st.floats(min_value=-8, max_value=8),
    rel_shift=st.floats(min_value=-1, max_value=1),
    dtype=st.sampled_from(sorted(PROPERTY_TOL)),
    seed=st.integers(0, 2**16),
)
def test_properties(n, d1, d2, log_scale, rel_shift, dtype, seed):
    rng = np.random.default_rng(seed)
    rtol, max_rel_shift = PROPERTY_TOL[dtype]
    cast = lambda a: np.asarray(a, dtype=dtype)  # noqa: E731
    xa, ya = cast(rng.normal(size=(n, d1))), cast(rng.normal(size=(n, d2)))
    x = cast(rng.normal(size=(3, d1)))
    k = 10.0**log_scale
    shift = rel_shift * max_rel_shift * k  # data at scale k, offset up to max_rel_shift · k
    unique = n - 1 >= max(d1, d2)  # else ortho/l-ortho are not unique off the anchors
    for method in CLOSED_FORM:
        t = Translator(method).fit(xa, ya)
        out = t.transform(x)
        assert out.dtype == dtype and out.shape == (3, d2) and np.isfinite(out).all()
        if method == "naive":  # padding/cutting only, whatever the units
            assert np.array_equal(out, np.pad(x, ((0, 0), (0, max(0, d2 - d1))))[:, :d2])
            continue
        if method in ("ortho", "l-ortho"):
            r = t.R_.numpy()
            gram = r @ r.T if d1 <= d2 else r.T @ r
            if n - 1 >= min(d1, d2):  # an isometry
                np.testing.assert_allclose(gram, np.eye(min(d1, d2)), atol=1e-8 if dtype == "float64" else 1e-5)
            else:  # below full rank: the partial isometry of the rank n - 1 part (a projector)
                np.testing.assert_allclose(gram @ gram, gram, atol=1e-8 if dtype == "float64" else 1e-5)
                assert abs(np.trace(gram) - (n - 1)) < 1e-4
            if not unique:
                continue
        if method == "linear" and dtype == "float32" and max(n - 1, d1) < 2 * min(n - 1, d1):
            continue  # n - 1 ≈ d1: centred anchors ill-conditioned, float32 loses digits (2e-3 seen)
        # standard scaling makes the result invariant to an affine change of the source's units
        t2 = Translator(method).fit(cast(xa * k + shift), ya)
        assert t2.transform(cast(x * k + shift)).dtype == dtype
        tol = rtol * (1 + np.abs(out).max())
        np.testing.assert_allclose(t2.transform(cast(x * k + shift)), out, rtol=rtol, atol=tol)
        # ...and equivariant to the target's units
        t3 = Translator(method).fit(xa, cast(ya * k + shift))
        np.testing.assert_allclose(t3.transform(x), out * k + shift, rtol=rtol, atol=tol * (k + abs(shift)))
    if n > max(d1, d2) and dtype == "float64":  # full rank: every closed-form method equals the padded reference
        for method in CLOSED_FORM:
            np.testing.assert_allclose(
                Translator(method).fit(xa, ya).transform(x), ref_translate(method, xa, ya, x), atol=1e-8
            )


# ----------------------------------------------------------------------------------------
# ridge (beyond the paper): penalty by cross-validation on the anchors, known answers
# ----------------------------------------------------------------------------------------


def ref_ridge(x, y, alpha):
    """numpy float64: argmin ||x R - y||² + alpha ||R||² = (xᵀx + alpha I)⁻¹ xᵀy."""
    return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)


@pytest.mark.parametrize("centred", [False, True])
def test_ridge_alpha_zero_is_linear_and_alpha_matches_the_normal_equations(rng, centred):
    x, y = pair(rng, 80, 6, 4)
    if centred:
        x, y = x - x.mean(0), y - y.mean(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    r0 = align.ridge_state(xt, yt, centred, alpha=0.0)["R"].numpy()
    np.testing.assert_allclose(r0, align.linear_state(xt, yt, centred)["R"].numpy(), atol=1e-12)  # N > d
    for alpha in (1e-3, 0.7, 50.0):
        st = align.ridge_state(xt, yt, centred, alpha=alpha)
        np.testing.assert_allclose(st["R"].numpy(), ref_ridge(x, y, alpha), rtol=1e-9, atol=1e-12)
        assert float(st["alpha"]) == pytest.approx(alpha)
    with pytest.raises(ValueError, match="alpha"):
        align.ridge_state(xt, yt, centred, alpha=-1.0)


def test_ridge_chooses_a_small_penalty_on_noiseless_anchors(rng):
    """y = x A exactly and N > d: every fold's held-out rows are predicted without error as the
    penalty goes to 0, so cross-validation picks the smallest λ and recovers A."""
    x = rng.normal(size=(120, 8))
    a = rng.normal(size=(8, 5))
    t = Translator("ridge", std_scaling=False).fit(x, x @ a)
    assert float(t.state_["lam"]) == min(align.RIDGE_GRID)
    np.testing.assert_allclose(t.R_.numpy(), a, atol=1e-4)


def test_ridge_shrinks_where_least_squares_interpolates(rng):
    """N - 1 ≈ d with noisy targets: least squares (min-norm) blows up, the chosen ridge penalty
    is large, its map is much smaller and predicts new samples better."""
    d, n = 40, 42
    a = rng.normal(size=(d, 5)) / np.sqrt(d)
    x, x_new = rng.normal(size=(n, d)), rng.normal(size=(500, d))
    y = x @ a + 0.5 * rng.normal(size=(n, 5))
    lin, ridge = Translator("linear").fit(x, y), Translator("ridge").fit(x, y)
    assert float(ridge.state_["lam"]) >= 1e-2
    assert np.linalg.norm(ridge.R_.numpy()) < 0.5 * np.linalg.norm(lin.R_.numpy())
    err = lambda t: float(((t.transform(x_new) - (x_new @ a + y.mean(0) - x.mean(0) @ a)) ** 2).mean())  # noqa: E731
    assert err(ridge) < 0.5 * err(lin)


def test_ridge_cv_closed_form_equals_refitting_every_fold(rng):
    """The per-fold quadratic form gives the held-out error of fitting each fold and predicting."""
    x, y = pair(rng, 30, 7, 3, noise=1.0)
    x, y = x - x.mean(0), y - y.mean(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    folds = align.ridge_folds(xt, centred=True)
    choice = align.ridge_cv(folds, yt)
    assert len(folds.folds) == align.RIDGE_FOLDS and choice.errors.shape == (len(align.RIDGE_GRID),)
    held = np.concatenate([f.held.numpy() for f in folds.folds])
    assert sorted(held) == list(range(30))  # every anchor held out exactly once
    ref = np.zeros(len(align.RIDGE_GRID))
    for f in folds.folds:
        tr, ho = f.train.numpy(), f.held.numpy()
        mx, my = x[tr].mean(0), y[tr].mean(0)
        xc = x[tr] - mx
        s = np.linalg.svd(xc, compute_uv=False)
        s = s[s > 1e-10 * s[0]]
        for g, lam in enumerate(align.RIDGE_GRID):
            r = ref_ridge(xc, y[tr] - my, lam * (s**2).mean())
            ref[g] += (((x[ho] - mx) @ r + my - y[ho]) ** 2).sum()
    np.testing.assert_allclose(choice.errors, ref / y.size, rtol=1e-7)
    assert choice.lam == align.RIDGE_GRID[int(np.argmin(ref))]


def test_ridge_folds_keep_repeated_anchors_together(rng):
    """A repeated anchor (the same report twice) is never held out while its twin is fitted on."""
    base = rng.normal(size=(25, 4))
    x = torch.from_numpy(np.vstack([base, base[:10], base[:3]]))  # 13 repeats
    folds = align.ridge_folds(x, centred=True)
    rows = [tuple(r) for r in x.numpy()]
    for f in folds.folds:
        held = {rows[i] for i in f.held.tolist()}
        assert not held & {rows[i] for i in f.train.tolist()}
    # one distinct anchor: nothing to hold out, the fit is still defined
    same = torch.ones(5, 3, dtype=torch.float64)
    assert align.ridge_folds(same).folds == ()
    assert align.ridge_state(same, torch.randn(5, 2, dtype=torch.float64))["R"].shape == (3, 2)


def test_ridge_penalty_does_not_depend_on_the_units(rng):
    """λ is relative to the anchors' own spectrum: scaling the source (no standard scaling)
    picks the same λ, and the map scales inversely."""
    x, y = pair(rng, 50, 12, 4, noise=1.0)
    t1 = Translator("ridge", std_scaling=False).fit(x, y)
    t2 = Translator("ridge", std_scaling=False).fit(x * 1e3, y)
    assert float(t1.state_["lam"]) == float(t2.state_["lam"])
    np.testing.assert_allclose(t2.R_.numpy() * 1e3, t1.R_.numpy(), rtol=1e-8, atol=1e-12)
