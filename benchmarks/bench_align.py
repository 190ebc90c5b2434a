"""Speed of semalign.align / semalign.stitching (issue 2's speed section). Run by hand:

    python benchmarks/bench_align.py                 # everything (~10-20 min on 2 cores)
    python benchmarks/bench_align.py --section closed --sizes 500x384 2500x768
    python benchmarks/bench_align.py --section affine
    python benchmarks/bench_align.py --section grid

Sections
- ``closed``: each closed-form method, ``Translator(m).fit(x, y).transform(x)``, against the
  bare LAPACK call(s) it cannot avoid on the same float32 data: ortho → ``svd(xᵀy)``,
  linear → ``lstsq(x, y, driver="gelsd")``, l-ortho → lstsq + svd of the solution. Best of
  ``--repeats``.
- ``affine``: the 300-step Adam affine fit against the same algorithm written the plain
  autograd way (latentis 0.0.8's ``sgd_affine_align_state``: ``nn.Linear(D, D)``,
  ``torch.optim.Adam`` default, ``F.mse_loss`` on padded data) — and with Adam's fused
  kernel, to separate the two sources of speed-up. Also checks the results agree.
- ``grid``: a Fig. 3 grid (4 methods × 8 anchor counts × 3 runs × 12 ordered pairs of 4
  encoders, d = 384, 768, 256, 256 like the offline text profile) on synthetic embeddings,
  against its FLOP floor: the GEMM flops the algorithms cannot avoid (Adam steps
  2·d_t·d_s·min(d_s, 2n) each, the product xᵀy, the SVDs at ~(4/3 + 8)·m·n² flops) divided
  by this machine's measured float32 GEMM rate.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from semalign.align import Translator
from timing import best_of

METHODS_CLOSED = ("linear", "l-ortho", "ortho")


def gemm_gflops(d: int = 768, repeats: int = 20) -> float:
    a, b = torch.randn(d, d), torch.randn(d, d)
    a @ b
    t = best_of(lambda: a @ b, repeats)
    return 2 * d**3 / t / 1e9


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, numpy {np.__version__}, python {platform.python_version()}"
    )


# ------------------------------------------------------------------------------------------


def bench_closed(sizes: list[tuple[int, int]], repeats: int) -> None:
    print("\n## Closed-form methods vs bare LAPACK (float32, seconds, best of %d)\n" % repeats)
    print("| N | d | method | semalign fit+transform | bare LAPACK (torch threads) | bare LAPACK (1 thread) | ratio to the faster bare |")
    print("|---|---|---|---|---|---|---|")
    for n, d in sizes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=g)
        y = x @ torch.randn(d, d, generator=g) / math.sqrt(d) + 0.1 * torch.randn(n, d, generator=g)
        reps = repeats if d < 4096 else 1
        bare = {
            "ortho": lambda: torch.linalg.svd(x.mT @ y, full_matrices=False),
            "linear": lambda: torch.linalg.lstsq(x, y, driver="gelsd"),
            "l-ortho": lambda: torch.linalg.svd(
                torch.linalg.lstsq(x, y, driver="gelsd").solution, full_matrices=False
            ),
        }
        for m in METHODS_CLOSED:
            ours = best_of(lambda: Translator(m).fit(x, y).transform(x), reps)
            ref = best_of(bare[m], reps)
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            ref1 = best_of(bare[m], reps)
            torch.set_num_threads(threads)
            print(f"| {n} | {d} | {m} | {ours:.3f} | {ref:.3f} | {ref1:.3f} | {ours / min(ref, ref1):.2f} |", flush=True)


def autograd_affine(x: torch.Tensor, y: torch.Tensor, fused: bool, steps: int = 300, seed: int = 0):
    """The plain autograd way (latentis's algorithm): the reference for the speed-up."""
    dim = max(x.shape[1], y.shape[1])
    xp, yp = F.pad(x, (0, dim - x.shape[1])), F.pad(y, (0, dim - y.shape[1]))
    torch.manual_seed(seed)
    lin = torch.nn.Linear(dim, dim)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3, fused=fused or None)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(lin(xp), yp).backward()
        opt.step()
    return lin


def bench_affine(sizes: list[tuple[int, int]]) -> None:
    print("\n## affine (300 Adam steps, float32, seconds, single run each)\n")
    print("| N | d | semalign (Gram + fused Adam, 1 thread) | autograd + default Adam, latentis's way (torch threads) | same, 1 thread | speed-up vs the faster | max abs diff of R |")
    print("|---|---|---|---|---|---|---|")
    for n, d in sizes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, d, generator=g)
        y = x @ torch.randn(d, d, generator=g) / math.sqrt(d) + 0.1 * torch.randn(n, d, generator=g)
        Translator("affine", steps=2).fit(x[:50], y[:50])  # warm-up (first optimizer step)
        t0 = time.perf_counter()
        tr = Translator("affine").fit(x, y)
        ours = time.perf_counter() - t0
        xs = (x - tr.scaling_x_["mean"]) / tr.scaling_x_["std"]
        ys = (y - tr.scaling_y_["mean"]) / tr.scaling_y_["std"]
        t0 = time.perf_counter()
        lin = autograd_affine(xs, ys, fused=False)
        plain = time.perf_counter() - t0
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        autograd_affine(xs, ys, fused=False)
        plain1 = time.perf_counter() - t0
        torch.set_num_threads(threads)
        diff = (lin.weight.detach().T - tr.R_).abs().max().item()
        print(f"| {n} | {d} | {ours:.2f} | {plain:.2f} | {plain1:.2f} | {min(plain, plain1) / ours:.1f}× | {diff:.1e} |", flush=True)


