"""Speed of the "Beyond the paper" modules (semalign.anchors, .similarity, .asif). Run by hand:

    python benchmarks/bench_beyond.py                       # synthetic timings, all sections
    python benchmarks/bench_beyond.py --section anchors --pool 4000 --dim 768
    python benchmarks/bench_beyond.py --section asif-sensitivity   # offline Fig. 4 embeddings

Sections
- ``anchors``: every selection strategy on a Gaussian pool (P, d) for n in ``--counts``; k-means
  dominates (Lloyd iterations × ``KMEANS_N_INIT`` restarts), farthest-point is n matrix–vector
  products.
- ``similarity``: linear CKA and mutual k-NN (k = 10) of two (n, d) spaces.
- ``asif``: ``asif_zeroshot`` at Fig. 4's offline size (600 pairs, 80 test images, 10 + 10
  prompts) and at a larger pool.
- ``asif-sensitivity``: ASIF's AUROC against k and p on the offline Fig. 4 tasks (embeddings
  from the cache; the first call embeds them), beside the paper's ``ortho`` -- how much the
  defaults matter. It reads test sets: a picture of sensitivity, not a way to choose defaults.
"""

from __future__ import annotations

import argparse

import numpy as np

from semalign import anchors, asif, similarity
from timing import best_of


def bench_anchors(pool: int, dim: int, counts: list[int], repeats: int) -> None:
    x = np.random.default_rng(0).normal(size=(pool, dim)).astype(np.float32)
    labels = np.random.default_rng(1).integers(5, size=pool)
    print(f"anchors: pool ({pool}, {dim}), best of {repeats}")
    for name, select in anchors.STRATEGIES.items():
        for n in counts:
            if n > pool:
                continue
            t = best_of(lambda: select(x, n, seed=0, labels=labels), repeats)
            print(f"  {name:10s} n={n:5d}  {t * 1e3:9.1f} ms")


def bench_similarity(n: int, dims: tuple[int, int], repeats: int) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(n, dims[0])), rng.normal(size=(n, dims[1]))
    print(f"similarity: n={n}, d={dims}, best of {repeats}")
    print(f"  linear_cka   {best_of(lambda: similarity.linear_cka(x, y), repeats) * 1e3:9.1f} ms")
    print(f"  mutual_knn   {best_of(lambda: similarity.mutual_knn(x, y, k=10), repeats) * 1e3:9.1f} ms")


def bench_asif(repeats: int) -> None:
    rng = np.random.default_rng(3)
    print(f"asif: best of {repeats}")
    for n_pairs, n_test in ((600, 80), (5000, 1000)):
        img, a_img = rng.normal(size=(n_test, 1280)), rng.normal(size=(n_pairs, 1280))
        pos, neg, a_txt = rng.normal(size=(10, 384)), rng.normal(size=(10, 384)), rng.normal(size=(n_pairs, 384))
        y = np.r_[np.ones(n_test // 2, int), np.zeros(n_test // 2, int)]
        t = best_of(lambda: asif.asif_zeroshot(img, y, a_img, a_txt, pos, neg), repeats)
        print(f"  N={n_pairs:5d} images={n_test:5d} (k={min(n_pairs, asif.DEFAULT_K)})  {t * 1e3:9.1f} ms")


def bench_asif_sensitivity() -> None:
    from semalign.encoders.tasks import encode_zeroshot
    from semalign.zeroshot import anchor_draws, unimodal_zeroshot

    tasks = ["synthcxr-pneumonia", "synthcxr-vindr-aortic-enlargement", "synthcxr-vindr-cardiomegaly",
             "synthcxr-vindr-lung-opacity", "synthcxr-vindr-pleural-thickening",
             "synthcxr-vindr-pulmonary-fibrosis", "synthcxr-vindr-tuberculosis"]
    enc = encode_zeroshot(tasks, ["efficientnet-lite0", "mobilenet-v2", "standin-vision-synthcxr"], "minilm-l6",
                          pairs="synthcxr-pairs", pair_pool=800, n_prompts=10, device="cpu", seed=0,
                          task_params={"synthcxr-*": {"n_train_per_class": 40, "n_test_per_class": 40,
                                                      "n_pool": 200}})
    draws = anchor_draws(enc.pair_pool, 600, 3, 0)

    def mean_auroc(score) -> str:
        per = {v: np.mean([score(t, v, a) for t in enc.tasks for a in draws]) for v in enc.anchor_images}
        return "  ".join(f"{v} {a:.3f}" for v, a in per.items())

    print("asif-sensitivity: mean AUROC over 7 offline Fig. 4 tasks x 3 runs, 600 pairs")
    print(f"  ortho (paper)      {mean_auroc(lambda t, v, a: unimodal_zeroshot(t.images[v], t.y, enc.anchor_images[v][a], enc.anchor_text[a], t.pos, t.neg).auroc)}")  # noqa: E501
    for k in (10, 100, 600):
        for p in (1.0, 3.0, 8.0):
            line = mean_auroc(lambda t, v, a: asif.asif_zeroshot(
                t.images[v], t.y, enc.anchor_images[v][a], enc.anchor_text[a], t.pos, t.neg, k=k, p=p).auroc)
            print(f"  asif k={k:3d} p={p:.0f}     {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", choices=("all", "anchors", "similarity", "asif", "asif-sensitivity"), default="all")
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--counts", type=int, nargs="+", default=[25, 100, 500, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.section in ("all", "anchors"):
        bench_anchors(args.pool, args.dim, args.counts, args.repeats)
    if args.section in ("all", "similarity"):
        bench_similarity(args.pool, (args.dim, 256), args.repeats)
    if args.section in ("all", "asif"):
        bench_asif(args.repeats)
    if args.section == "asif-sensitivity":
        bench_asif_sensitivity()


if __name__ == "__main__":
    main()
