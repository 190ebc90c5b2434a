"""Semantic alignment between two latent spaces (paper Sec. 3.1).

Two parallel anchor sets ``X`` (N, d1) and ``Y`` (N, d2) — row i of each is the same
sample seen by two encoders — define a map T with ``Y ≈ T(X)``. The pipeline is the
paper's (it used latentis; this module follows latentis's behaviour):

1. **standard scaling** (``std_scaling=True``; every method but ``naive``): each feature of
   X is centred and divided by its standard deviation *over the X anchors*; the same for Y
   with the Y anchors.
   ``std`` is the unbiased estimate (ddof=1, ``torch.std``'s default, as in latentis); a
   feature that is constant over the anchors keeps scale 1 (no division by zero, no NaN).
2. **zero padding**: the smaller space is zero-padded to ``D = max(d1, d2)``.
3. **estimate T** on the pre-processed anchors (``METHODS``):

   - ``naive``   — T = identity (padding/cutting only: the paper's baseline).
   - ``affine``  — T(x) = x·R + b, trained by Adam on the MSE (latentis defaults: lr 1e-3,
     300 steps, ``nn.Linear`` initialisation, seeded).
   - ``linear``  — T(x) = x·R, R = argmin ||X R − Y||_F, minimum-norm (rank-safe) solution.
   - ``l-ortho`` — R = U·Vᵀ where U S Vᵀ is the SVD of the ``linear`` solution.
   - ``ortho``   — Procrustes: R = U·Vᵀ where U S Vᵀ is the SVD of XᵀY.

4. **de-normalise** with the *target* anchors' mean and std, and **cut** the padding so the
   output has the target dimension d2.

Padding is exact but never materialised: with zero-padded columns the padded solution's
block that reaches the output is the solution of the unpadded (N, d1) / (N, d2) problem
(zero columns of X give zero rows of the minimum-norm R; the orthogonal factor U·Vᵀ
restricted to the real rows/columns is the thin-SVD U·Vᵀ of the unpadded matrix; Adam
updates are element-wise, so the padded entries of the affine map never touch the real
ones). ``tests/test_align.py`` checks every method against a float64 numpy reference that
pads literally.

``naive`` ignores ``std_scaling``: it is the paper's baseline, "no transformation", so
``Translator("naive")`` only zero-pads or cuts x to d2 (``transform(x) == np.pad(x)[:, :d2]``
exactly), whatever ``std_scaling`` says, and its ``scaling_x_``/``scaling_y_`` are ``None``.
(latentis would standardise with the source anchors and de-normalise with the target's
around its identity estimator; that is not the paper's baseline, and
:func:`semalign.stitching.stitch_grid`'s ``naive`` rows pad/cut the raw embeddings too.)

Dtypes: the fit computes in float64 when either anchor set is float64, else in float32
(ints, float16, bfloat16 become float32); ``dtype_`` records it. ``transform`` and
``inverse_transform`` compute in float64 when the fit or the input is float64 (a float32
fitted state is then cast up, so float64 inputs keep their precision through the
pre-processing), else in float32, and return the input's precision: float64 for float64
input, float32 for anything else.

``affine`` vs ``linear``: once both sides are centred on their anchor means, the
closed-form affine least-squares optimum has bias exactly 0 and R equal to ``linear``;
the paper's ``affine`` differs from ``linear`` only because it stops after 300 Adam steps.

Functional core (latentis style): ``*_state(x, y) -> dict`` functions on pre-processed,
unpadded tensors; :class:`Translator` wraps them with scikit-learn conventions.

Example::

    t = Translator("ortho").fit(x_anchors, y_anchors)   # (N, d1), (N, d2)
    y_hat = t.transform(x)                               # (n, d2)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from semalign.errors import SemalignError

__all__ = [
    "METHODS",
    "CONSTANT_RTOL",
    "NonFiniteError",
    "NotFittedError",
    "Translator",
    "standard_scaling_state",
    "standardize",
    "destandardize",
    "zero_pad",
    "naive_state",
    "drop_mean_direction",
    "linear_state",
    "l_ortho_state",
    "procrustes_state",
    "ortho_state",
    "affine_state",
    "affine_adam_gram",
    "apply_state",
    "svd",
    "min_norm_lstsq",
]

METHODS: tuple[str, ...] = ("naive", "affine", "linear", "l-ortho", "ortho")

State = dict[str, torch.Tensor]

#: :func:`standard_scaling_state` treats a feature as constant over the anchors when its
#: float64 std is at most ``CONSTANT_RTOL · |mean|`` (float64 rounding of the statistics).
CONSTANT_RTOL: float = 1024 * float(np.finfo(np.float64).eps)


class NonFiniteError(SemalignError, ValueError):
    """NaN or inf in a :class:`Translator`'s input, or produced by it (overflow of huge values).

    The message names the argument, how many values are bad and what to do (drop/impute the
    rows, rescale the embeddings, ``std_scaling=True`` or float64 inputs). A ``ValueError`` like
    every other bad-input error of this module.
    """


class NotFittedError(ValueError, AttributeError):
    """Raised when a :class:`Translator` is used before :meth:`Translator.fit`.

    Subclasses ``ValueError`` and ``AttributeError`` like scikit-learn's ``NotFittedError``.
    """


# --------------------------------------------------------------------------------------
# Linear-algebra helpers (rank-safe, device-agnostic)
# --------------------------------------------------------------------------------------


class _lapack_threads:
    """Run CPU factorisations (SVD, gelsd) and the affine Adam loop on ``SEMALIGN_ALIGN_THREADS``
    threads (default 1).

    Measured here (MKL, 2 cores shared with other jobs): ``torch.linalg.svd`` of a 384×384
    float32 matrix took 578 ms on 2 threads and 19 ms on 1; of a 4096×4096 one 97 s vs 22 s;
    gelsd 500×384: 544 vs 80 ms. MKL's threaded LAPACK spins at barriers whenever one of its
    threads is descheduled, so on a shared machine one thread wins by far. The affine loop (300
    small dependent GEMMs, each ending at a barrier) suffers the same: 30 steps at d=384 took
    1.58 s on 2 threads, 0.39 s on 1. On an idle many-core machine set
    ``SEMALIGN_ALIGN_THREADS`` higher for large d.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        import os

        want = int(os.environ.get("SEMALIGN_ALIGN_THREADS", "1") or 1)
        self.before = torch.get_num_threads()
        cpu = all(t.device.type == "cpu" for t in tensors)
        self.threads = max(1, min(want, self.before)) if cpu else self.before

    def __enter__(self) -> None:
        if self.threads != self.before:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: object) -> None:
        if self.threads != self.before:
            torch.set_num_threads(self.before)


