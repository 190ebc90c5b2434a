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
3. **estimate T** on the pre-processed anchors, with a method of the registry
   (:func:`methods`; the built-ins, in this order):

   - ``naive``   — T = identity (padding/cutting only: the paper's baseline).
   - ``affine``  — T(x) = x·R + b, trained by Adam on the MSE (latentis defaults: lr 1e-3,
     300 steps, ``nn.Linear`` initialisation, seeded).
   - ``linear``  — T(x) = x·R, R = argmin ||X R − Y||_F, minimum-norm (rank-safe) solution.
   - ``l-ortho`` — R = U·Vᵀ where U S Vᵀ is the SVD of the ``linear`` solution.
   - ``ortho``   — Procrustes: R = U·Vᵀ where U S Vᵀ is the SVD of XᵀY.

     Below full rank (fewer anchors than dimensions) the anchors fix U·Vᵀ on their span only
     and every orthogonal completion fits them equally well; latentis (so the paper's code)
     takes whatever its SVD's null-space basis gives, which moves with the thread count and
     the last bits of the input. ``l-ortho`` and ``ortho`` here return the partial isometry
     U_r·V_rᵀ on the rank-r range instead: the *mean* of all those equally good completions
     (C and −C are both one), deterministic and built from the anchors alone. Full-rank fits
     are plain U·Vᵀ (an isometry).
   - ``ridge``   — beyond the paper: ``linear`` with a ridge penalty,
     R = argmin ||X R − Y||²_F + α ||R||²_F, α chosen by 5-fold cross-validation on the
     anchors themselves (:func:`ridge_state`, :func:`ridge_cv`); it is meant to remove
     ``linear``'s double-descent dip at N ≈ d (the "Beyond the paper" chapter).

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
unpadded tensors (:func:`linear_state`, :func:`procrustes_state`, ...); :class:`Translator`
wraps them with scikit-learn conventions.

The registry
------------
Every method is one :class:`Method` in one registry: its *state function* on pre-processed,
unpadded anchors (latentis style: ``state_fn(x, y, *, centred, seed, lr, steps, shared) ->
{"R": (d1, d2)[, "b": (d2,)]}``, or ``{}`` for padding only), how it inverts (``"transpose"``
for orthogonal maps, ``"pinv"`` for general linear/affine maps, ``"pad"`` for naive), whether
it uses standard scaling, and what it can :class:`Share` across a grid of fits from one source
(the source anchors' SVD for ``linear``/``l-ortho``, their Gram matrix for ``affine``).
:class:`Translator`, :func:`fit_pairs` and :func:`semalign.stitching.stitch_grid` look methods up
there; :func:`methods` lists them in registration order (built-ins first). Adding a method is
one call::

    @register_method("ridge-1", inverse="pinv", share=SOURCE_SVD)
    def ridge_1_state(x, y, *, shared, **_):             # shared: the source's SourceSVD
        s = shared.s                                     # ridge with a fixed penalty 1
        return {"R": shared.vh.mT @ ((s / (s**2 + 1.0))[:, None] * (shared.u.mT @ shared.reduce(y)))}

after which ``Translator("ridge-1")`` and ``stitch_grid(task, ["ridge-1"])`` work unchanged (the
built-in ``ridge`` is the same estimator with its penalty chosen by cross-validation).

The batched fast path :func:`fit_pairs` fits every (source, target, method) of one anchor
draw with the results of a :class:`Translator` per cell, but standardises each encoder's
anchors once and computes each source's shared state once; ``stitch_grid`` is built on it.

Example::

    t = Translator("ortho").fit(x_anchors, y_anchors)   # (N, d1), (N, d2)
    y_hat = t.transform(x)                               # (n, d2)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from semalign.errors import SemalignError

__all__ = [
    "METHODS",
    "CONSTANT_RTOL",
    "FittedPair",
    "GRAM",
    "Inverse",
    "LSTSQ",
    "Method",
    "MethodRegistrationError",
    "NonFiniteError",
    "NotFittedError",
    "SOURCE_SVD",
    "ShapeError",
    "Share",
    "SourceSVD",
    "Translator",
    "UnknownMethodError",
    "align_threads",
    "fit_pairs",
    "clear_fit_memo",
    "get_method",
    "methods",
    "register_method",
    "unregister_method",
    "standard_scaling_state",
    "standardize",
    "destandardize",
    "zero_pad",
    "naive_state",
    "drop_mean_direction",
    "source_svd",
    "linear_state",
    "l_ortho_state",
    "procrustes_state",
    "ortho_state",
    "RIDGE_CV",
    "RIDGE_FOLDS",
    "RIDGE_GRID",
    "RidgeChoice",
    "RidgeFold",
    "RidgeFolds",
    "ridge_cv",
    "ridge_folds",
    "ridge_state",
    "affine_state",
    "affine_adam_gram",
    "apply_state",
    "svd",
    "min_norm_lstsq",
]

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


class ShapeError(SemalignError, ValueError):
    """An array of the wrong shape (or anchor sets that do not correspond); the message names
    the argument and the expected shape."""


class UnknownMethodError(SemalignError, ValueError):
    """A method name that is not in the registry; the message lists the registered ones."""


class MethodRegistrationError(SemalignError, ValueError):
    """A :func:`register_method` / :func:`unregister_method` call that cannot be honoured
    (name taken or built-in, unknown inverse, a state function returning a malformed state)."""


# --------------------------------------------------------------------------------------
# Linear-algebra helpers (rank-safe, device-agnostic)
# --------------------------------------------------------------------------------------


class align_threads:
    """Context manager: CPU factorisations (SVD, gelsd), the affine Adam loop and the small
    dependent ops around them run on ``SEMALIGN_ALIGN_THREADS`` threads (default: torch's own
    thread count, i.e. every core torch uses).

    On an idle machine two threads are 1.7–1.9× faster than one for these sizes (a 1280×1280
    matmul 31 vs 52 ms, its SVD 0.46 vs 0.82 s: ``benchmarks/RESULTS_align.md``), and the book
    is built on an idle machine. On a machine whose cores are shared with other jobs, MKL's
    threaded LAPACK and torch's OpenMP kernels spin at barriers whenever one of their threads is
    descheduled, and one thread is then much faster: set ``SEMALIGN_ALIGN_THREADS=1`` there.
    Tensors not on the CPU leave the thread count alone. Nested uses are free: the inner one
    finds the count already set. The count changes only the rounding of the results.

    ``with align_threads(x, y): ...`` — pass the tensors the block computes on.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        import os

        self.before = torch.get_num_threads()
        raw = os.environ.get("SEMALIGN_ALIGN_THREADS", "").strip()
        try:
            want = int(raw) if raw else self.before
        except ValueError:
            raise ValueError(f"SEMALIGN_ALIGN_THREADS must be a whole number of threads (e.g. 1 on a "
                             f"shared machine); got {raw!r}") from None
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
        with align_threads(a):
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
    slower than the SVD route). Never gels (``torch.linalg.lstsq`` on CUDA): it silently
    assumes full rank, wrong for N < d1 or zero-padded anchors. Nor gelsy, torch's CPU default
    (so latentis's): torch 2.13's gelsy returns wrong and run-to-run different solutions for a
    tall matrix with zero columns, exactly the zero-padded case (the trial and the timings:
    ``benchmarks/RESULTS_align.md``).
    ``route``: ``"auto"``/``"svd"`` or ``"gelsd"``.
    """
    if route not in ("auto", "gelsd", "svd"):
        raise ValueError(f"route must be 'auto', 'gelsd' or 'svd'; got {route!r}")
    if route == "gelsd":
        driver = route
        try:
            with align_threads(x, y):
                return torch.linalg.lstsq(x, y, driver=driver).solution
        except (torch.linalg.LinAlgError, RuntimeError):
            pass  # fall through to the SVD route, which has its own gesvd fallback
    u, s, vh = svd(x)
    return _min_norm_from_svd(u, s, vh, y, _rcond(x.dtype, tuple(x.shape)))


def _rank(s: torch.Tensor, rcond: float) -> int:
    """How many singular values ``s`` (descending) are not zero: those above ``rcond · s[0]``."""
    if not s.numel() or not bool(s[0] > 0):
        return 0
    return int((s > rcond * s[0]).sum())


def _polar(r: torch.Tensor) -> torch.Tensor:
    """The orthogonal factor of r (m, n): U·Vᵀ of its thin SVD.

    r of full rank min(m, n): ``U @ Vh`` of :func:`svd` (rows or columns orthonormal), unique.
    Below full rank U·Vᵀ is unique on r's range only and the SVD's basis of the null space —
    which moves with the thread count and the last bit of the input — would decide the rest;
    this returns the partial isometry U_r·V_rᵀ of the rank-r part instead (the module doc:
    the mean of every completion), the same on every machine up to rounding.
    """
    return _polar_of_product(None, r, None, tuple(r.shape))


def _polar_of_product(a: torch.Tensor | None, k: torch.Tensor, b: torch.Tensor | None,
                      shape: tuple[int, int]) -> torch.Tensor:
    """:func:`_polar` of ``m = a k bᵀ`` (``shape`` (d1, d2)) of low rank, without forming or
    factorising m: ``a`` (d1, p) and ``b`` (d2, q) have orthonormal columns (``None``: the
    identity) and ``k`` (p, q), p and q below min(d1, d2), is small — an SVD of k instead of one
    of m (for 200 anchors of 1280-d encoders, a 199² SVD instead of a 1280² one)."""
    u, s, vh = svd(k)
    r = _rank(s, _rcond(k.dtype, shape))
    u, vh = u[:, :r], vh[:r]
    u = u if a is None else a @ u
    vh = vh if b is None else vh @ b.mT
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


def _ones_reflector(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Unit (n,) vector u of the Householder reflection I − 2uuᵀ that maps 1/√n to e_n."""
    u = torch.full((n,), 1.0 / math.sqrt(n), dtype=dtype, device=device)
    u[-1] -= 1.0
    return u / torch.linalg.vector_norm(u)


def _reflect_out_ones(a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Rows 0..N-2 of (I − 2uuᵀ)·a for a (N, d): a without its all-ones direction, (N-1, d)."""
    return (a - 2.0 * torch.outer(u, u @ a))[:-1]


def drop_mean_direction(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the all-ones direction from column-centred x (N, d1), y (N, d2): (N-1, ·) each.

    Centred anchors have rank at most N-1 *exactly*, but rounding leaves a tiny singular value
    along the ones vector that a relative cut-off (eps·max(N, d)) can mistake for signal when
    N is small — and then the pseudo-inverse blows it up. A Householder reflection H maps
    1/√N to the last basis vector; rows 0..N-2 of H·x and H·y give the same least-squares
    problem (the residual of centred data has no component along 1) without that direction.
    Costs O(N·d).
    """
    u = _ones_reflector(x.shape[0], x.dtype, x.device)
    return _reflect_out_ones(x, u), _reflect_out_ones(y, u)


class SourceSVD(NamedTuple):
    """Thin SVD ``x_r = u diag(s) vh`` of a source's anchors as least squares sees them.

    ``x_r`` is the source x (N, d1), or, when ``centred``, its (N-1, d1)
    :func:`drop_mean_direction` rows; ``u`` (rows, k), ``s`` (k,), ``vh`` (k, d1),
    k = min(rows, d1); ``rcond``: gelsd's relative cut-off below which singular values count
    as zero. It does not depend on the target, so every target fitted from one source reuses
    it (:data:`SOURCE_SVD`, :data:`LSTSQ`).
    """

    u: torch.Tensor
    s: torch.Tensor
    vh: torch.Tensor
    rcond: float
    centred: bool

    def reduce(self, y: torch.Tensor) -> torch.Tensor:
        """Target anchors y (N, d2) in the rows of ``x_r``: the same reflection when centred."""
        if not self.centred:
            return y
        return _reflect_out_ones(y, _ones_reflector(y.shape[0], y.dtype, y.device))

    def solve(self, y: torch.Tensor) -> torch.Tensor:
        """Minimum-norm R (d1, d2) of ``min ||x R − y||_F`` for target anchors y (N, d2)."""
        return _min_norm_from_svd(self.u, self.s, self.vh, self.reduce(y), self.rcond)


def source_svd(x: torch.Tensor, *, centred: bool = False) -> SourceSVD:
    """:class:`SourceSVD` of anchors x (N, d1); ``centred=True`` promises zero column means
    (standard scaling does that) and factorises the :func:`drop_mean_direction` rows."""
    centred = centred and x.shape[0] > 1
    xr = _reflect_out_ones(x, _ones_reflector(x.shape[0], x.dtype, x.device)) if centred else x
    u, s, vh = svd(xr)
    return SourceSVD(u, s, vh, _rcond(xr.dtype, tuple(xr.shape)), centred)


def linear_state(x: torch.Tensor, y: torch.Tensor, centred: bool = False) -> State:
    """``{"R": (d1, d2)}``: minimum-norm least squares ``argmin ||x R - y||``, no bias.

    ``centred=True`` promises that both x and y have zero column means (standard scaling
    does that) and solves the equivalent problem of :func:`drop_mean_direction`.
    """
    return {"R": source_svd(x, centred=centred).solve(y)}


def _l_ortho_from(svd_x: SourceSVD, y: torch.Tensor) -> torch.Tensor:
    """The orthogonal factor of R_lin = ``svd_x.solve(y)``. R_lin = vhᵀ·(S⁻¹uᵀy) has rank at
    most the source's rank k; below min(d1, d2) it is factorised through that (k, d2) product
    and R_lin itself is never formed."""
    k = _rank(svd_x.s, svd_x.rcond)                   # the singular values solve() inverts
    d1, d2 = svd_x.vh.shape[1], y.shape[1]
    if k >= min(d1, d2):
        return _polar(svd_x.solve(y))
    small = (1.0 / svd_x.s[:k])[:, None] * (svd_x.u[:, :k].mT @ svd_x.reduce(y))
    return _polar_of_product(svd_x.vh[:k].mT, small, None, (d1, d2))


def l_ortho_state(x: torch.Tensor, y: torch.Tensor, centred: bool = False) -> State:
    """``{"R": (d1, d2)}``: U·Vᵀ of the SVD of the :func:`linear_state` solution (an isometry at full rank).

    When R_lin has rank r below min(d1, d2) (N - 1 < min(d1, d2) for centred anchors), U·Vᵀ is
    fixed on R_lin's range only (R_lin = (R_lin R_linᵀ)^½ U·Vᵀ holds for any completion), and
    this is the partial isometry U_r·V_rᵀ (:func:`_polar`), not an isometry.
    """
    return {"R": _l_ortho_from(source_svd(x, centred=centred), y)}


def procrustes_state(x: torch.Tensor, y: torch.Tensor, centred: bool = False) -> State:
    """``{"R": (d1, d2)}``: orthogonal Procrustes, R = U·Vᵀ with U S Vᵀ = SVD(xᵀ y).

    R minimises ||x R − y||_F over (semi-)orthogonal R. With fewer anchors than dimensions
    (N − 1 < min(d1, d2) when ``centred``, which promises zero column means as standard scaling
    gives) xᵀy has low rank r: U·Vᵀ is then fixed on its range only and this is the partial
    isometry U_r·V_rᵀ (:func:`_polar`), computed from QR factors of the anchors instead of an
    SVD of the (d1, d2) matrix.
    """
    centred = centred and x.shape[0] > 1
    d1, d2 = x.shape[1], y.shape[1]
    if x.shape[0] - centred >= min(d1, d2):
        return {"R": _polar(x.mT @ y)}
    if centred:
        x, y = drop_mean_direction(x, y)
    with align_threads(x, y):
        qx, rx = torch.linalg.qr(x.mT)                  # xᵀ = qx rx, (d1, n) (n, n)
        qy, ry = torch.linalg.qr(y.mT)
        return {"R": _polar_of_product(qx, rx @ ry.mT, qy, (d1, d2))}


ortho_state = procrustes_state


#: The relative penalties ridge's cross-validation chooses from (:func:`ridge_cv`): a fit's
#: penalty is ``α = λ · s̄²``, with ``s̄²`` the mean non-zero squared singular value of its source
#: anchors (the mean eigenvalue of xᵀx on its range), so the grid does not depend on the scale of
#: the embeddings nor on the number of anchors. λ = 10⁻⁵ … 10² in half decades (15 values): from
#: practically ``linear`` to a penalty that dominates every direction.
RIDGE_GRID: tuple[float, ...] = tuple(float(10.0 ** (e / 2)) for e in range(-10, 5))
#: Folds of ridge's cross-validation on the anchors (the usual 5).
RIDGE_FOLDS = 5


class RidgeFold(NamedTuple):
    """One fold of :func:`ridge_folds`: row indices ``train`` / ``held``; ``svd``, the
    :class:`SourceSVD` of the training rows (centred on their own mean when the fit is centred,
    whose mean is then ``x_mean``, else ``None``); ``p`` (m, k) the held-out rows in the
    training rows' right singular basis and ``pp = pᵀp`` (k, k). float64."""

    train: torch.Tensor
    held: torch.Tensor
    svd: SourceSVD
    x_mean: torch.Tensor | None
    p: torch.Tensor
    pp: torch.Tensor


class RidgeFolds(NamedTuple):
    """What ridge needs of a source's anchors, whatever the target (its :class:`Share`):
    ``full``, the SVD of all anchors (the fit's dtype); ``folds``, the cross-validation folds."""

    full: SourceSVD
    folds: tuple[RidgeFold, ...]
    centred: bool


class RidgeChoice(NamedTuple):
    """The penalty :func:`ridge_cv` chose: ``lam`` (relative, of the grid), and the curve it was
    read from: ``lams`` (G,) and ``errors`` (G,), the held-out mean squared error per target
    entry (float64 numpy)."""

    lam: float
    lams: np.ndarray
    errors: np.ndarray


def _kept(svd_x: SourceSVD) -> torch.Tensor:
    """Singular values above gelsd's cut-off (the others count as zero, as in ``linear``)."""
    s = svd_x.s
    return s > svd_x.rcond * (s[0] if s.numel() else 0)


def _mean_s2(svd_x: SourceSVD) -> float:
    keep = _kept(svd_x)
    return float((svd_x.s[keep].double() ** 2).mean()) if bool(keep.any()) else 0.0


def _ridge_weights(svd_x: SourceSVD, alpha: torch.Tensor) -> torch.Tensor:
    """``s / (s² + α)`` on the kept singular values, 0 elsewhere: (k,), or (G, k) for α (G, 1)."""
    s, keep = svd_x.s, _kept(svd_x)
    w = s / torch.where(keep, s * s + alpha, torch.ones_like(s))
    return torch.where(keep, w, torch.zeros_like(w))


def ridge_folds(x: torch.Tensor, *, centred: bool = False, n_folds: int = RIDGE_FOLDS) -> RidgeFolds:
    """The source side of ridge for anchors x (N, d1): the SVD of all anchors and the folds.

    Folds: the anchors are grouped by identical rows (the same report twice embeds to the same
    row; the Open-i pool holds about 18 % such repeats), groups are dealt to ``min(n_folds,
    groups)`` folds in the order of ``numpy.random.default_rng(0).permutation(groups)``, so a
    repeated anchor is never held out while its twin is fitted on -- leave-one-out and its
    rotation-invariant form GCV are fooled by exactly that and choose no penalty at all. With
    ``centred`` (standardised anchors: the fit has an intercept) each fold's training rows are
    centred on their own mean, the held-out rows with that mean. Folds computed in float64.
    """
    full = source_svd(x, centred=centred)
    x64 = x.double()
    _, group = torch.unique(x64, dim=0, return_inverse=True)
    groups = int(group.max()) + 1 if group.numel() else 0
    k = min(int(n_folds), groups)
    if k < 2:  # one distinct anchor: nothing to hold out (and R = 0 anyway after centring)
        return RidgeFolds(full, (), centred)
    fold_of_group = torch.empty(groups, dtype=torch.long)
    fold_of_group[torch.from_numpy(np.random.default_rng(0).permutation(groups))] = torch.arange(groups) % k
    fold = fold_of_group.to(group.device)[group]
    folds = []
    for f in range(k):
        train, held = torch.nonzero(fold != f).flatten(), torch.nonzero(fold == f).flatten()
        xt, xh = x64[train], x64[held]
        mean = xt.mean(dim=0) if centred else None
        if mean is not None:
            xt, xh = xt - mean, xh - mean
        svd_f = source_svd(xt, centred=centred)
        p = xh @ svd_f.vh.mT
        folds.append(RidgeFold(train, held, svd_f, mean, p, p.mT @ p))
    return RidgeFolds(full, tuple(folds), centred)


def ridge_cv(folds: RidgeFolds, y: torch.Tensor, grid: Sequence[float] = RIDGE_GRID) -> RidgeChoice:
    """The relative ridge penalty λ of least held-out error on the anchors (K-fold CV).

    ``folds``: :func:`ridge_folds` of the source anchors; ``y`` (N, d2) the target anchors. For
    every fold and every λ of ``grid``, the ridge map fitted on the fold's training rows (penalty
    ``λ · s̄²`` of those rows) predicts its held-out rows; the error is the squared distance to
    their target rows, summed over folds, rows and the d2 target features (each feature counts
    alike: one λ for the whole map). The smallest mean error wins, ties to the smaller λ. No
    test sample is looked at: this is the anchors' own cross-validation.

    Closed form per fold: with ``p`` the held-out rows in the fold's singular basis, ``c = Uᵀ
    y_train`` and ``w = s / (s² + α)``, the predictions are ``p diag(w) c``, so the error is
    ``||y_held||² − 2 wᵀ diag(pᵀ y_held cᵀ) + wᵀ (pᵀp ∘ c cᵀ) w``: the (k, k) products once per
    fold, then O(k²) per λ. float64.
    """
    lams = torch.tensor([float(g) for g in grid], dtype=torch.float64)
    if not bool(torch.all(lams > 0)) or lams.numel() == 0:
        raise ValueError(f"ridge: every relative penalty in grid must be > 0; got {list(grid)}")
    y64 = y.double()
    errors = torch.zeros(len(lams), dtype=torch.float64, device=y64.device)
    lams = lams.to(y64.device)
    for f in folds.folds:
        yt, yh = y64[f.train], y64[f.held]
        if f.x_mean is not None:
            my = yt.mean(dim=0)
            yt, yh = yt - my, yh - my
        c = f.svd.u.mT @ f.svd.reduce(yt)                                # (k, d2)
        w = _ridge_weights(f.svd, lams[:, None] * _mean_s2(f.svd))        # (G, k)
        cross = ((f.p.mT @ yh) * c).sum(dim=1)                            # (k,)
        quad = f.pp * (c @ c.mT)                                          # (k, k)
        errors += (yh**2).sum() - 2.0 * (w @ cross) + ((w @ quad) * w).sum(dim=1)
    n_entries = max(1, int(y64.shape[0]) * int(y64.shape[1]))
    errors = (errors / n_entries).clamp_min(0.0)
    best = int(torch.argmin(errors)) if folds.folds else 0
    return RidgeChoice(float(lams[best]), lams.cpu().numpy(), errors.cpu().numpy())


def ridge_state(x: torch.Tensor, y: torch.Tensor, centred: bool = False, alpha: float | None = None,
                *, grid: Sequence[float] = RIDGE_GRID, folds: RidgeFolds | None = None) -> State:
    """``{"R": (d1, d2), "alpha": (), "lam": ()}``: ridge ``argmin ||x R − y||²_F + α ||R||²_F``.

    ``R = V diag(s / (s² + α)) Uᵀ y_r`` from the SVD of all anchors (``centred`` as for
    :func:`linear_state`). ``alpha``: the penalty in the units of x², or ``None`` (default) for
    ``α = λ · s̄²`` with λ chosen by :func:`ridge_cv` over ``grid``; ``folds``: the source's
    :func:`ridge_folds`, if already computed. ``alpha=0`` is ``linear``'s minimum-norm solution
    (same singular-value cut-off); α > 0 shrinks each direction by ``s² / (s² + α)``, most the
    weak ones that make ``linear`` blow up when the number of anchors N is close to the
    dimension d1 (its double-descent dip). α and λ are kept in the state (0-d tensors).
    """
    if alpha is None:
        folds = folds if folds is not None else ridge_folds(x, centred=centred)
        full = folds.full
        lam = ridge_cv(folds, y, grid).lam
        alpha = lam * _mean_s2(full)
    else:
        full = folds.full if folds is not None else source_svd(x, centred=centred)
        if not (math.isfinite(float(alpha)) and float(alpha) >= 0):
            raise ValueError(f"ridge alpha must be a finite number >= 0 (or None to choose it); got {alpha!r}")
        m = _mean_s2(full)
        lam = float(alpha) / m if m > 0 else 0.0
    w = _ridge_weights(full, torch.tensor(float(alpha), dtype=full.s.dtype, device=full.s.device))
    r = full.vh.mT @ (w[:, None] * (full.u.mT @ full.reduce(y)))
    scalar = lambda v: torch.tensor(float(v), dtype=x.dtype, device=x.device)  # noqa: E731
    return {"R": r, "alpha": scalar(alpha), "lam": scalar(lam)}


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

    The fused kernel makes one pass over memory per step where the default multi-tensor path
    makes several, which at large d costs more than the (d, d) matmul of the step itself; for
    small parameters the fused kernel's fixed cost per step dominates, so they use the default
    path (measurements: ``benchmarks/RESULTS_align.md``). Same update rule either way.
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
    with torch.no_grad(), align_threads(x):
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


def apply_state(x: torch.Tensor, state: State, d_out: int) -> torch.Tensor:
    """Apply a fitted state to pre-processed x (n, d1): ``x R + b`` or pad/cut to d_out."""
    if "R" not in state:
        return zero_pad(x, d_out)
    out = x @ state["R"]
    if "b" in state:
        out = out + state["b"]
    return out


# --------------------------------------------------------------------------------------
# What fits from one source can share
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Share:
    """An intermediate result that several fits can reuse: the sharing hook of a :class:`Method`.

    ``source(x, *, centred) -> S`` depends on the source anchors x (N, d1) only;
    ``pair(S, y, *, centred) -> P`` (optional) also on the target anchors y (N, d2). A
    method's state function receives ``shared`` = P when ``pair`` is given, else S.
    :func:`fit_pairs` (so :func:`semalign.stitching.stitch_grid`) computes ``source`` once per
    source and anchor draw — once for all Shares with the same ``source`` function — and
    ``pair`` once per (source, target) for all methods with this Share; a single
    :class:`Translator` fit computes both for its one pair (:meth:`compute`). Compared by
    identity: define a Share once, at module level.
    """

    name: str
    source: Callable[..., Any]
    pair: Callable[..., Any] | None = None

    def compute(self, x: torch.Tensor, y: torch.Tensor, *, centred: bool = False) -> Any:
        """The value a state function receives for anchors x (N, d1), y (N, d2)."""
        value = self.source(x, centred=centred)
        return value if self.pair is None else self.pair(value, y, centred=centred)


def _lstsq_pair(svd_x: SourceSVD, y: torch.Tensor, *, centred: bool = False) -> torch.Tensor:
    return svd_x.solve(y)


def _gram(x: torch.Tensor, *, centred: bool = False) -> torch.Tensor | None:
    """xᵀx (d1, d1) for :func:`affine_adam_gram`; ``None`` when 2N < d1, where it uses the
    cheaper (W xᵀ) x instead."""
    return x.mT @ x if 2 * x.shape[0] >= x.shape[1] else None


#: The source's :class:`SourceSVD` (target-free): for methods built on the source's SVD.
SOURCE_SVD = Share("source-svd", source_svd)
#: The minimum-norm least-squares solution R_lin (d1, d2) from the source's SVD (``linear``):
#: R_lin once per pair, the SVD once per source (shared with ``l-ortho``'s :data:`SOURCE_SVD`,
#: which forms R_lin only at full rank).
LSTSQ = Share("lstsq", source_svd, pair=_lstsq_pair)
#: The source's Gram matrix xᵀx (``affine``), or ``None`` when 2N < d1.
GRAM = Share("gram", _gram)
#: The source's :class:`RidgeFolds` (``ridge``): its SVD and cross-validation folds, once per
#: source for all its targets.
RIDGE_CV = Share("ridge-cv", ridge_folds)


# --------------------------------------------------------------------------------------
# Inverses
# --------------------------------------------------------------------------------------


class Inverse(NamedTuple):
    """How a fitted state maps target points back to the source space.

    ``prepare(state) -> inverse state``, once per fit, in the fit's dtype (a pseudo-inverse,
    say); ``apply(inverse state, y, d1) -> x`` on pre-processed y (n, d2), returning (n, d1),
    with the inverse state cast to the compute dtype.
    """

    prepare: Callable[[State], State]
    apply: Callable[[State, torch.Tensor, int], torch.Tensor]


def _pinv_prepare(state: State) -> State:
    inv = {"pinv": torch.linalg.pinv(state["R"])}  # (d2, d1)
    if "b" in state:
        inv["b"] = state["b"]
    return inv


def _pinv_apply(inv: State, y: torch.Tensor, d_in: int) -> torch.Tensor:
    return (y - inv["b"] if "b" in inv else y) @ inv["pinv"]


def _transpose_apply(inv: State, y: torch.Tensor, d_in: int) -> torch.Tensor:
    return y @ inv["R"].mT


def _pad_apply(inv: State, y: torch.Tensor, d_in: int) -> torch.Tensor:
    return zero_pad(y, d_in)


#: The named inverses a :class:`Method` can declare. ``transpose``: y Rᵀ, the exact inverse
#: of a (semi-)orthogonal map when d1 <= d2 (and the Moore–Penrose inverse of the partial isometry
#: ``ortho``/``l-ortho`` give below full rank); ``pinv``: (y − b) pinv(R), the Moore–Penrose
#: inverse of a general linear/affine map; ``pad``: pad/cut y to d1 (naive).
INVERSES: dict[str, Inverse] = {
    "transpose": Inverse(lambda state: {"R": state["R"]}, _transpose_apply),
    "pinv": Inverse(_pinv_prepare, _pinv_apply),
    "pad": Inverse(lambda state: {}, _pad_apply),
}


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------

StateFn = Callable[..., State]

#: ``Method.fit``'s "compute the share yourself" default (``None`` is a valid shared value).
_COMPUTE = object()


@dataclasses.dataclass(frozen=True)
class Method:
    """One alignment estimator of the registry.

    ``name``
        What :class:`Translator`, :func:`semalign.stitching.stitch_grid` and the book call it.
    ``state_fn(x, y, *, centred, seed, lr, steps, shared) -> State``
        The fit on pre-processed, unpadded anchors x (N, d1), y (N, d2): returns
        ``{"R": (d1, d2)}`` (plus ``"b": (d2,)``) for T(x) = x R + b, or ``{}`` for
        padding/cutting. ``centred``: both sides were standardised (zero column means);
        ``seed``, ``lr``, ``steps``: the Translator's; ``shared``: this method's :class:`Share`
        value for these anchors (``None`` without one). Accept ``**_`` for unused keywords.
    ``inverse``
        ``"transpose"``, ``"pinv"`` or ``"pad"`` (:data:`INVERSES`), or an :class:`Inverse`.
    ``std_scaling``
        Whether the method standardises when the Translator's ``std_scaling`` is true
        (``naive``: no, it is padding only).
    ``share``
        What fits from one source can reuse (:class:`Share`), or ``None``.
    ``summary``
        One line saying what it is.
    """

    name: str
    state_fn: StateFn
    inverse: str | Inverse = "pinv"
    std_scaling: bool = True
    share: Share | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.strip() == self.name and self.name):
            raise MethodRegistrationError(f"a method name must be a non-empty string without "
                                          f"surrounding spaces; got {self.name!r}")
        if not callable(self.state_fn):
            raise MethodRegistrationError(f"method {self.name!r}: state_fn must be callable; "
                                          f"got {self.state_fn!r}")
        if not (isinstance(self.inverse, Inverse) or self.inverse in INVERSES):
            raise MethodRegistrationError(f"method {self.name!r}: inverse must be one of "
                                          f"{tuple(INVERSES)} or an Inverse; got {self.inverse!r}")
        if self.share is not None and not isinstance(self.share, Share):
            raise MethodRegistrationError(f"method {self.name!r}: share must be a Share or None; "
                                          f"got {self.share!r}")

    @property
    def inverter(self) -> Inverse:
        """The :class:`Inverse` behind ``inverse``."""
        return INVERSES[self.inverse] if isinstance(self.inverse, str) else self.inverse

    def fit(self, x: torch.Tensor, y: torch.Tensor, *, centred: bool = False, seed: int = 0,
            lr: float = 1e-3, steps: int = 300, shared: Any = _COMPUTE) -> State:
        """The fitted state on pre-processed anchors x (N, d1), y (N, d2). ``shared``: the
        share's value if already computed (:func:`fit_pairs`); by default computed here."""
        if shared is _COMPUTE:
            shared = None if self.share is None else self.share.compute(x, y, centred=centred)
        return self.state_fn(x, y, centred=centred, seed=seed, lr=lr, steps=steps, shared=shared)

    def check_state(self, state: Any, d1: int, d2: int) -> None:
        """Raise :class:`MethodRegistrationError` unless ``state`` is a dict of tensors holding
        ``"R"`` (d1, d2) and optionally ``"b"`` (d2,) — or neither, for a ``"pad"`` inverse
        (padding/cutting). Other tensor entries are kept in ``state_`` but unused."""
        ok = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
        needs_r = not (isinstance(self.inverse, str) and self.inverse == "pad") or (ok and "b" in state)
        ok = ok and (("R" in state) if needs_r else True)
        ok = ok and all(tuple(state[k].shape) == want for k, want in (("R", (d1, d2)), ("b", (d2,))) if k in state)
        if not ok:
            got = ({k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in state.items()}
                   if isinstance(state, dict) else type(state).__name__)
            raise MethodRegistrationError(
                f"method {self.name!r}: its state_fn must return {{'R': ({d1}, {d2}) tensor"
                f"[, 'b': ({d2},) tensor]}}" + ("" if needs_r else " or {}")
                + f" for anchors (N, {d1}) -> (N, {d2}); got {got}"
            )


_REGISTRY: dict[str, Method] = {}
_BUILTINS: frozenset[str] = frozenset()


def methods() -> tuple[str, ...]:
    """The registered method names, in registration order (the built-ins first: ``naive``,
    ``affine``, ``linear``, ``l-ortho``, ``ortho``, ``ridge``)."""
    return tuple(_REGISTRY)


def get_method(name: str) -> Method:
    """The registered :class:`Method` called ``name``; :class:`UnknownMethodError` otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"method must be one of the registered methods {methods()}; got {name!r} "
            f"(add one with semalign.align.register_method)"
        ) from None


def register_method(
    method: Method | str,
    state_fn: StateFn | None = None,
    /,
    *,
    inverse: str | Inverse = "pinv",
    std_scaling: bool = True,
    share: Share | None = None,
    summary: str = "",
    replace: bool = False,
) -> Any:
    """Add an alignment method to the registry; it is then usable everywhere by name.

    Three spellings::

        register_method(Method("my-ridge", my_state, inverse="pinv"))   # -> the Method
        register_method("my-ridge", my_state, inverse="pinv")           # -> the Method
        @register_method("my-ridge", inverse="pinv")                    # -> the function
        def my_state(x, y, *, centred, seed, lr, steps, shared): ...

    The keywords are :class:`Method`'s fields (ignored when a Method is passed). A name already
    registered raises :class:`MethodRegistrationError` unless ``replace=True`` (the method then
    keeps its place in :func:`methods`); built-ins cannot be replaced.
    """
    if isinstance(method, Method):
        if state_fn is not None:
            raise MethodRegistrationError("pass either a Method or a name and a state function, not both")
        return _add(method, replace)
    if not isinstance(method, str):
        raise MethodRegistrationError(f"register_method needs a Method or a name; got {method!r}")

    def make(fn: StateFn) -> Method:
        doc = (getattr(fn, "__doc__", None) or "").strip().splitlines()
        return _add(Method(method, fn, inverse=inverse, std_scaling=std_scaling, share=share,
                           summary=summary or (doc[0] if doc else "")), replace)

    if state_fn is not None:
        return make(state_fn)

    def decorator(fn: StateFn) -> StateFn:
        make(fn)
        return fn

    return decorator


def _add(method: Method, replace: bool) -> Method:
    if method.name in _BUILTINS:
        raise MethodRegistrationError(f"{method.name!r} is a built-in method and cannot be "
                                      f"replaced: register yours under another name")
    if method.name in _REGISTRY and not replace:
        raise MethodRegistrationError(f"method {method.name!r} is already registered: pass "
                                      f"replace=True, or unregister_method({method.name!r}) first")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> Method:
    """Remove a method added with :func:`register_method` and return it (built-ins stay).

    Translators already fitted with it keep working: they hold their :class:`Method`.
    """
    if name in _BUILTINS:
        raise MethodRegistrationError(f"{name!r} is a built-in method and cannot be unregistered")
    get_method(name)  # a clear error for unknown names
    return _REGISTRY.pop(name)


class _MethodNames(Sequence[str]):
    """A read-only, live view of :func:`methods` (what :data:`METHODS` is)."""

    def __getitem__(self, i: Any) -> Any:
        return methods()[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(methods())

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, list, _MethodNames)):
            return methods() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable (live), like a list

    def __repr__(self) -> str:
        return repr(methods())


#: The registered method names, a live read-only sequence that always equals :func:`methods`
#: (kept for code written before the registry, e.g. ``for m in METHODS``; new code calls
#: :func:`methods`, which returns a tuple).
METHODS: Sequence[str] = _MethodNames()


def _naive_fit(x: torch.Tensor, y: torch.Tensor, **_: Any) -> State:
    return naive_state(x, y)


def _affine_fit(x: torch.Tensor, y: torch.Tensor, *, seed: int, lr: float, steps: int,
                shared: torch.Tensor | None, **_: Any) -> State:
    return affine_state(x, y, lr=lr, steps=steps, seed=seed, gram=shared)


def _linear_fit(x: torch.Tensor, y: torch.Tensor, *, shared: torch.Tensor, **_: Any) -> State:
    return {"R": shared}


def _l_ortho_fit(x: torch.Tensor, y: torch.Tensor, *, shared: SourceSVD, **_: Any) -> State:
    return {"R": _l_ortho_from(shared, y)}


def _ortho_fit(x: torch.Tensor, y: torch.Tensor, *, centred: bool = False, **_: Any) -> State:
    return procrustes_state(x, y, centred=centred)


def _ridge_fit(x: torch.Tensor, y: torch.Tensor, *, shared: RidgeFolds, **_: Any) -> State:
    return ridge_state(x, y, shared.centred, folds=shared)


for _m in (
    Method("naive", _naive_fit, inverse="pad", std_scaling=False,
           summary="no transformation: zero-pad or cut to the target dimension (the paper's baseline)"),
    Method("affine", _affine_fit, inverse="pinv", share=GRAM,
           summary="x R + b trained by Adam on the MSE (latentis: lr 1e-3, 300 steps)"),
    Method("linear", _linear_fit, inverse="pinv", share=LSTSQ,
           summary="minimum-norm least squares x R, no bias"),
    Method("l-ortho", _l_ortho_fit, inverse="transpose", share=SOURCE_SVD,
           summary="U·Vᵀ of the SVD of the linear solution"),
    Method("ortho", _ortho_fit, inverse="transpose",
           summary="orthogonal Procrustes: U·Vᵀ of the SVD of xᵀy"),
    Method("ridge", _ridge_fit, inverse="pinv", share=RIDGE_CV,
           summary="ridge least squares x R, its penalty chosen by 5-fold cross-validation on the "
                   "anchors (beyond the paper)"),
):
    register_method(_m)
_BUILTINS = frozenset(_REGISTRY)
del _m


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
        raise ShapeError(
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




def _check_anchors(anchors: Mapping[str, torch.Tensor]) -> None:
    """Parallel anchor sets ``{argument name: (N, d)}``: one N >= 2 for all, every d >= 1."""
    shapes = {k: tuple(a.shape) for k, a in anchors.items()}
    if len({s[0] for s in shapes.values()}) > 1:
        names = " and ".join(shapes)
        got = " and ".join(f"{k} {s}" for k, s in shapes.items())
        raise ShapeError(
            f"{names} must have the same number of rows N (row i of each is the same anchor); "
            f"got {got}"
        )
    for k, s in shapes.items():
        if s[0] < 2:
            raise ShapeError(
                f"need at least 2 anchors (rows) to estimate per-feature statistics; got "
                f"{k} of shape {s}, expected (N >= 2, d)"
            )
    if any(s[1] < 1 for s in shapes.values()):
        raise ShapeError("anchors need at least one feature; got " + ", ".join(f"{k} {s}" for k, s in shapes.items()))


def _fit_dtype(x: torch.Tensor, y: torch.Tensor) -> torch.dtype:
    """One compute dtype for a fit: float64 when either side is float64 (no silent float32 fit)."""
    return torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32


def _preprocess(a: torch.Tensor, scaled: bool) -> tuple[State | None, torch.Tensor]:
    """``(scaling state or None, anchors as the estimator sees them)``."""
    if not scaled:
        return None, a
    scaling = standard_scaling_state(a)
    return scaling, standardize(a, scaling)


# --------------------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------------------


class Translator:
    """Translate a source latent space into a target one, estimated on parallel anchors.

    Parameters
    ----------
    method : a registered method name (:func:`methods`): the built-ins ``"naive"``,
        ``"affine"``, ``"linear"``, ``"l-ortho"``, ``"ortho"``, ``"ridge"`` (see the module docstring for
        the maths), or one added with :func:`register_method`. Unknown names raise
        :class:`UnknownMethodError` listing the registered ones.
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
    tensor or ``None`` for naive), ``b_`` ((d2,) or None), ``method_`` (the :class:`Method`
    fitted, so a fitted translator keeps working if the method is unregistered).

    Inputs may be numpy arrays or torch tensors; outputs are of the same kind (and on the
    input tensor's device). Dtypes: the fit computes in float64 if either anchor set is
    float64, else float32. ``transform``/``inverse_transform`` compute in float64 if the fit
    or the input is float64, else float32, and return float64 for float64 input, float32 for
    anything else (ints, float16, bfloat16, float32).

    Never NaN: NaN/inf in an input, or a fitted map or output that overflowed (values too
    large for the dtype, e.g. 1e200 anchors in float64 or 1e37 in float32 without scaling),
    raise :class:`NonFiniteError` naming the argument and what to do; a failed ``fit`` leaves
    the translator as it was. (Cheap ``isfinite`` checks: finite results are unchanged.)

    Many pairs and methods on one anchor draw: :func:`fit_pairs` gives the same translators
    with the shared work done once.
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
        get_method(method)  # fail here, listing the registered methods, not at fit
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
        _check_anchors({"x_anchors": x, "y_anchors": y})
        dtype = _fit_dtype(x, y)
        x, y = x.to(dtype), y.to(device=x.device, dtype=dtype)
        method = get_method(self.method)
        scaled = self.std_scaling and method.std_scaling
        with align_threads(x, y):  # see align_threads: small dependent ops, shared cores
            try:
                scaling_x, xs = _preprocess(x, scaled)
                scaling_y, ys = _preprocess(y, scaled)
                state = method.fit(xs, ys, centred=scaled, seed=self.seed, lr=self.lr, steps=self.steps)
            except NonFiniteError as err:  # an SVD met overflowed products
                raise self._overflow_error("fit", "an intermediate product of the fit", dtype, method,
                                           x_anchors=x, y_anchors=y) from err
        return self._set_fitted(method, x, y, scaling_x, scaling_y, state)

    def _set_fitted(self, method: Method, x: torch.Tensor, y: torch.Tensor, scaling_x: State | None,
                    scaling_y: State | None, state: State) -> "Translator":
        """Check and keep a fit of x (N, d1) -> y (N, d2) (the anchors in the compute dtype)."""
        method.check_state(state, int(x.shape[1]), int(y.shape[1]))
        # huge anchors can overflow silently (variance, Gram matrix, Adam): never keep a
        # NaN/inf map, which would turn every later output into NaN
        if not _all_finite(*state.values(), *(scaling_x or {}).values(), *(scaling_y or {}).values()):
            raise self._overflow_error("fit", "the fitted map", x.dtype, method, x_anchors=x, y_anchors=y)
        # assigned only now: a failed fit leaves the translator as it was
        self.method_ = method
        self.scaling_x_, self.scaling_y_ = scaling_x, scaling_y
        self.state_ = state
        self.R_ = state.get("R")
        self.b_ = state.get("b")
        self.dim_x_, self.dim_y_ = int(x.shape[1]), int(y.shape[1])
        self.n_anchors_ = int(x.shape[0])
        self.dtype_ = x.dtype
        self.device_ = x.device
        self._inverse: State | None = None
        return self

    def _overflow_error(self, call: str, what: str, dtype: torch.dtype, method: Method,
                        **arrays: torch.Tensor) -> NonFiniteError:
        """The error for NaN/inf that finite inputs produced: values too large for ``dtype``."""
        sizes = ", ".join(f"largest |{k}| {_max_abs(v)}" for k, v in arrays.items())
        todo = ["rescale the embeddings (e.g. divide each set by its largest absolute value)"]
        if not self.std_scaling and method.std_scaling:
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
            raise ShapeError(
                f"x must have shape (n, d1={self.dim_x_}) — the source dimension seen in fit; "
                f"got {tuple(t.shape)}"
            )
        out_device = None if as_numpy else t.device
        out_dtype, dtype = self._dtypes(t)
        t = t.to(self.device_, dtype)
        sx, sy = _cast(self.scaling_x_, dtype), _cast(self.scaling_y_, dtype)
        x_in = t
        with align_threads(t):
            if sx is not None:
                t = standardize(t, sx)
            out = apply_state(t, _cast(self.state_, dtype), self.dim_y_)
            if sy is not None:
                out = destandardize(out, sy)
        out = out.to(out_dtype)
        if not _all_finite(out):  # finite x, finite map: only overflow gets here
            raise self._overflow_error("transform", f"the output ({int((~torch.isfinite(out)).sum())} "
                                       f"values)", out_dtype, self.method_, x=x_in)
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

        The method's ``inverse`` (:class:`Method`): ``ortho``/``l-ortho`` use Rᵀ (the exact
        inverse of the padded orthogonal map); ``linear``/``affine``/``ridge`` the Moore–Penrose
        pseudo-inverse ``(y − b) pinv(R)`` (computed once per fit); ``naive`` pads/cuts.
        Round trips ``inverse_transform(transform(x)) == x`` hold exactly when d1 <= d2 (and
        R has full rank d1 for ``linear``/``affine``): when d1 > d2 the cut columns are lost.
        """
        self._check_fitted()
        t, as_numpy = _to_tensor(y, "y", f"(n, d2={self.dim_y_})", None)
        if t.shape[1] != self.dim_y_:
            raise ShapeError(
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
        inverter = self.method_.inverter
        if self._inverse is None:
            self._inverse = inverter.prepare(self.state_)  # in the fit's dtype, cast per call
        out = inverter.apply(_cast(self._inverse, dtype), t, self.dim_x_)
        if sx is not None:
            out = destandardize(out, sx)
        out = out.to(out_dtype)
        if not _all_finite(out):  # finite y, finite map: only overflow gets here
            raise self._overflow_error("inverse_transform", f"the output ({int((~torch.isfinite(out)).sum())} "
                                       f"values)", out_dtype, self.method_, y=y_in)
        return _to_kind(out, as_numpy, out_device)


# --------------------------------------------------------------------------------------
# The batched fast path: every pair and method of one anchor draw
# --------------------------------------------------------------------------------------


class FittedPair(NamedTuple):
    """One cell of :func:`fit_pairs`: ``translator`` maps ``source`` into ``target`` with ``method``."""

    source: str
    target: str
    method: str
    translator: Translator


class _FitMemo:
    """The fits of the built-in methods already made in this process, keyed by the content of
    their anchors (a digest of the bytes, shape and dtype of each side) and every argument of
    the fit; least recently used first out beyond ``SEMALIGN_FIT_MEMO_MB`` (default 512 MB).

    A fit is a deterministic function of these, so a hit is the same translator the fit would
    give, bit for bit. What it saves: tasks that share an anchor pool (the SynthCXR findings of
    Table 1 draw theirs from one pool, embedded once) fit the same (source, target, run) maps —
    seven times for seven tasks without it. A hit hands out a shallow copy (its own lazily
    computed inverse; the tensors are shared and never modified in place).
    """

    def __init__(self) -> None:
        import collections

        self.entries: "collections.OrderedDict[tuple, tuple[Translator, int]]" = collections.OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    @staticmethod
    def digest(t: torch.Tensor) -> str:
        import hashlib

        a = t.detach().to("cpu").contiguous()
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{tuple(a.shape)}|{a.dtype}|".encode())
        h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
        return h.hexdigest()

    @staticmethod
    def budget() -> int:
        import os

        raw = os.environ.get("SEMALIGN_FIT_MEMO_MB", "").strip()
        try:
            return int(float(raw) * 2**20) if raw else 512 * 2**20
        except ValueError:
            raise ValueError(f"SEMALIGN_FIT_MEMO_MB must be a number of megabytes (0 turns the memo "
                             f"off); got {raw!r}") from None

    def get(self, key: tuple) -> "Translator | None":
        entry = self.entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        hit = copy.copy(entry[0])
        hit._inverse = None
        return hit

    def put(self, key: tuple, tr: "Translator") -> None:
        tensors = [*tr.state_.values(), *(tr.scaling_x_ or {}).values(), *(tr.scaling_y_ or {}).values()]
        size = sum(int(v.numel()) * v.element_size() for v in tensors if isinstance(v, torch.Tensor))
        budget = self.budget()
        if size > budget:
            return
        self.entries[key] = (copy.copy(tr), size)
        self.bytes += size
        while self.bytes > budget:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.bytes -= dropped

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
        self.hits = self.misses = 0


_FIT_MEMO = _FitMemo()


def clear_fit_memo() -> None:
    """Forget the fits :func:`fit_pairs` keeps for anchors it has seen (see ``_FitMemo``)."""
    _FIT_MEMO.clear()


def fit_pairs(
    anchors: Mapping[str, Any],
    methods: Sequence[str],
    pairs: Iterable[tuple[str, str]] | None = None,
    *,
    std_scaling: bool = True,
    seed: int = 0,
    lr: float = 1e-3,
    steps: int = 300,
    device: str | torch.device | None = None,
) -> Iterator[FittedPair]:
    """Fit a :class:`Translator` for every (source, target) pair and method of one anchor draw.

    ``anchors``: ``{encoder name: (N, d_k) array or tensor}``, row i of every entry the same
    sample. ``methods``: registered method names (:func:`methods`). ``pairs``: ordered
    ``(source, target)`` names; default every ordered pair of distinct encoders, in the order
    of ``anchors``. ``std_scaling``, ``seed``, ``lr``, ``steps``, ``device``: the Translators'.

    Yields :class:`FittedPair` ``(source, target, method, translator)`` grouped by source
    (sources in the order they first appear in ``pairs``; then their targets in pair order;
    then ``methods`` in order). Each translator is what
    ``Translator(method, std_scaling, seed, device, lr, steps).fit(anchors[source],
    anchors[target])`` gives — the same fitted tensors and outputs, bit for bit — but each
    encoder's anchors are converted, validated and standardised once, and each method's
    :class:`Share` is computed once per source (``Share.source``, shared by every Share with
    the same source function) and once per pair (``Share.pair``): e.g. one SVD of the source's
    anchors for all its ``linear`` and ``l-ortho`` targets, and one least-squares solution per
    pair for both.

    Arguments are checked at the call; the fits happen as the iterator advances, and only one
    source's shared state is kept at a time. :func:`semalign.stitching.stitch_grid` runs one
    call per anchor draw (run, N).
    """
    specs = [get_method(m) for m in methods]
    for spec in specs:  # the Translator arguments, checked once here rather than mid-iteration
        Translator(spec.name, std_scaling=std_scaling, seed=seed, device=device, lr=lr, steps=steps)
    tensors = {k: _to_tensor(a, f"anchors[{k!r}]", "(N, d)", device)[0] for k, a in anchors.items()}
    if tensors:
        _check_anchors({f"anchors[{k!r}]": t for k, t in tensors.items()})
    names = list(tensors)
    pair_list = [(s, t) for s in names for t in names if s != t] if pairs is None else [tuple(p) for p in pairs]
    unknown = sorted({n for p in pair_list for n in p} - set(names))
    if unknown:
        raise ShapeError(f"pairs name encoders {unknown} that have no anchors; anchors has {names}")
    by_source: dict[str, list[str]] = {}
    for s, t in pair_list:
        by_source.setdefault(s, []).append(t)
    return _fit_pairs(tensors, specs, by_source, std_scaling=std_scaling, seed=seed, lr=lr,
                      steps=steps, device=device)


def _fit_pairs(tensors: dict[str, torch.Tensor], specs: list[Method], by_source: dict[str, list[str]],
               *, std_scaling: bool, seed: int, lr: float, steps: int,
               device: str | torch.device | None) -> Iterator[FittedPair]:
    """The iterator of :func:`fit_pairs` (arguments already checked)."""
    prepared: dict[tuple, tuple[State | None, torch.Tensor]] = {}
    digests: dict[str, str] = {}

    def digest(name: str) -> str:
        if name not in digests:
            digests[name] = _FIT_MEMO.digest(tensors[name])
        return digests[name]

    def prepare(name: str, dtype: torch.dtype, on: torch.device, scaled: bool) -> tuple[State | None, torch.Tensor]:
        key = (name, dtype, on, scaled)
        if key not in prepared:
            prepared[key] = _preprocess(tensors[name].to(device=on, dtype=dtype), scaled)
        return prepared[key]

    for s, targets in by_source.items():
        source_shared: dict[tuple, Any] = {}  # this source's Share.source values
        for t in targets:
            dtype = _fit_dtype(tensors[s], tensors[t])
            x = tensors[s].to(dtype)
            y = tensors[t].to(device=x.device, dtype=dtype)
            pair_shared: dict[tuple, Any] = {}  # this pair's Share.pair values
            for spec in specs:
                scaled = std_scaling and spec.std_scaling
                memo_key = None
                if spec.name in _BUILTINS:  # a registered method's code may change between calls
                    # the thread count too: it changes the rounding, and below the dimension ortho's
                    # completion with it (benchmarks/RESULTS.md, "Speed round")
                    memo_key = (digest(s), digest(t), spec.name, std_scaling, scaled, seed, lr, steps, str(dtype),
                                str(x.device), str(device), align_threads(x, y).threads)
                    hit = _FIT_MEMO.get(memo_key)
                    if hit is not None:
                        yield FittedPair(s, t, spec.name, hit)
                        continue
                tr = Translator(spec.name, std_scaling=std_scaling, seed=seed, device=device, lr=lr, steps=steps)
                with align_threads(x, y):
                    try:
                        scaling_x, xs = prepare(s, dtype, x.device, scaled)
                        scaling_y, ys = prepare(t, dtype, x.device, scaled)
                        shared = None
                        if spec.share is not None:
                            key = (spec.share.source, dtype, scaled)
                            if key not in source_shared:
                                source_shared[key] = spec.share.source(xs, centred=scaled)
                            shared = source_shared[key]
                            if spec.share.pair is not None:
                                key = (spec.share, dtype, scaled)
                                if key not in pair_shared:
                                    pair_shared[key] = spec.share.pair(shared, ys, centred=scaled)
                                shared = pair_shared[key]
                        state = spec.fit(xs, ys, centred=scaled, seed=seed, lr=lr, steps=steps, shared=shared)
                    except NonFiniteError as err:
                        raise tr._overflow_error("fit", "an intermediate product of the fit", dtype, spec,
                                                 **{f"anchors[{s!r}]": x, f"anchors[{t!r}]": y}) from err
                tr = tr._set_fitted(spec, x, y, scaling_x, scaling_y, state)
                if memo_key is not None:
                    _FIT_MEMO.put(memo_key, tr)
                yield FittedPair(s, t, spec.name, tr)
