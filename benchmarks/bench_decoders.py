"""Decoder choice: ``LinearSVC`` (one-vs-rest, what the book uses) vs ``SVC(kernel="linear")``
(``decoder="svc"``, one-vs-one) on the offline profile's tasks.

    python benchmarks/bench_decoders.py                       # the table in RESULTS_decoders.md
    python benchmarks/bench_decoders.py --no-stitch           # upper bounds only (faster)
    python benchmarks/bench_decoders.py --tasks openi-5class  # one task
    python benchmarks/bench_decoders.py --out benchmarks/RESULTS_decoders.md   # + the report

For each (task, encoder): upper-bound AUROC (the encoder's decoder on its own test embeddings)
with each decoder, both through semalign.stitching's own ``fit_decoder`` / ``decision_scores``
/ ``auroc`` (score columns in the decoder's ``classes_`` order, as ``stitch_grid`` does); fit
time (best of ``--repeats`` fits); the number of distinct test scores (ranking granularity:
per class column, mean over columns for multi-class); and optionally the stitched AUROC of
``stitch_grid(task, ["ortho"], [n], runs=1, decoder=...)`` with this encoder as the *target*
(its decoder scores the translated embeddings), mean over sources, at the largest anchor count
the book uses (``--n-anchors``, capped by the task's anchor pool).

Multi-class SVC check: sklearn builds SVC's ``decision_function_shape="ovr"`` scores from the
K(K-1)/2 one-vs-one classifiers as ``votes + f(sum of ovo confidences)`` with
``f(x) = x / (3 (|x| + 1))`` in (-1/3, 1/3) (``sklearn.utils.multiclass._ovr_decision_function``).
The script verifies this on the fitted decoder (recomputing from its ``"ovo"`` scores) and
reports the number of distinct vote levels, the AUROC of the votes alone and — as a diagnostic
outside semalign, to separate the aggregation from the loss — a one-vs-rest ``SVC`` (sklearn
``OneVsRestClassifier``). For the multi-class task, the aggregation check crosses aggregation
(one-vs-rest / one-vs-one) with loss (squared hinge / hinge) on the same ortho stitching, to
say which of the two makes a difference.

Embeddings come from ``semalign.encoders.tasks.encode_task`` (the cache; a warm run embeds
nothing). Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import platform
import subprocess
import sys
import time
import warnings

import numpy as np

TEXT_ENCODERS = ["minilm-l6", "wordllama-256", "standin-text-mesh", "standin-text-tfidf"]
VISION_ENCODERS = ["efficientnet-lite0", "mobilenet-v2", "standin-vision-synthcxr"]
DEFAULT_TASKS = ["openi-5class", "synthcxr-pneumonia", "synthcxr-vindr-lung-opacity"]
# the offline profile's recipe overrides (semalign/profiles/offline.yml)
TASK_PARAMS = {"synthcxr-*": {"n_train_per_class": 40, "n_test_per_class": 40, "n_pool": 200}}
DECODERS = ("linearsvc", "svc")


def encoders_for(task: str) -> list[str]:
    return TEXT_ENCODERS if task.startswith("openi") else VISION_ENCODERS


def classes_of(dec) -> list:
    return list(dec.classes_ if hasattr(dec, "classes_") else dec[-1].classes_)


def n_distinct(scores: np.ndarray) -> float:
    """Distinct test scores: 1-D -> count; (n, K) -> mean over the K class columns."""
    s = np.asarray(scores)
    if s.ndim == 1:
        return float(len(np.unique(s)))
    return float(np.mean([len(np.unique(s[:, k])) for k in range(s.shape[1])]))


def fit_timed(x, y, decoder: str, repeats: int):
    from sklearn.exceptions import ConvergenceWarning

    from semalign.stitching import fit_decoder

    best, dec, n_warn = float("inf"), None, 0
    for _ in range(repeats):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always", ConvergenceWarning)
            t0 = time.perf_counter()
            dec = fit_decoder(x, y, decoder=decoder)
            best = min(best, time.perf_counter() - t0)
        n_warn = max(n_warn, sum(issubclass(i.category, ConvergenceWarning) for i in w))
    return dec, best, n_warn


def svc_check(dec, x_test, y_test) -> dict:
    """Multi-class SVC: is the 'ovr' decision_function votes + transformed ovo confidences?"""
    from sklearn.utils.multiclass import _ovr_decision_function

    from semalign.stitching import auroc, decision_scores

    classes = classes_of(dec)
    k = len(classes)
    ovr = decision_scores(dec, x_test)
    ovo_dec = copy.deepcopy(dec)
    ovo_dec.decision_function_shape = "ovo"
    ovo = decision_scores(ovo_dec, x_test)
    rebuilt = _ovr_decision_function(ovo < 0, -ovo, k)
    votes = np.rint(ovr).astype(int)  # |confidence term| < 1/3, so rounding recovers the votes
    return {
        "ovo_columns": ovo.shape[1],
        "ovr_from_ovo_max_abs_diff": float(np.abs(ovr - rebuilt).max()),
        "votes_match": bool(np.array_equal(votes, np.rint(rebuilt).astype(int))),
        "vote_levels": float(np.mean([len(np.unique(votes[:, j])) for j in range(k)])),
        "auroc_votes_only": auroc(y_test, votes.astype(float), classes),
        "n_test": len(y_test),
    }


def svc_ovr_diagnostic(x, y, x_test, y_test, seed: int = 0) -> float:
    """Upper bound with one-vs-rest SVC(kernel='linear') (not a semalign decoder)."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import SVC

    from semalign.stitching import auroc

    est = OneVsRestClassifier(SVC(kernel="linear", C=1.0, random_state=seed)).fit(x, y)
    return auroc(y_test, est.decision_function(x_test), list(est.classes_))


