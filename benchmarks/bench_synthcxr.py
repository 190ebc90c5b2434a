"""SynthCXR generation speed: images per second at 224 x 224 on ONE core.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_synthcxr.py

Reports wall-clock and process CPU time (the machine is shared: CPU time is the fairer number).
Target (issue 4): >= 200 images/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

from semalign.data.synthcxr import generate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    generate(16, seed=0, size=a.size)  # warm-up (noise bank, imports)
    best_wall = best_cpu = float("inf")
    for r in range(a.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        generate(a.n, seed=r + 1, size=a.size)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print(f"SynthCXR {a.n} images at {a.size}x{a.size}, best of {a.repeats}: "
          f"{a.n / best_wall:.0f} images/s wall, {a.n / best_cpu:.0f} images/s CPU time (1 thread)")
    w0 = time.perf_counter()
    generate(a.n, seed=99, size=a.size, findings=[])
    print(f"anatomy only (no findings): {a.n / (time.perf_counter() - w0):.0f} images/s wall")


if __name__ == "__main__":
    main()
