"""semalign.align against independent float64 numpy references (paper Sec. 3.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from semalign import align
from semalign.align import METHODS, NotFittedError, Translator

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
    lin = torch.nn.Linear(dim, dim, dtype=xs.dtype)
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
        # N < d1: the linear solution has rank N < d1, so its orthogonal factor is not unique.
        # Check what any valid one satisfies: orthonormal rows and R = (R_lin R_linᵀ)^½ Q.
        q = t.R_.numpy()
        np.testing.assert_allclose(q @ q.T, np.eye(q.shape[0]), atol=1e-9)
        r_lin = Translator("linear").fit(xa, ya).R_.numpy()
        w, v = np.linalg.eigh(r_lin @ r_lin.T)
        half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
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
    lin = torch.nn.Linear(9, 9, dtype=torch.float64)
    w, b = align._linear_init(9, torch.float64, seed=7)
    assert torch.equal(w, lin.weight.detach()) and torch.equal(b, lin.bias.detach())


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
    t = Translator("affine", std_scaling=False, lr=5e-2, steps=2000).fit(x, x @ a + c)
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
    assert Translator("naive").fit(np.arange(20).reshape(10, 2), ya[:10]).dtype_ == torch.float32
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
        t = Translator(method, steps=10).fit(xa.astype(np.float32), ya.astype(np.float32))
        assert float(t.scaling_x_["std"][2]) == 1.0 and float(t.scaling_y_["std"][0]) == 1.0
        assert np.isfinite(t.transform(xa.astype(np.float32))).all()


def test_lapack_threads_restored(rng):
    before = torch.get_num_threads()
    xa, ya = pair(rng, 40, 6, 9)
    Translator("l-ortho").fit(xa, ya)
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


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=40),
    d1=dims,
    d2=dims,
    log_scale=st.floats(min_value=-3, max_value=3),
    shift=st.floats(min_value=-100, max_value=100),
    seed=st.integers(0, 2**16),
)
def test_properties(n, d1, d2, log_scale, shift, seed):
    rng = np.random.default_rng(seed)
    xa, ya = rng.normal(size=(n, d1)), rng.normal(size=(n, d2))
    x = rng.normal(size=(3, d1))
    k = 10.0**log_scale
    unique = n - 1 >= max(d1, d2)  # else ortho/l-ortho are not unique off the anchors
    for method in CLOSED_FORM:
        t = Translator(method).fit(xa, ya)
        out = t.transform(x)
        assert out.shape == (3, d2) and np.isfinite(out).all()
        if method in ("ortho", "l-ortho"):
            r = t.R_.numpy()
            gram = r @ r.T if d1 <= d2 else r.T @ r
            np.testing.assert_allclose(gram, np.eye(min(d1, d2)), atol=1e-8)
            if not unique:
                continue
        # standard scaling makes the result invariant to an affine change of the source's units
        t2 = Translator(method).fit(xa * k + shift, ya)
        tol = 1e-6 * (1 + np.abs(out).max())
        np.testing.assert_allclose(t2.transform(x * k + shift), out, rtol=1e-6, atol=tol)
        # ...and equivariant to the target's units
        t3 = Translator(method).fit(xa, ya * k + shift)
        np.testing.assert_allclose(t3.transform(x), out * k + shift, rtol=1e-6, atol=tol * (k + abs(shift)))
    if n > max(d1, d2):  # full rank: every closed-form method equals the padded reference
        for method in CLOSED_FORM:
            np.testing.assert_allclose(
                Translator(method).fit(xa, ya).transform(x), ref_translate(method, xa, ya, x), atol=1e-8
            )