VARIANTS = {  # name: (how the K classes are combined, loss)
    "LinearSVC (book)": ("one-vs-rest", "squared hinge"),
    "SVC linear (decoder='svc')": ("one-vs-one", "hinge"),
    "OvR SVC linear": ("one-vs-rest", "hinge"),
    "OvO LinearSVC": ("one-vs-one", "squared hinge"),
}


def _variant(name: str, x, y, seed: int):
    """Fitted decoder of a VARIANTS entry; the book's two through semalign's fit_decoder."""
    from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
    from sklearn.svm import SVC, LinearSVC

    from semalign.stitching import fit_decoder

    if name == "LinearSVC (book)":
        return fit_decoder(x, y, decoder="linearsvc", seed=seed)
    if name == "SVC linear (decoder='svc')":
        return fit_decoder(x, y, decoder="svc", seed=seed)
    if name == "OvR SVC linear":
        return OneVsRestClassifier(SVC(kernel="linear", random_state=seed)).fit(x, y)
    if name == "OvO LinearSVC":
        return OneVsOneClassifier(LinearSVC(random_state=seed)).fit(x, y)
    raise ValueError(name)


def aggregation_check(et, n: int, seed: int) -> list[dict]:
    """Multi-class: separate aggregation (OvR / OvO) from loss (hinge / squared hinge).

    Every ordered pair is translated with ``Translator("ortho")`` on the same anchors as
    ``stitch_grid(..., runs=1, seed=seed)`` (run 0's permutation, first n), and each
    variant's decoder (fitted on the target's train embeddings) scores it; upper bounds on
    each encoder's own test set. Means over encoders / pairs. The two book decoders' rows
    must equal stitch_grid's (a consistency check of this re-implementation)."""
    import itertools

    from semalign.align import Translator
    from semalign.stitching import auroc

    idx = np.random.default_rng([seed, 0]).permutation(et.pool_size)[:n]
    names = list(et.encoders)
    translated = {(s, t): np.asarray(Translator("ortho").fit(et.encoders[s].anchors[idx], et.encoders[t].anchors[idx])
                                     .transform(et.encoders[s].test))
                  for s, t in itertools.permutations(names, 2)}
    out = []
    for v, (agg, loss) in VARIANTS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decs = {t: _variant(v, et.encoders[t].train, et.y_train, seed) for t in names}
        sc = lambda t, x: auroc(et.y_test, decs[t].decision_function(x), list(decs[t].classes_))  # noqa: E731
        ub = [sc(t, et.encoders[t].test) for t in names]
        st = {(s, t): sc(t, x) for (s, t), x in translated.items()}
        out.append({"variant": v, "aggregation": agg, "loss": loss, "ub": float(np.mean(ub)),
                    "stitched": float(np.mean(list(st.values()))), "n": n, "pairs": len(st),
                    "worst_pair": min(st, key=st.get), "worst": min(st.values())})
    return out