def svd(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD ``a = U diag(S) Vh`` of a (m, n) tensor: U (m, k), S (k,), Vh (k, n), k=min(m,n).

    Uses ``torch.linalg.svd`` (LAPACK gesdd on CPU). gesdd can fail with "did not converge"
    on real, badly conditioned anchors; then falls back to scipy's slower but more robust
    gesvd driver and returns tensors on ``a``'s device and dtype.
    """
    try:
        with _lapack_threads(a):
            return torch.linalg.svd(a, full_matrices=False)
    except (torch.linalg.LinAlgError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "converge" not in str(err).lower():
            raise
        # checked only after a failure: the normal path pays nothing. gesvd cannot help here
        # (scipy would raise its own "must not contain infs or NaNs").
        if not bool(torch.isfinite(a).all()):
            raise NonFiniteError(
                f"cannot factorise a {tuple(a.shape)} {a.dtype} matrix holding "
                f"{int((~torch.isfinite(a)).sum())} NaN/inf values: the anchors are too large "
                f"for {a.dtype} (their products overflowed). Rescale the embeddings (e.g. divide "
                f"by their largest absolute value), use std_scaling=True or float64 anchors."
            ) from None
        import scipy.linalg

        u, s, vh = scipy.linalg.svd(
            a.detach().cpu().numpy(), full_matrices=False, lapack_driver="gesvd"
        )
        back = lambda m: torch.from_numpy(np.ascontiguousarray(m)).to(a.device, a.dtype)  # noqa: E731
        return back(u), back(s), back(vh)


def _rcond(dtype: torch.dtype, shape: tuple[int, ...]) -> float:
    # LAPACK gelsd's and torch.linalg.lstsq's default cut-off for "zero" singular values.
    return torch.finfo(dtype).eps * max(shape)


def _min_norm_from_svd(
    u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, y: torch.Tensor, rcond: float
) -> torch.Tensor:
    """Minimum-norm least-squares solution ``pinv(X) @ y`` from the thin SVD of X."""
    keep = s > rcond * (s[0] if s.numel() else 0)
    inv = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
    return vh.mT @ (inv[:, None] * (u.mT @ y))


def min_norm_lstsq(x: torch.Tensor, y: torch.Tensor, route: str = "auto") -> torch.Tensor:
    """Minimum-norm solution R (d1, d2) of ``min ||x R - y||_F`` for x (N, d1), y (N, d2).

    Rank-safe on every device: the default route is an explicit SVD pseudo-inverse (singular
    values below eps·max(N, d1)·s_max count as zero, gelsd's default cut-off), with the gesvd
    fallback of :func:`svd`. ``route="gelsd"`` uses LAPACK gelsd (CPU only; same answer,
    1.5× slower here). Never gels (``torch.linalg.lstsq`` on CUDA): it silently assumes full
    rank, wrong for N < d1 or zero-padded anchors. Nor gelsy, torch's CPU default (so
    latentis's): measured here, torch 2.13 gelsy returns wrong and run-to-run different
    solutions for a tall matrix with zero columns (20×15, rank 10: 18 of 30 calls off by up
    to 1.7), exactly the zero-padded case.
    ``route``: ``"auto"``/``"svd"`` or ``"gelsd"``.
    """
    if route not in ("auto", "gelsd", "svd"):
        raise ValueError(f"route must be 'auto', 'gelsd' or 'svd'; got {route!r}")
    if route == "gelsd":
        driver = route
        try:
            with _lapack_threads(x, y):
                return torch.linalg.lstsq(x, y, driver=driver).solution
        except (torch.linalg.LinAlgError, RuntimeError):
            pass  # fall through to the SVD route, which has its own gesvd fallback
    u, s, vh = svd(x)
    return _min_norm_from_svd(u, s, vh, y, _rcond(x.dtype, tuple(x.shape)))


def _polar(r: torch.Tensor) -> torch.Tensor:
    """Orthogonal factor U·Vᵀ of the thin SVD of r (m, n); rows or columns orthonormal."""
    u, _, vh = svd(r)
    return u @ vh


# --------------------------------------------------------------------------------------
# Pre-processing
# --------------------------------------------------------------------------------------


def standard_scaling_state(x: torch.Tensor) -> State:
    """Per-feature ``{"mean": (d,), "std": (d,)}`` of anchors x (N, d), N >= 2.

    Computed in float64 and cast back to x's dtype. ``std`` is unbiased (ddof=1, as
    latentis / ``torch.std``). A feature constant over the anchors keeps std 1, so it is only
    centred (latentis does the same; otherwise NaN/inf reach the SVD and it "does not
    converge"). "Constant" is judged on the float64 statistics, whatever x's dtype:
    ``std <= CONSTANT_RTOL · |mean|`` (``CONSTANT_RTOL`` = 1024·eps(float64) ≈ 2.3e-13, room
    for the rounding of the float64 mean; a column of identical values has exactly zero
    variance on CPU anyway, float32 ones included, since they are exact in float64), or a
    std that x's dtype cannot hold as a normal number (below ``finfo(dtype).tiny``; dividing
    by it would overflow). A non-constant float32 feature has a relative spread of at least
    ~eps(float32)/√N ≫ CONSTANT_RTOL, so it is always scaled, however large its offset or small
    its spread: float32 and float64 anchors are pre-processed alike (scale invariance holds).
    """
    var, mean = torch.var_mean(x.to(torch.float64), dim=0, correction=1)
    std = var.sqrt()
    constant = (std <= CONSTANT_RTOL * mean.abs()) | (std < torch.finfo(x.dtype).tiny)
    std = torch.where(constant, torch.ones_like(std), std)
    return {"mean": mean.to(x.dtype), "std": std.to(x.dtype)}


def standardize(x: torch.Tensor, state: State) -> torch.Tensor:
    """``(x - mean) / std`` with a :func:`standard_scaling_state`."""
    return (x - state["mean"]) / state["std"]


def destandardize(x: torch.Tensor, state: State) -> torch.Tensor:
    """Inverse of :func:`standardize`: ``x * std + mean``."""
    return x * state["std"] + state["mean"]


def zero_pad(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Pad x (n, d) with zero columns to (n, dim), or cut it to its first ``dim`` columns."""
    d = x.shape[1]
    if d >= dim:
        return x[:, :dim]
    return torch.nn.functional.pad(x, (0, dim - d))


# --------------------------------------------------------------------------------------
# Estimators: x (N, d1), y (N, d2) already pre-processed; padding implicit (see module doc)
# --------------------------------------------------------------------------------------


def naive_state(x: torch.Tensor, y: torch.Tensor) -> State:
    """No transformation: the output is x zero-padded or cut to d2. Empty state."""
    return {}


def drop_mean_direction(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the all-ones direction from column-centred x (N, d1), y (N, d2): (N-1, ·) each.

    Centred anchors have rank at most N-1 *exactly*, but rounding leaves a tiny singular value
    along the ones vector that a relative cut-off (eps·max(N, d)) can mistake for signal when
    N is small — and then the pseudo-inverse blows it up. A Householder reflection H maps
    1/√N to the last basis vector; rows 0..N-2 of H·x and H·y give the same least-squares
    problem (the residual of centred data has no component along 1) without that direction.
    Costs O(N·d).
    """
    n = x.shape[0]
    u = torch.full((n,), 1.0 / math.sqrt(n), dtype=x.dtype, device=x.device)
    u[-1] -= 1.0
    u = u / torch.linalg.vector_norm(u)

    def reflect(a: torch.Tensor) -> torch.Tensor:
        return (a - 2.0 * torch.outer(u, u @ a))[:-1]

    return reflect(x), reflect(y)


def linear_state(x: torch.Tensor, y: torch.Tensor, centred: bool = False) -> State:
    """``{"R": (d1, d2)}``: minimum-norm least squares ``argmin ||x R - y||``, no bias.

    ``centred=True`` promises that both x and y have zero column means (standard scaling
    does that) and solves the equivalent problem of :func:`drop_mean_direction`.
    """
    if centred and x.shape[0] > 1:
        x, y = drop_mean_direction(x, y)
    return {"R": min_norm_lstsq(x, y)}


def l_ortho_state(x: torch.Tensor, y: torch.Tensor, centred: bool = False) -> State:
    """``{"R": (d1, d2)}``: U·Vᵀ of the SVD of the :func:`linear_state` solution (an isometry).

    When R_lin has rank below min(d1, d2) (N - 1 < min(d1, d2) for centred anchors), U·Vᵀ is
    not unique on R_lin's null space; any choice satisfies R_lin = (R_lin R_linᵀ)^½ U·Vᵀ.
    """
    return {"R": _polar(linear_state(x, y, centred)["R"])}


def procrustes_state(x: torch.Tensor, y: torch.Tensor) -> State:
    """``{"R": (d1, d2)}``: orthogonal Procrustes, R = U·Vᵀ with U S Vᵀ = SVD(xᵀ y).

    R minimises ||x R − y||_F over (semi-)orthogonal R.
    """
    return {"R": _polar(x.mT @ y)}


ortho_state = procrustes_state


def _linear_init(d_pad: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.Linear(d_pad, d_pad)``'s default initialisation, drawn from a private generator.

    Bit-identical to ``torch.manual_seed(seed); nn.Linear(d_pad, d_pad)`` on CPU (what latentis
    does: a float32 module), without touching the global RNG, then cast to ``dtype``. The draw
    is always float32: ``uniform_`` consumes the generator differently per dtype, so a float64
    draw would be a different initialisation and float32 and float64 fits of the same anchors
    would end 300 Adam steps apart (R differed by 0.58 on a 200×6 example; 3e-7 with this).
    Returns weight (out, in) and bias (out,).
    """
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    # kaiming_uniform_(a=sqrt(5)): bound = sqrt(3) * gain / sqrt(fan_in), gain = sqrt(2 / 6)
    w_bound = math.sqrt(3.0) * (math.sqrt(2.0 / (1 + 5)) / math.sqrt(d_pad))
    weight = torch.empty(d_pad, d_pad, dtype=torch.float32).uniform_(-w_bound, w_bound, generator=g)
    b_bound = 1 / math.sqrt(d_pad)
    bias = torch.empty(d_pad, dtype=torch.float32).uniform_(-b_bound, b_bound, generator=g)
    return weight.to(dtype), bias.to(dtype)


def _adam(params: list[torch.Tensor], **kw: Any) -> torch.optim.Optimizer:
    """``torch.optim.Adam``; its fused kernel for large parameters, where the device has one.

    The fused kernel is one pass over memory per step, the default multi-tensor path ~7,
    which on 2 CPU cores costs more than the (d, d) matmul of a step at d=768. For small
    parameters the fused kernel's fixed cost (~ms per step) dominates, so they use the
    default path. Same update rule either way.
    """
    if params[0].numel() >= 1 << 16:
        try:
            return torch.optim.Adam(params, fused=True, **kw)
        except (RuntimeError, ValueError, TypeError):
            pass
    return torch.optim.Adam(params, **kw)


def affine_adam_gram(
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    lr: float = 1e-3,
    steps: int = 300,
    n_out: int | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    gram: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on ``mean((x Wᵀ + b − y)²)`` from (weight (d2, d1), bias (d2,)); returns the result.

    Same iterates as ``torch.optim.Adam`` (default hyper-parameters; its fused kernel where
    available) on ``F.mse_loss`` with autograd — tests check this to 1e-12 in float64 — but the gradient of the quadratic loss needs only ``G = xᵀx``, ``C = yᵀx`` and
    the column sums, computed once::

        ∇W = c (W G + b sxᵀ − C),   ∇b = c (W sx + N b − sy),   c = 2 / (N · n_out)

    so each step costs d2·d1·min(d1, 2N) instead of the 2·N·d1·d2 of forward + backward
    (when 2N < d1 it uses ``(W xᵀ) x``, cheaper than the Gram). ``n_out`` is the number of
    output columns the MSE averages over (the padded dimension; default d2). ``gram`` may pass
    a precomputed ``xᵀx`` (shared by every target fitted from the same source anchors).
    """
    n, _ = x.shape
    d2 = y.shape[1]
    c = 2.0 / (n * (n_out or d2))
    low_rank = gram is None and 2 * n < x.shape[1]
    if gram is None and not low_rank:
        gram = x.mT @ x  # (d1, d1)
    cross = y.mT @ x  # (d2, d1)
    sx = x.sum(dim=0)  # (d1,)
    sy = y.sum(dim=0)  # (d2,)
    w = weight.detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    gw = torch.empty_like(w)
    gb = torch.empty_like(b)
    w.grad, b.grad = gw, gb
    opt = _adam([w, b], lr=lr, betas=betas, eps=eps)
    with torch.no_grad(), _lapack_threads(x):
        for _ in range(steps):
            if low_rank:
                torch.matmul(w @ x.mT, x, out=gw)
            else:
                torch.matmul(w, gram, out=gw)
            gw.addr_(b, sx).sub_(cross).mul_(c)
            torch.mv(w, sx, out=gb)
            gb.add_(b, alpha=n).sub_(sy).mul_(c)
            opt.step()
    return w.detach(), b.detach()


def affine_state(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float = 1e-3,
    steps: int = 300,
    seed: int = 0,
    gram: torch.Tensor | None = None,
) -> State:
    """``{"R": (d1, d2), "b": (d2,)}``: T(x) = x R + b trained by Adam on the MSE (latentis).

    latentis trains ``nn.Linear(D, D)`` (D = max(d1, d2), the padded dimension), initialised
    after ``manual_seed(seed)``, with ``Adam(lr)`` for ``steps`` steps of ``F.mse_loss`` on the
    padded anchors. This is the same algorithm: the same initial weights (the D×D draw, of
    which the block acting on real inputs/outputs is kept), the MSE averaged over N·D, and
    exact Adam iterates, via the Gram-matrix gradient of :func:`affine_adam_gram`.
    """
    d1, d2 = x.shape[1], y.shape[1]
    d_pad = max(d1, d2)
    weight, bias = _linear_init(d_pad, x.dtype, seed)
    w0 = weight[:d2, :d1].to(x.device)
    b0 = bias[:d2].to(x.device)
    w, b = affine_adam_gram(x, y, w0, b0, lr=lr, steps=steps, n_out=d_pad, gram=gram)
    return {"R": w.mT.contiguous(), "b": b}


_STATE_FNS = {
    "naive": naive_state,
    "linear": linear_state,
    "l-ortho": l_ortho_state,
    "ortho": procrustes_state,
}


def apply_state(x: torch.Tensor, state: State, d_out: int) -> torch.Tensor:
    """Apply a fitted state to pre-processed x (n, d1): ``x R + b`` or pad/cut to d_out."""
    if "R" not in state:
        return zero_pad(x, d_out)
    out = x @ state["R"]
    if "b" in state:
        out = out + state["b"]
    return out


# --------------------------------------------------------------------------------------
# Input validation and array kinds
# --------------------------------------------------------------------------------------


def _to_tensor(
    a: Any, name: str, shape_hint: str, device: torch.device | str | None
) -> tuple[torch.Tensor, bool]:
    """Validate ``a`` as a finite 2-D float matrix; return (tensor, was_numpy)."""
    is_torch = isinstance(a, torch.Tensor)
    if not is_torch:
        try:
            arr = np.asarray(a)
        except Exception as err:  # pragma: no cover - exotic inputs
            raise TypeError(f"{name} must be a numpy array or torch tensor of shape {shape_hint}") from err
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TypeError(
                f"{name} must hold numbers, shape {shape_hint}; got dtype {arr.dtype}"
            )
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real-valued, shape {shape_hint}; got {arr.dtype}")
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype))
    else:
        t = a.detach()
        if t.is_complex():
            raise TypeError(f"{name} must be real-valued, shape {shape_hint}; got {t.dtype}")
        if t.dtype != torch.float64:
            t = t.to(torch.float32)
    if t.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape {shape_hint}; got shape {tuple(t.shape)}"
            + (" (use x.reshape(1, -1) for a single sample)" if t.ndim == 1 else "")
        )
    if device is not None:
        t = t.to(device)
    # fast path: one reduction; NaN/inf always make the sum non-finite (overflow may too,
    # so a non-finite sum is confirmed element-wise)
    if not bool(torch.isfinite(t.sum())) and bool((bad := ~torch.isfinite(t)).any()):
        rows = torch.nonzero(bad.any(dim=1)).flatten()[:5].tolist()
        # a finite array of another float type (longdouble, huge ints) can overflow float32
        cast = (not is_torch and bool(np.isfinite(arr).all())) or (
            is_torch and bool(torch.isfinite(a.detach()).all()))
        why = (f"after conversion to float32: its {arr.dtype if not is_torch else a.dtype} "
               f"values exceed float32's range; pass float64" if cast
               else "drop or impute those rows first")
        raise NonFiniteError(
            f"{name} (shape {shape_hint}) contains {int(bad.sum())} NaN/inf values "
            f"(first rows {rows}) of its {t.shape[0]} x {t.shape[1]}; {why}"
        )
    return t, not is_torch


def _max_abs(t: torch.Tensor) -> str:
    """Largest finite absolute value of t, for error messages (only computed on failure)."""
    fin = t[torch.isfinite(t)]
    return f"{float(fin.abs().max()):.3g}" if fin.numel() else "none finite"


def _all_finite(*tensors: torch.Tensor | None) -> bool:
    """True when every given tensor holds only finite values (``None`` entries are skipped)."""
    return all(bool(torch.isfinite(v).all()) for v in tensors if v is not None)


def _cast(state: State | None, dtype: torch.dtype) -> State | None:
    """A fitted state (or scaling state) with its tensors in ``dtype`` (no copy if already)."""
    return None if state is None else {k: v.to(dtype) for k, v in state.items()}


def _to_kind(t: torch.Tensor, as_numpy: bool, device: torch.device | None) -> Any:
    if as_numpy:
        return t.detach().cpu().numpy()
    return t if device is None else t.to(device)


# --------------------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------------------


class Translator:
    """Translate a source latent space into a target one, estimated on parallel anchors.

    Parameters
    ----------
    method : one of :data:`METHODS` — ``"naive"``, ``"affine"``, ``"linear"``, ``"l-ortho"``,
        ``"ortho"`` (see the module docstring for the maths).
    std_scaling : standardise each side with its own anchors' statistics and de-normalise
        outputs with the target's (paper Sec. 3.1). Ignored by ``naive``, which is always
        padding/cutting only (the paper's "no transformation" baseline).
    seed : seed of the ``affine`` initialisation (unused by the closed-form methods).
    device : torch device to compute on; ``None`` = the anchors' device (CPU for numpy).
    lr, steps : Adam learning rate and number of steps for ``affine`` (latentis: 1e-3, 300).

    Fitted attributes
    -----------------
    ``dim_x_`` (d1), ``dim_y_`` (d2), ``n_anchors_`` (N), ``dtype_`` (the fit's compute dtype),
    ``device_``, ``scaling_x_`` / ``scaling_y_`` (``{"mean", "std"}``; ``None`` without
    scaling and for naive), ``state_`` (the dict of the functional core), ``R_`` ((d1, d2)
    tensor or ``None`` for naive), ``b_`` ((d2,) or None).

    Inputs may be numpy arrays or torch tensors; outputs are of the same kind (and on the
    input tensor's device). Dtypes: the fit computes in float64 if either anchor set is
    float64, else float32. ``transform``/``inverse_transform`` compute in float64 if the fit
    or the input is float64, else float32, and return float64 for float64 input, float32 for
    anything else (ints, float16, bfloat16, float32).

    Never NaN: NaN/inf in an input, or a fitted map or output that overflowed (values too
    large for the dtype, e.g. 1e200 anchors in float64 or 1e37 in float32 without scaling),
    raise :class:`NonFiniteError` naming the argument and what to do; a failed ``fit`` leaves
    the translator as it was. (Cheap ``isfinite`` checks: finite results are unchanged.)
    """

    def __init__(
        self,
        method: str = "ortho",
        std_scaling: bool = True,
        seed: int = 0,
        device: str | torch.device | None = None,
        lr: float = 1e-3,
        steps: int = 300,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        if not (isinstance(steps, int) and steps >= 0):
            raise ValueError(f"steps must be a non-negative int; got {steps!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0; got {lr!r}")
        self.method = method
        self.std_scaling = bool(std_scaling)
        self.seed = int(seed)
        self.device = device
        self.lr = float(lr)
        self.steps = steps

    def __repr__(self) -> str:
        return (
            f"Translator(method={self.method!r}, std_scaling={self.std_scaling}, "
            f"seed={self.seed}, device={self.device!r}, lr={self.lr}, steps={self.steps})"
        )

    # -- fit ------------------------------------------------------------------------------

    def fit(self, x_anchors: Any, y_anchors: Any) -> "Translator":
        """Estimate T from parallel anchors x_anchors (N, d1) and y_anchors (N, d2); N >= 2."""
        x, _ = _to_tensor(x_anchors, "x_anchors", "(N, d1)", self.device)
        y, _ = _to_tensor(y_anchors, "y_anchors", "(N, d2)", self.device)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                "x_anchors and y_anchors must have the same number of rows N (row i of each is "
                f"the same anchor); got x_anchors {tuple(x.shape)} and y_anchors {tuple(y.shape)}"
            )
        if x.shape[0] < 2:
            raise ValueError(
                f"need at least 2 anchors (rows) to estimate per-feature statistics; got "
                f"x_anchors of shape {tuple(x.shape)}, expected (N >= 2, d1)"
            )
        if x.shape[1] < 1 or y.shape[1] < 1:
            raise ValueError(
                f"anchors need at least one feature; got x_anchors {tuple(x.shape)}, "
                f"y_anchors {tuple(y.shape)}"
            )
        # one compute dtype: float64 when either side is float64 (no silent float32 fit)
        dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
        x, y = x.to(dtype), y.to(device=x.device, dtype=dtype)

        with _lapack_threads(x, y):  # see _lapack_threads: small dependent ops, shared cores
            try:
                scaling_x, scaling_y, state = self._fit_scaled(x, y)
            except NonFiniteError as err:  # an SVD met overflowed products
                raise self._overflow_error("fit", "an intermediate product of the fit", dtype,
                                           x_anchors=x, y_anchors=y) from err
        # huge anchors can overflow silently (variance, Gram matrix, Adam): never keep a
        # NaN/inf map, which would turn every later output into NaN
        if not (_all_finite(*state.values())
                and (scaling_x is None or _all_finite(*scaling_x.values(), *scaling_y.values()))):
            raise self._overflow_error("fit", "the fitted map", dtype, x_anchors=x, y_anchors=y)
        # assigned only now: a failed fit leaves the translator as it was
        self.scaling_x_, self.scaling_y_ = scaling_x, scaling_y
        self.state_ = state
        self.R_ = state.get("R")
        self.b_ = state.get("b")
        self.dim_x_, self.dim_y_ = int(x.shape[1]), int(y.shape[1])
        self.n_anchors_ = int(x.shape[0])
        self.dtype_ = dtype
        self.device_ = x.device
        self._pinv = None
        return self

    def _fit_scaled(self, x: torch.Tensor, y: torch.Tensor) -> tuple[State | None, State | None, State]:
        """``(scaling_x, scaling_y, state)`` fitted on x, y (nothing is assigned to self)."""
        if self.std_scaling and self.method != "naive":
            scaling_x = standard_scaling_state(x)
            scaling_y = standard_scaling_state(y)
            xs, ys = standardize(x, scaling_x), standardize(y, scaling_y)
        else:
            scaling_x = scaling_y = None
            xs, ys = x, y

        if self.method == "affine":
            state = affine_state(xs, ys, lr=self.lr, steps=self.steps, seed=self.seed)
        elif self.method in ("linear", "l-ortho"):
            state = _STATE_FNS[self.method](xs, ys, centred=self.std_scaling)
        else:
            state = _STATE_FNS[self.method](xs, ys)
        return scaling_x, scaling_y, state

    def _overflow_error(self, call: str, what: str, dtype: torch.dtype,
                        **arrays: torch.Tensor) -> NonFiniteError:
        """The error for NaN/inf that finite inputs produced: values too large for ``dtype``."""
        sizes = ", ".join(f"largest |{k}| {_max_abs(v)}" for k, v in arrays.items())
        todo = ["rescale the embeddings (e.g. divide each set by its largest absolute value)"]
        if not self.std_scaling and self.method != "naive":
            todo.append(("refit with" if call != "fit" else "use") + " std_scaling=True")
        if dtype != torch.float64:
            todo.append("pass float64 arrays")
        return NonFiniteError(
            f"{self!r}.{call}: {what} holds NaN/inf although the inputs are finite ({sizes}): "
            f"the values are too large for {dtype} and overflowed. To fix: " + ", or ".join(todo) + "."
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "state_"):
            raise NotFittedError(
                f"This {self!r} is not fitted yet: call .fit(x_anchors, y_anchors) first"
            )

    # -- transform ------------------------------------------------------------------------

    def transform(self, x: Any) -> Any:
        """Map source embeddings x (n, d1) into the target space: returns (n, d2)."""
        self._check_fitted()
        t, as_numpy = _to_tensor(x, "x", f"(n, d1={self.dim_x_})", None)
        if t.shape[1] != self.dim_x_:
            raise ValueError(
                f"x must have shape (n, d1={self.dim_x_}) — the source dimension seen in fit; "
                f"got {tuple(t.shape)}"
            )
        out_device = None if as_numpy else t.device
        out_dtype, dtype = self._dtypes(t)
        t = t.to(self.device_, dtype)
        sx, sy = _cast(self.scaling_x_, dtype), _cast(self.scaling_y_, dtype)
        x_in = t
        with _lapack_threads(t):
            if sx is not None:
                t = standardize(t, sx)
            out = apply_state(t, _cast(self.state_, dtype), self.dim_y_)
            if sy is not None:
                out = destandardize(out, sy)
        out = out.to(out_dtype)
        if not _all_finite(out):  # finite x, finite map: only overflow gets here
            raise self._overflow_error("transform", f"the output ({int((~torch.isfinite(out)).sum())} "
                                       f"values)", out_dtype, x=x_in)
        return _to_kind(out, as_numpy, out_device)

    def _dtypes(self, t: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
        """(output dtype, compute dtype) for input t: see the class docstring."""
        out_dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
        return out_dtype, (torch.float64 if torch.float64 in (out_dtype, self.dtype_) else self.dtype_)

    def fit_transform(self, x_anchors: Any, y_anchors: Any) -> Any:
        """``fit(x_anchors, y_anchors).transform(x_anchors)``."""
        return self.fit(x_anchors, y_anchors).transform(x_anchors)

    def inverse_transform(self, y: Any) -> Any:
        """Map target embeddings y (n, d2) back into the source space: returns (n, d1).

        ``ortho``/``l-ortho`` use Rᵀ (the exact inverse of the padded orthogonal map);
        ``linear``/``affine`` the Moore–Penrose pseudo-inverse ``(y − b) pinv(R)``; ``naive``
        pads/cuts. Round trips ``inverse_transform(transform(x)) == x`` hold exactly when
        d1 <= d2 (and R has full rank d1 for ``linear``/``affine``): when d1 > d2 the cut
        columns are lost.
        """
        self._check_fitted()
        t, as_numpy = _to_tensor(y, "y", f"(n, d2={self.dim_y_})", None)
        if t.shape[1] != self.dim_y_:
            raise ValueError(
                f"y must have shape (n, d2={self.dim_y_}) — the target dimension seen in fit; "
                f"got {tuple(t.shape)}"
            )
        out_device = None if as_numpy else t.device
        out_dtype, dtype = self._dtypes(t)
        t = t.to(self.device_, dtype)
        y_in = t
        sx, sy = _cast(self.scaling_x_, dtype), _cast(self.scaling_y_, dtype)
        if sy is not None:
            t = standardize(t, sy)
        if self.R_ is None:
            out = zero_pad(t, self.dim_x_)
        elif self.method in ("ortho", "l-ortho"):
            out = t @ self.R_.to(dtype).mT
        else:
            if self._pinv is None:
                self._pinv = torch.linalg.pinv(self.R_)  # (d2, d1), in the fit's dtype
            b = self.b_.to(dtype) if self.b_ is not None else None
            out = (t - b if b is not None else t) @ self._pinv.to(dtype)
        if sx is not None:
            out = destandardize(out, sx)
        out = out.to(out_dtype)
        if not _all_finite(out):  # finite y, finite map: only overflow gets here
            raise self._overflow_error("inverse_transform", f"the output ({int((~torch.isfinite(out)).sum())} "
                                       f"values)", out_dtype, y=y_in)
        return _to_kind(out, as_numpy, out_device)
