"""Time the offline book: the execution cache (issue 13), and cold/warm embedding caches.

Run by hand from the repository root:

    python benchmarks/bench_book.py exec [--repo DIR] [--param anchor_counts "[10, 50, 250]"]
    python benchmarks/bench_book.py cold [--cache /tmp/semalign-bench-cache]

``exec`` uses the embedding cache as it is (``SEMALIGN_CACHE``, default ``~/.cache/semalign``):

1. ``semalign book``: fills the execution cache (notebooks whose run is already stored are reused);
2. ``semalign book`` again: the warm rebuild (every notebook reused, jupyter-book build);
3. ``semalign book --no-build -p NAME VALUE``: one parameter of one notebook changed — only that
   notebook and the summary that reads its results execute;
4. ``semalign book --no-build``: back to the profile's values (restored from the store).

``cold`` empties ``--cache`` and runs ``semalign book`` twice (embeddings, fits and executions
cold, then everything warm).

``--repo`` runs the book of another checkout (a snapshot), with ``PYTHONPATH`` set to it so
that the kernels import *its* ``semalign``: the package part of the execution key is then
stable while others edit the working tree. Prints, per step, the wall time, the CPU time of the
children (user + sys) and what each notebook did; the load average and the host's speed (best
of a few 1280 x 1280 float32 matmuls and SVDs on torch's threads) are printed at the start. The
host speed is what makes two runs on "the same machine kind" comparable: on 2026-12-03 the
2-core VM of the afternoon did the matmul in 30.8 ms and the evening's in 14.4 ms (means of 50), and the same
code's cold book took 12.5-16 min on the first and 10 min on the second (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def book(repo: Path, env: dict, *extra: str) -> dict:
    """One ``semalign book`` run: wall and child CPU time, and each notebook's fate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "semalign.cli", "book", *extra], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fate: dict[str, str] = {}
    grids: list[str] = []
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-15:]
        if not line.startswith("[semalign book]"):
            continue
        words = line.split()
        if " done in " in line:
            fate[words[2]] = "executed " + line.rsplit(" in ", 1)[1].strip()
        elif ": reused (key" in line:
            fate[words[2].rstrip(":")] = "reused"
        elif line.startswith("[semalign book]   "):
            grids.append(line.strip()[len("[semalign book] "):])
    proc.wait()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        print("\n".join(tail))
        raise SystemExit(f"semalign book {' '.join(extra)} failed (exit {proc.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "fate": fate, "grids": grids}


def host_speed(n: int = 1280) -> str:
    """Best-of times of an n x n float32 matmul and SVD on torch's threads: the host's speed."""
    import torch

    from timing import best_of

    a = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
    a @ a, torch.linalg.svd(a)  # warm-up
    mm, svd = best_of(lambda: a @ a, 7), best_of(lambda: torch.linalg.svd(a), 3)
    return (f"host speed: {n}^2 float32 matmul {mm * 1e3:.1f} ms ({2 * n ** 3 / mm / 1e9:.0f} GFLOP/s), "
            f"SVD {svd * 1e3:.0f} ms, {torch.get_num_threads()} torch threads")


def show(step: str, r: dict) -> None:
    print(f"| {step} | {r['wall']:.0f} s | {r['cpu']:.0f} s | "
          + "; ".join(f"{k[:2]} {v}" for k, v in r["fate"].items()) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["exec", "cold"])
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--cache", default="/tmp/semalign-bench-cache", help="cold: the throw-away cache")
    ap.add_argument("--param", nargs=2, default=["anchor_counts", "[10, 50, 250]"], metavar=("NAME", "VALUE"))
    a = ap.parse_args()
    repo = Path(a.repo).resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)}
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, repo {repo}", flush=True)
    print(host_speed(), flush=True)
    print("| step | wall | CPU (children, user+sys) | notebooks |\n|---|---|---|---|", flush=True)
    if a.mode == "cold":
        from semalign.paths import assets_dir

        env.setdefault("SEMALIGN_ASSETS", str(assets_dir()))
        env["SEMALIGN_CACHE"] = a.cache
        shutil.rmtree(a.cache, ignore_errors=True)
        show("cold `semalign book`", book(repo, env))
        show("warm `semalign book`", book(repo, env))
        return
    first = book(repo, env)
    show("`semalign book` (fills the execution cache)", first)
    show("warm `semalign book`", book(repo, env))
    show(f"`semalign book --no-build -p {a.param[0]} '{a.param[1]}'`", book(repo, env, "--no-build", "-p", *a.param))
    show("`semalign book --no-build` (back to the profile)", book(repo, env, "--no-build"))
    print("\nper-grid progress lines of the first run:\n" + "\n".join(first["grids"]))


if __name__ == "__main__":
    main()