def run_task(task_name: str, args) -> tuple[list[dict], dict, float]:
    from semalign.encoders.tasks import encode_task
    from semalign.stitching import auroc, decision_scores, stitch_grid

    t0 = time.perf_counter()
    et = encode_task(task_name, encoders_for(task_name), anchor_pool=args.anchor_pool, seed=args.seed,
                     task_params=TASK_PARAMS, device="cpu")
    t_enc = time.perf_counter() - t0
    multi = len(np.unique(et.y_train)) > 2
    rows = []
    for name, emb in et.encoders.items():
        row = {"task": task_name, "encoder": name, "dim": emb.dim, "n_train": len(et.y_train),
               "n_test": len(et.y_test), "k": len(np.unique(et.y_train))}
        for d in DECODERS:
            dec, secs, n_warn = fit_timed(emb.train, et.y_train, d, args.repeats)
            s = decision_scores(dec, emb.test)
            row[f"ub_{d}"] = auroc(et.y_test, s, classes_of(dec))
            row[f"fit_{d}"] = secs
            row[f"distinct_{d}"] = n_distinct(s)
            row[f"convwarn_{d}"] = n_warn
            if d == "svc" and multi:
                row.update(svc_check(dec, emb.test, et.y_test))
        if multi and args.svc_ovr:
            row["ub_svc_ovr"] = svc_ovr_diagnostic(emb.train, et.y_train, emb.test, et.y_test, args.seed)
        rows.append(row)
    info = {"pool": et.pool_size, "n_stitch": None}
    if args.stitch:
        n = min(args.n_anchors, et.pool_size)
        info["n_stitch"] = n
        for d in DECODERS:
            t1 = time.perf_counter()
            grid = stitch_grid(et, ["ortho"], [n], runs=args.runs, seed=args.seed, progress=False,
                               baselines=False, decoder=d)
            info[f"grid_s_{d}"] = time.perf_counter() - t1
            info[f"grid_{d}"] = grid
            by_target = grid.groupby("target")["auroc"].mean()
            for row in rows:
                row[f"st_{d}"] = float(by_target[row["encoder"]])
        if multi and args.aggregation_check:
            info["aggregation"] = aggregation_check(et, n, args.seed)
    return rows, info, t_enc