# ------------------------------------------------------------------------------------------


def synthetic_task(dims, n_train=2000, n_test=500, pool=2500, k=5, seed=0):
    from semalign.stitching import Embeddings, EncodedTask

    rng = np.random.default_rng(seed)
    d_lat = 64
    centers = rng.normal(size=(k, d_lat)) * 0.4
    y_all = rng.integers(0, k, n_train + n_test)
    z = np.concatenate([centers[y_all] + rng.normal(size=(len(y_all), d_lat)), rng.normal(size=(pool, d_lat))])
    encoders, domains = {}, {}
    for i, d in enumerate(dims):
        e = np.tanh(z @ rng.normal(size=(d_lat, d)) / 8) + 0.05 * rng.normal(size=(len(z), d))
        e = e.astype(np.float32)
        encoders[f"enc{i}-{d}"] = Embeddings(e[:n_train], e[n_train : n_train + n_test], e[n_train + n_test :])
        domains[f"enc{i}-{d}"] = "general" if i < 2 else "medical (stand-in)"
    return EncodedTask("synthetic", "text", encoders, domains, y_all[:n_train], y_all[n_train:], list(range(k)))


def grid_flops(dims, n_anchors, runs, steps=300) -> dict[str, float]:
    svd = lambda m, n: (4 / 3 + 8) * max(m, n) * min(m, n) ** 2  # noqa: E731  (gesdd, thin)
    affine = other = 0.0
    for n in n_anchors:
        for s in dims:
            other += svd(n - 1, s)  # shared SVD of the source anchors (linear, l-ortho)
            for t in dims:
                if s is t:
                    continue
                affine += steps * 2 * t * s * min(s, 2 * n) + (2 * n * s * s if 2 * n >= s else 0)
                other += 2 * n * s * t + svd(s, t)  # ortho: xᵀy + SVD
                other += 2 * s * min(n, s) * t + svd(s, t)  # linear solution + l-ortho SVD
    return {"affine": affine * runs, "other": other * runs}


def bench_grid(runs: int, n_anchors: list[int], dims: list[int]) -> None:
    from semalign.stitching import stitch_grid

    task = synthetic_task(dims)
    rate = gemm_gflops()
    print(f"\n## Fig. 3 grid: dims {dims}, anchors {n_anchors}, {runs} runs, 4 methods, 12 pairs\n")
    t0 = time.perf_counter()
    frame = stitch_grid(task, n_anchors=n_anchors, runs=runs, progress=False)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    stitch_grid(task, methods=[], n_anchors=n_anchors, runs=runs, progress=False)
    decoders = time.perf_counter() - t0
    t0 = time.perf_counter()
    stitch_grid(task, methods=["linear", "l-ortho", "ortho"], n_anchors=n_anchors, runs=runs, progress=False, baselines=False)
    closed = time.perf_counter() - t0
    rate_after = gemm_gflops()
    fl = grid_flops(dims, n_anchors, runs)
    floor = (fl["affine"] + fl["other"]) / (max(rate, rate_after) * 1e9)
    print(f"- rows: {len(frame)}; GEMM rate measured before/after: {rate:.1f} / {rate_after:.1f} GFLOP/s")
    print(f"- total {total:.1f} s (decoders + baselines {decoders:.1f} s; closed-form methods {closed:.1f} s; affine ≈ {total - decoders - closed:.1f} s)")
    print(f"- FLOP floor: affine {fl['affine'] / 1e12:.2f} TFLOP + rest {fl['other'] / 1e12:.2f} TFLOP → {floor:.1f} s at the best measured GEMM rate")
    print(f"- alignment part / floor: {(total - decoders) / floor:.2f}×; whole grid / floor: {total / floor:.2f}×")
    means = frame.groupby(["method", "n_anchors"])["auroc"].mean().unstack()
    print("\nmean AUROC (sanity check):\n")
    print(means.round(3).to_markdown() if hasattr(means, "to_markdown") else means.round(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", choices=["closed", "affine", "grid", "all"], default="all")
    ap.add_argument("--sizes", nargs="*", default=["500x384", "2500x384", "500x768", "2500x768", "500x4096", "2500x4096"])
    ap.add_argument("--affine-sizes", nargs="*", default=["2500x384", "2500x768"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--anchors", nargs="*", type=int, default=[10, 25, 50, 100, 250, 500, 1000, 2000])
    ap.add_argument("--dims", nargs="*", type=int, default=[384, 768, 256, 256])
    args = ap.parse_args()
    parse = lambda items: [tuple(int(v) for v in s.split("x")) for s in items]  # noqa: E731
    print(f"machine: {machine()}; float32 GEMM at start: {gemm_gflops():.1f} GFLOP/s")
    if args.section in ("closed", "all"):
        bench_closed(parse(args.sizes), args.repeats)
    if args.section in ("affine", "all"):
        bench_affine(parse(args.affine_sizes))
    if args.section in ("grid", "all"):
        bench_grid(args.runs, args.anchors, args.dims)


if __name__ == "__main__":
    main()