def fmt(x, spec=".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def table(rows: list[dict], stitch: bool) -> str:
    head = ["task", "encoder", "d", "UB LinearSVC", "UB SVC", "Δ (Lin−SVC)", "fit s Lin", "fit s SVC",
            "distinct Lin", "distinct SVC", "SVC vote levels", "UB SVC votes only", "UB OvR-SVC (diag.)"]
    if stitch:
        head += ["ortho → target, Lin", "ortho → target, SVC"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in rows:
        cells = [r["task"], r["encoder"], str(r["dim"]), fmt(r["ub_linearsvc"]), fmt(r["ub_svc"]),
                 fmt(r["ub_linearsvc"] - r["ub_svc"], "+.3f"), fmt(r["fit_linearsvc"], ".3f"),
                 fmt(r["fit_svc"], ".3f"), fmt(r["distinct_linearsvc"], ".0f"), fmt(r["distinct_svc"], ".0f"),
                 fmt(r.get("vote_levels"), ".1f"), fmt(r.get("auroc_votes_only")), fmt(r.get("ub_svc_ovr"))]
        if stitch:
            cells += [fmt(r.get("st_linearsvc")), fmt(r.get("st_svc"))]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def summary(rows: list[dict], infos: dict, stitch: bool) -> str:
    lines = []
    for task in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == task]
        ub_l = np.mean([r["ub_linearsvc"] for r in rs])
        ub_s = np.mean([r["ub_svc"] for r in rs])
        line = (f"- {task} (K={rs[0]['k']}, {rs[0]['n_train']} train / {rs[0]['n_test']} test): mean UB "
                f"LinearSVC {ub_l:.3f}, SVC {ub_s:.3f} (Δ {ub_l - ub_s:+.3f}; LinearSVC higher for "
                f"{sum(r['ub_linearsvc'] > r['ub_svc'] for r in rs)}/{len(rs)} encoders)")
        if "ub_svc_ovr" in rs[0]:
            line += f"; OvR-SVC diag. {np.mean([r['ub_svc_ovr'] for r in rs]):.3f}"
        if stitch and infos[task].get("n_stitch"):
            g_l, g_s = infos[task]["grid_linearsvc"], infos[task]["grid_svc"]
            m = g_l.merge(g_s, on=["source", "target", "n_anchors", "run"], suffixes=("_l", "_s"))
            line += (f"; ortho n={infos[task]['n_stitch']}, mean over {len(g_l)} pair x run cells: LinearSVC "
                     f"{g_l['auroc'].mean():.3f}, SVC {g_s['auroc'].mean():.3f} (LinearSVC higher in "
                     f"{int((m['auroc_l'] > m['auroc_s']).sum())}/{len(m)})")
        if "ovr_from_ovo_max_abs_diff" in rs[0]:
            line += (f". SVC 'ovr' = votes + f(ovo confidences): max |diff| "
                     f"{max(r['ovr_from_ovo_max_abs_diff'] for r in rs):.1e} over {rs[0]['ovo_columns']} ovo columns, "
                     f"votes match: {all(r['votes_match'] for r in rs)}")
        warns = {d: sum(r[f"convwarn_{d}"] for r in rs) for d in DECODERS}
        line += f". ConvergenceWarnings: {warns}"
        lines.append(line + ".")
    return "\n".join(lines)


def aggregation_table(infos: dict) -> str:
    out = []
    for task, info in infos.items():
        if not info.get("aggregation"):
            continue
        rs = info["aggregation"]
        out.append(f"{task}, ortho n={rs[0]['n']}, {rs[0]['pairs']} ordered pairs; upper bound = mean over encoders, "
                   "stitched = mean over pairs:\n")
        out.append("| decoder | aggregation | loss | UB | stitched (ortho) | worst pair |")
        out.append("|---|---|---|---:|---:|---|")
        for r in rs:
            out.append(f"| {r['variant']} | {r['aggregation']} | {r['loss']} | {r['ub']:.3f} | {r['stitched']:.3f} | "
                       f"{r['worst_pair'][0]} → {r['worst_pair'][1]} {r['worst']:.3f} |")
        if info.get("grid_linearsvc") is not None:
            out.append(f"\n(stitch_grid itself: LinearSVC {info['grid_linearsvc']['auroc'].mean():.3f}, "
                       f"SVC {info['grid_svc']['auroc'].mean():.3f}.)")
        out.append("")
    return "\n".join(out)


def machine() -> str:
    import sklearn
    import torch

    arch = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    try:
        load = "load average %.2f %.2f %.2f" % __import__("os").getloadavg()
    except OSError:
        load = "load n/a"
    return (f"`uname -m` {arch}, nproc {nproc} (shared; {load} at the end of the run), Python "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS)
    p.add_argument("--anchor-pool", type=int, default=1200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="fits per decoder; the best time is reported")
    p.add_argument("--n-anchors", type=int, default=1000,
                   help="ortho anchors for the stitched column (the book's largest; capped by the pool)")
    p.add_argument("--runs", type=int, default=1, help="anchor draws of the stitched column (mean over them)")
    p.add_argument("--no-stitch", dest="stitch", action="store_false")
    p.add_argument("--no-svc-ovr", dest="svc_ovr", action="store_false",
                   help="skip the one-vs-rest SVC diagnostic (multi-class tasks)")
    p.add_argument("--no-aggregation-check", dest="aggregation_check", action="store_false",
                   help="skip the OvR/OvO x hinge/squared-hinge stitching check (multi-class tasks)")
    p.add_argument("--out", default=None, help="write a markdown report here (e.g. benchmarks/RESULTS_decoders.md)")
    args = p.parse_args(argv)

    t_all = time.perf_counter()
    rows, infos, enc_s = [], {}, {}
    for task in args.tasks:
        r, info, t_enc = run_task(task, args)
        rows += r
        infos[task] = info
        enc_s[task] = t_enc
        print(f"[{task}] encode_task {t_enc:.1f} s, anchor pool {info['pool']}", file=sys.stderr)
    tab = table(rows, args.stitch)
    summ = summary(rows, infos, args.stitch)
    agg = aggregation_table(infos) if args.stitch else ""
    total = time.perf_counter() - t_all
    print(tab)
    print()
    print(summ)
    if agg:
        print()
        print(agg)
    if args.out:
        cmd = "python " + " ".join(["benchmarks/bench_decoders.py"] + (argv if argv is not None else sys.argv[1:]))
        with open(args.out, "w") as f:
            f.write("# Decoder benchmark: LinearSVC (one-vs-rest) vs SVC(kernel=\"linear\") (one-vs-one)\n\n")
            f.write(f"Command: `{cmd}`  \n")
            f.write(f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}  \n")
            f.write(f"Machine: {machine()}  \n")
            f.write("Embedding (encode_task, cache): "
                    + ", ".join(f"{t} {s:.1f} s" for t, s in enc_s.items())
                    + f"; whole run {total:.0f} s.\n\n")
            f.write("## Table\n\n" + tab + "\n\n## Per task\n\n" + summ + "\n")
            if agg:
                f.write("\n## Aggregation vs loss (multi-class)\n\n" + agg + "\n")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
