"""The course edition: exercises, the checks students run, and the student build.

Every paper chapter (notebooks 01–04) ends with an **Exercises** section of two or three
exercises in QuantEcon's style (sphinx-exercise): an ``exercise`` directive with a label, a
student cell, and a solution hidden in a dropdown. In the jupytext source (py:percent)::

    # %% [markdown]
    # ```{exercise} Procrustes in five lines
    # :label: ex-01-procrustes
    # ...the task...
    # ```

    # %%                                    <- the student cell: a stub, never a failing call
    def procrustes(x, y):
        raise NotImplementedError("write procrustes(x, y)")
    # check.procrustes(procrustes)          <- uncomment when the function is written

    # %% [markdown] tags=["solution"]
    # ```{solution-start} ex-01-procrustes
    # :class: dropdown
    # ```
    # %% tags=["solution"]                 <- solution code: a code cell between start and end
    def procrustes(x, y): ...
    check.procrustes(procrustes)           <- the book's run proves the solution passes

    # %% [markdown] tags=["solution"]
    # ```{solution-end}
    # ```

``:class: dropdown`` makes sphinx-togglebutton collapse the solution (hidden by default, one
click to open); the gated ``solution-start`` / ``solution-end`` pair lets it hold executed code
cells.

**Why a student cell never calls a check.** The book runs every notebook with papermill, and
papermill fails a run on *any* error output (``papermill.execute.raise_for_execution_errors``
scans every cell), whatever the cell's tags: nbclient's ``raises-exception`` tag does not help.
So a student cell only defines a stub (a function raising ``NotImplementedError``, or a
prediction ``None``) and shows the check call commented out; the solution cell runs the same
check on the solution, so every CI build verifies that the solution passes. Solution cells
define no name that later cells need (the student edition drops them) and glue nothing.

**Checks** (:data:`check`): ``check.procrustes(fn)``, ``check.top1(fn)``,
``check.effect(prediction, before, after)``, ``check.ordering(ranking, measured)``,
``check.table1_cell(mean, change_pct, results, ...)``, ``check.prompts(pos, neg, bench)``.
A wrong answer raises :class:`ExerciseError` (an ``AssertionError``) whose message says what is
wrong and hints at the fix, never the expected number itself; a *prediction* that the
measurement contradicts is not an error: ``effect`` and ``ordering`` say so kindly and return.
Every check runs in well under a second on arrays the chapter already holds, except the prompt
bench of chapter 04 (:class:`PromptBench`), which reads the SynthCXR pair reports once.

**The student edition** (``semalign book --student``, :func:`build_student`) builds the book
again from the notebooks ``semalign book`` executed (``book/generated/``; nothing is
re-executed) with every solution removed by :func:`strip_solutions`: each cell tagged
``solution`` and everything from a ``solution-start`` to its ``solution-end``. An unclosed
``solution-start`` (or a stray end) is refused with :class:`SolutionMarkupError`: nobody could
say where the solution stops. The edition has no launch buttons (Binder would open the
repository's source, solutions included; the page's download button gives the stripped
notebook instead) and sets sphinx-exercise's ``hide_solutions``. Before it is published to
``_build/student/html`` every built file is searched for the text of the removed cells
(:func:`find_leaks`); a hit fails the build, so solution text is never shipped.
"""

from __future__ import annotations

import argparse
import copy
import html as _html
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semalign.errors import SemalignError

__all__ = ["ExerciseError", "SolutionMarkupError", "check", "PromptBench", "SOLUTION_TAG",
           "solution_directives", "strip_solutions", "lint_solutions", "find_leaks", "build_student",
           "cli_student"]

#: The cell tag every solution cell (markdown and code) carries.
SOLUTION_TAG = "solution"


class ExerciseError(SemalignError, AssertionError):
    """An exercise check failed: the message says what is wrong and how to look for the fix."""


class SolutionMarkupError(SemalignError, ValueError):
    """A notebook's solution markup cannot be stripped safely (an unclosed ``solution-start``,
    a ``solution-end`` without a start); the message names the notebook cell to fix."""


# ============================================================================ checks: helpers
def _say(text: str) -> None:
    print(text, flush=True)


def _call(fn: Callable, *args: Any, name: str, hint: str = "") -> Any:
    """Call a student's function; a stub or a crash becomes one :class:`ExerciseError`."""
    if not callable(fn):
        raise ExerciseError(f"{name}: expected a function, got {type(fn).__name__}; pass the function "
                            f"itself (check.x(my_function), no parentheses after its name)")
    try:
        out = fn(*args)
    except NotImplementedError:
        raise ExerciseError(f"{name} still raises NotImplementedError: replace the stub's body with your "
                            "code, then run the check again") from None
    except Exception as e:  # the student's bug: show it, keep the traceback chained
        raise ExerciseError(f"{name} raised {type(e).__name__}: {e}. {hint}".rstrip(". ") + ".") from e
    if out is None:
        raise ExerciseError(f"{name} returned None: did you forget the `return`?")
    return out


def _matrix(value: Any, shape: tuple[int, int], what: str, hint: str = "") -> np.ndarray:
    try:
        a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ExerciseError(f"{what} should be a {shape} array, got {type(value).__name__}") from None
    if a.shape != shape:
        raise ExerciseError(f"{what} has shape {a.shape}; expected {shape}. {hint}".rstrip())
    if not np.all(np.isfinite(a)):
        raise ExerciseError(f"{what} holds NaN or infinite values")
    return a


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


_THIN_SVD = "Use the thin SVD, np.linalg.svd(x.T @ y, full_matrices=False), so R is (d1, d2)."


# ============================================================================ 01: Procrustes
def _procrustes(fn: Callable, anchors: tuple[Any, Any] | None = None) -> None:
    """Check ``fn(x, y) -> R``: orthogonal Procrustes, ``R = argmin ||x R − y||_F`` over
    (semi-)orthogonal ``R`` of shape ``(d1, d2)`` for ``x`` (N, d1), ``y`` (N, d2).

    1. a planted rotation: ``y = x @ Q`` with ``Q`` orthogonal must give ``R = Q`` (a transposed
       or non-orthogonal answer is named as such);
    2. random rectangular anchors, both ``d1 < d2`` and ``d1 > d2``: ``x @ R`` must equal
       ``Translator("ortho", std_scaling=False).fit(x, y).transform(x)``;
    3. ``anchors=(x, y)`` (e.g. the chapter's): after the paper's standard scaling with the
       anchors' statistics, ``fn`` on the scaled anchors, de-normalised, must equal
       ``Translator("ortho").fit(x, y).transform(x)``. Compared *on the anchors*: with fewer
       anchors than dimensions a plain SVD's null-space directions are arbitrary (semalign
       keeps the partial isometry on the anchors' span), so two correct solutions agree on
       the anchors' span but not elsewhere.
    """
    import torch

    from semalign.align import Translator, destandardize, standard_scaling_state, standardize

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    q = _orthogonal(8, rng)
    r = _matrix(_call(fn, x, x @ q, name="procrustes"), (8, 8), "procrustes(x, y) for x, y of shape (200, 8)")
    if np.allclose(r, q.T, atol=1e-8) and not np.allclose(r, q, atol=1e-8):
        raise ExerciseError("procrustes returned the transpose: R must map rows of x onto y (x @ R ≈ y). "
                            "With U, S, Vt = svd(x.T @ y), R = U @ Vt.")
    dev = float(np.abs(r.T @ r - np.eye(8)).max())
    if dev > 1e-8:
        raise ExerciseError(f"R is not orthogonal (R.T @ R differs from the identity by {dev:.2g}): Procrustes "
                            "keeps U @ Vt of the SVD and drops the singular values S.")
    if not np.allclose(r, q, atol=1e-8):
        raise ExerciseError(f"procrustes does not recover a planted rotation: for y = x @ Q (Q orthogonal) "
                            f"it should return Q; max error {np.abs(r - q).max():.2g}. Is it the SVD of x.T @ y?")
    worst = 0.0
    for d1, d2 in ((6, 9), (9, 6)):
        x, y = rng.normal(size=(50, d1)), rng.normal(size=(50, d2))
        r = _matrix(_call(fn, x, y, name="procrustes", hint=_THIN_SVD), (d1, d2),
                    f"procrustes(x, y) for x (50, {d1}), y (50, {d2})", _THIN_SVD)
        ref = Translator("ortho", std_scaling=False).fit(x, y).transform(x)
        err = _rel_err(x @ r, ref)
        if err > 1e-6:
            raise ExerciseError(f"for x (50, {d1}) and y (50, {d2}), x @ R differs from Translator('ortho', "
                                f"std_scaling=False) by {err:.2g} (relative). {_THIN_SVD}")
        worst = max(worst, err)
    msg = (f"✓ procrustes recovers planted rotations and matches Translator('ortho', std_scaling=False) "
           f"on rectangular anchors (max relative difference {worst:.1e})")
    if anchors is not None:
        xa, ya = (np.asarray(a, dtype=np.float64) for a in anchors)
        sx, sy = (standard_scaling_state(torch.from_numpy(a)) for a in (xa, ya))
        xs, ys = standardize(torch.from_numpy(xa), sx).numpy(), standardize(torch.from_numpy(ya), sy).numpy()
        r = _matrix(_call(fn, xs, ys, name="procrustes"), (xa.shape[1], ya.shape[1]),
                    f"procrustes on the scaled anchors {xa.shape}, {ya.shape}", _THIN_SVD)
        mine = destandardize(torch.from_numpy(xs @ r), sy).numpy()
        ref = Translator("ortho").fit(xa, ya).transform(xa)
        err = _rel_err(mine, ref)
        if err > 1e-6:
            raise ExerciseError(f"on your anchors, standard scaling + procrustes + de-normalising differs from "
                                f"Translator('ortho') by {err:.2g} (relative)")
        msg += f"; on your {len(xa)} anchors, with standard scaling, it equals Translator('ortho') ({err:.1e})"
    _say(msg)


# ============================================================================ 01: top-1 retrieval
def _top1(fn: Callable) -> None:
    """Check ``fn(y_hat, y_true) -> float``: the fraction of rows ``i`` whose most cosine-similar
    row of ``y_true`` is row ``i`` (top-1 retrieval), on cases with known answers."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=(30, 16))
    shuffle = np.roll(np.arange(30), 7)                 # no row stays in place
    half = np.concatenate([np.arange(15), 15 + np.roll(np.arange(15), 4)])
    wide = y * 10.0 ** rng.uniform(-1, 2, size=(30, 1))  # target rows of very different lengths
    cases = [
        ("y_hat = y_true", y, y, 1.0, ""),
        ("unit-length y_hat against targets of very different lengths",
         wide / np.linalg.norm(wide, axis=1, keepdims=True), wide, 1.0,
         "Use cosine similarity, not Euclidean distance: a translated embedding's length may differ "
         "from its target's, its direction is what counts."),
        ("y_hat = y_true with its rows shuffled (no row in place)", y[shuffle], y, 0.0,
         "Row i counts only if the nearest row of y_true is row i itself."),
        ("y_hat = y_true with half of its rows shuffled", y[half], y, 0.5,
         "Return the fraction of rows retrieved (a number in [0, 1])."),
    ]
    for what, y_hat, y_true, want, hint in cases:
        got = _call(fn, y_hat, y_true, name="top1")
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise ExerciseError(f"top1 should return a number, got {type(got).__name__}") from None
        if got > 1.0 + 1e-9 and abs(got - 100 * want) < 1e-6:
            raise ExerciseError("top1 returned a percentage: return the fraction (between 0 and 1)")
        if abs(got - want) > 1e-9:
            raise ExerciseError(f"for {what}, top1 gave {got:.3g}; expected {want}. {hint}".rstrip())
    _say("✓ top1 gives the right fraction on identical, unit-length, shuffled and half-shuffled rows")


# ============================================================================ predictions
PREDICTION_WORDS = ("higher", "lower", "same")
_EFFECT_WORDS = {"higher": "a higher AUROC", "lower": "a lower AUROC", "same": "about the same AUROC"}


def _values(v: Any, name: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ExerciseError(f"{name} should be a number or a list of numbers, got {v!r:.80}")
    return a


def _effect(prediction: str | None, before: Any, after: Any, *, change: str, tol: float = 0.01,
            hint: str = "") -> bool:
    """Compare a predicted effect with the measured one; return whether the prediction held.

    ``prediction``: ``"higher"``, ``"lower"`` or ``"same"`` — what ``change`` does to the AUROC.
    ``before`` / ``after``: the AUROC without and with the change, one number or paired lists
    (one value per encoder pair, run, task …). The measured effect is the mean of
    ``after − before``: ``"same"`` when it is smaller than ``tol`` (0.01 AUROC: the scale the book
    reports, three decimals, rounded to two), else its sign. A prediction the measurement
    contradicts is not an error (that is what predicting is for): it is said, with ``hint``.
    """
    if prediction is None:
        raise ExerciseError("write your prediction first: one of " + ", ".join(map(repr, PREDICTION_WORDS)))
    word = str(prediction).strip().lower()
    if word not in PREDICTION_WORDS:
        raise ExerciseError(f"prediction {prediction!r}: use one of " + ", ".join(map(repr, PREDICTION_WORDS)))
    b, a = _values(before, "before"), _values(after, "after")
    if b.shape != a.shape:
        raise ExerciseError(f"before has {b.size} values and after {a.size}: pair them (same encoders, runs, "
                            "tasks, in the same order)")
    delta = a - b
    mean = float(delta.mean())
    measured = "same" if abs(mean) < tol else ("higher" if mean > 0 else "lower")
    detail = f"mean change {mean:+.3f} AUROC"
    if delta.size > 1:
        detail += (f" over {delta.size} paired values: higher for {int((delta > 0).sum())}, "
                   f"lower for {int((delta < 0).sum())}")
    ok = measured == word
    verdict = "✓ Your prediction holds." if ok else "✗ Not what you predicted: worth a thought why."
    _say(f"You predicted {_EFFECT_WORDS[word]} with {change}; measured: {_EFFECT_WORDS[measured]} ({detail}; "
         f"'about the same' means within ±{tol}). {verdict}" + ("" if ok or not hint else f" Hint: {hint}"))
    return ok


def _ordering(ranking: Sequence[str] | None, measured: Mapping[str, float], *, what: str = "methods") -> float:
    """Compare a predicted ranking (best first) with measured scores ``{name: value}``; return
    the fraction of pairs in the measured order (1.0: the same order). Ties count as agreeing."""
    if not ranking:
        raise ExerciseError(f"write your ranking first: a list of the {what}, best first, e.g. "
                            f"{sorted(measured)!r}")
    ranking = [str(r) for r in ranking]
    missing, unknown = sorted(set(measured) - set(ranking)), sorted(set(ranking) - set(measured))
    if missing or unknown or len(ranking) != len(set(ranking)):
        parts = [f"missing {missing}" if missing else "", f"not measured {unknown}" if unknown else "",
                 "a name appears twice" if len(ranking) != len(set(ranking)) else ""]
        raise ExerciseError(f"the ranking should name each of {sorted(measured)} once: "
                            + "; ".join(p for p in parts if p))
    order = sorted(measured, key=lambda k: -measured[k])
    pairs = [(ranking[i], ranking[j]) for i in range(len(ranking)) for j in range(i + 1, len(ranking))]
    swapped = [(hi, lo) for hi, lo in pairs if measured[hi] < measured[lo]]
    agree = 1.0 - len(swapped) / len(pairs) if pairs else 1.0
    lines = [f"Measured ({what}, best first): " + ", ".join(f"{k} {measured[k]:.3f}" for k in order),
             f"Your ranking: {', '.join(ranking)} — {len(pairs) - len(swapped)} of {len(pairs)} pairs in the "
             f"measured order."]
    if swapped:
        lines.append("Swapped: " + "; ".join(f"{lo} beat {hi} by {measured[lo] - measured[hi]:.3f}"
                                             for hi, lo in swapped)
                     + ". A gap within the runs' spread is noise rather than a lesson: compare it with the std.")
    else:
        lines.append("✓ The same order as measured.")
    _say("\n".join(lines))
    return agree


# ============================================================================ 03: one Table 1 cell
def _table1_rows(results, modality: str, pair: str, method: str):
    from semalign.vocab import Domain

    df = results[results["modality"] == modality].copy()
    for side in ("source", "target"):
        df[f"{side}_dom"] = df[f"{side}_domain"].map(lambda d: Domain.parse(d).category)
    s, t = pair.split("→")
    chosen = df[df["method"] == method]
    n = int(chosen["n_anchors"].max())
    return df, chosen[chosen["n_anchors"] == n], s, t


def _table1_cell(mean: float | None, change_pct: float | None, results, *, modality: str = "text",
                 pair: str = "Gen→Med", method: str = "ortho") -> None:
    """Check one cell of Table 1 computed by hand from the tidy results frame: ``mean`` (the
    stitched AUROC of domain pair ``pair`` in ``modality``) and ``change_pct`` (against the
    source domain's upper bound, in %), against :func:`semalign.report.table1.table`."""
    from semalign.report import table1

    if mean is None or change_pct is None:
        raise ExerciseError("compute both numbers first: the cell's mean AUROC and its change against SUB in %")
    if pair not in table1.DOMAIN_PAIRS or modality not in table1.MODALITIES:
        raise ExerciseError(f"pair must be one of {table1.DOMAIN_PAIRS} and modality one of {table1.MODALITIES}")
    ref = table1.table(results, method=method)
    want_mean, want_change = float(ref.loc[pair, (modality, "mean")]), float(ref.loc[pair, (modality, "change_pct")])
    mean, change_pct = float(mean), float(change_pct)
    if abs(mean - want_mean) > 1e-6:
        df, at_n, s, t = _table1_rows(results, modality, pair, method)
        cell = at_n[(at_n["source_dom"] == s) & (at_n["target_dom"] == t)]
        every = df[(df["source_dom"] == s) & (df["target_dom"] == t)]
        guesses = {
            "you kept the rows where an encoder is stitched to itself (source == target); Table 1 leaves them out":
                cell["auroc"].mean(),
            f"you averaged over every method; keep only method == {method!r}":
                every[every["n_anchors"] == at_n["n_anchors"].max()]["auroc"].mean(),
            "you pooled all rows; Table 1 averages each task first, then the tasks":
                cell[cell["source"] != cell["target"]]["auroc"].mean(),
        }
        hints = [h for h, v in guesses.items() if np.isfinite(v) and abs(v - mean) < 1e-6]
        raise ExerciseError(f"the {modality} {pair} mean is off by {mean - want_mean:+.4f}. "
                            + (hints[0] + "." if hints else
                               f"Keep the rows of method {method!r} at the largest anchor count whose source "
                               f"domain is {pair.split('→')[0]} and target {pair.split('→')[1]}, source != target."))
    if abs(change_pct - want_change) > 1e-4:
        sub = float(ref.loc[pair, (modality, "SUB")])
        tub = float(ref.loc[pair, (modality, "TUB")])
        if abs(change_pct * 100 - want_change) < 1e-4:
            hint = "give the change in percent (× 100), not as a fraction"
        elif np.isfinite(tub) and abs(change_pct - 100 * (mean - tub) / tub) < 1e-4:
            hint = "the change is measured against the SOURCE domain's upper bound (SUB), not the target's"
        else:
            hint = f"change % = 100 · (mean − SUB) / SUB, SUB = {sub:.4f} (the source domain's upper bound)"
        raise ExerciseError(f"the change against SUB is off: {hint}")
    _say(f"✓ {modality} {pair}: mean {mean:.3f}, change {change_pct:+.1f} % — the same as Table 1 "
         f"({table1.change_category(change_pct)})")


# ============================================================================ 04: prompts
def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def _prompts(pos: Sequence[str] | None, neg: Sequence[str] | None, bench: "PromptBench | None" = None, *,
             n: int = 10):
    """Validate ``n`` positive and ``n`` negative prompts (strings, non-empty, distinct within a
    list, none in both lists); with a :class:`PromptBench`, score them and return its frame."""
    for name, p in (("positive", pos), ("negative", neg)):
        if p is None or len(p) == 0:
            raise ExerciseError(f"write your {n} {name} prompts first (a list of strings)")
        if isinstance(p, str):
            raise ExerciseError(f"the {name} prompts should be a list of {n} strings, not one string")
        p = list(p)
        bad = [i for i, s in enumerate(p) if not isinstance(s, str) or not s.strip()]
        if bad:
            raise ExerciseError(f"{name} prompt(s) {bad} are empty or not strings")
        if len(p) != n:
            raise ExerciseError(f"write exactly {n} {name} prompts (the paper's number); you have {len(p)}")
        seen: dict[str, int] = {}
        for i, s in enumerate(p):
            if _norm(s) in seen:
                raise ExerciseError(f"{name} prompts {seen[_norm(s)]} and {i} are the same sentence: make each one "
                                    "a different phrasing")
            seen[_norm(s)] = i
    both = sorted({_norm(s) for s in pos} & {_norm(s) for s in neg})
    if both:
        raise ExerciseError(f"{both[0]!r} is both a positive and a negative prompt")
    _say(f"✓ {n} positive and {n} negative prompts, all distinct")
    return None if bench is None else bench.score(list(pos), list(neg))


@dataclass
class PromptBench:
    """Scores new prompts with the paper's unimodal zero-shot method on held-out images.

    ``anchor_images`` ``{vision encoder: (N, d_v)}`` and ``anchor_text`` (N, d_t): the image–
    report anchor pairs a translator is fitted on (:func:`semalign.zeroshot.unimodal_zeroshot`,
    ``method``, ``seed``); ``test_images`` ``{vision encoder: (n, d_v)}`` with binary labels
    ``y`` (n,) of ``finding``; ``embed``: prompts → (m, d_t) by the same text encoder.
    :meth:`score` returns one row per vision encoder: AUROC, the class counts and the chance
    level (0.5 + 2 null standard deviations, :func:`semalign.zeroshot.chance_sd`, as Fig. 4).
    """

    finding: str
    y: np.ndarray
    test_images: dict[str, np.ndarray]
    anchor_images: dict[str, np.ndarray]
    anchor_text: np.ndarray
    embed: Callable[[list[str]], np.ndarray] = field(repr=False)
    method: str = "ortho"
    seed: int = 0

    @staticmethod
    def supports(pairs: str) -> bool:
        """Can :meth:`from_chapter` label these pairs? (SynthCXR pairs only: see there.)"""
        return str(pairs).startswith("synthcxr")

    @classmethod
    def from_chapter(cls, embedded, finding: str, *, pairs: str, n_pairs: int, seed: int = 0,
                     method: str = "ortho", device: str = "auto", batch_size: int | None = None) -> "PromptBench":
        """The bench of chapter 04: run 0's ``n_pairs`` anchor pairs of ``embedded`` (an
        :class:`~semalign.zeroshot.EncodedZeroShot`, as the grid draws them) fit the translator;
        the pool's *other* pairs are the test images, labelled by their own reports.

        The label of a held-out image is what its report says (``synthcxr.mentions``: SynthCXR
        reports state every present finding, by construction), as CheXpert-style labels come
        from reports. Only SynthCXR pairs have such a reader: other ``pairs`` raise
        :class:`ExerciseError`. Reading the pool's reports regenerates the pairs (≈10 s CPU).
        """
        from semalign.data import get_pairs
        from semalign.data import synthcxr as gen
        from semalign.encoders.tasks import embed_prompts, load_encoders
        from semalign.zeroshot import anchor_draws

        if not cls.supports(pairs):
            raise ExerciseError(f"the prompt bench labels held-out images from SynthCXR reports; pairs {pairs!r} "
                                "have no such reader: run this exercise with the offline profile")
        if finding not in gen.FINDINGS:
            raise ExerciseError(f"unknown SynthCXR finding {finding!r}; choose one of {', '.join(gen.FINDINGS)}")
        pool = embedded.pair_pool
        a = anchor_draws(pool, n_pairs, 1, seed)[0]
        held = np.setdiff1d(np.arange(pool), a)
        reports = list(get_pairs(pairs, n=pool, seed=seed)["text"])
        y = np.array([gen.mentions(reports[i])[finding] == "positive" for i in held], dtype=int)
        text = load_encoders([embedded.text_encoder], device)[embedded.text_encoder]
        return cls(finding=finding, y=y,
                   test_images={k: v[held] for k, v in embedded.anchor_images.items()},
                   anchor_images={k: v[a] for k, v in embedded.anchor_images.items()},
                   anchor_text=embedded.anchor_text[a],
                   embed=lambda prompts: embed_prompts(text, prompts, batch_size), method=method, seed=seed)

    def score(self, pos: Sequence[str], neg: Sequence[str]):
        """``pos``/``neg`` prompts → a frame: vision_encoder, auroc, n_pos, n_neg, chance_level,
        above_chance (AUROC > 0.5 + 2 null sd)."""
        import pandas as pd

        from semalign.zeroshot import chance_sd, unimodal_zeroshot

        p, q = self.embed(list(pos)), self.embed(list(neg))
        n_pos = int(self.y.sum())
        n_neg = int(len(self.y) - n_pos)
        level = 0.5 + 2 * chance_sd(n_pos, n_neg)
        rows = []
        for name, test in self.test_images.items():
            r = unimodal_zeroshot(test, self.y, self.anchor_images[name], self.anchor_text, p, q,
                                  method=self.method, seed=self.seed)
            rows.append(dict(vision_encoder=name, auroc=r.auroc, n_pos=n_pos, n_neg=n_neg,
                             chance_level=level, above_chance=bool(r.auroc > level)))
        return pd.DataFrame(rows)


# ============================================================================ the namespace
class check:  # noqa: N801  (a namespace: ``check.procrustes(fn)`` reads as what it does)
    """The exercise checks: ``from semalign.course import check``."""

    procrustes = staticmethod(_procrustes)
    top1 = staticmethod(_top1)
    effect = staticmethod(_effect)
    ordering = staticmethod(_ordering)
    table1_cell = staticmethod(_table1_cell)
    prompts = staticmethod(_prompts)


# ============================================================================ stripping solutions
#: A MyST directive fence opening a solution directive (backticks, tildes or colons).
_SOLUTION_FENCE = re.compile(r"^[ \t]*(?:`{3,}|~{3,}|:{3,})[ \t]*\{(solution(?:-start|-end)?)\}", re.M)


def solution_directives(cell) -> list[str]:
    """The solution directives a markdown cell opens, in order (``solution``, ``solution-start``,
    ``solution-end``); none for a code cell."""
    if cell.get("cell_type") != "markdown":
        return []
    return _SOLUTION_FENCE.findall(_source(cell))


def _source(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else str(s)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []) or [])


def _solution_flags(nb, where: str) -> list[bool]:
    """For each cell: is it solution material? (tagged, or a solution directive, or between a
    ``solution-start`` and its ``solution-end``). Structural errors raise."""
    flags, inside, start = [], False, -1
    for i, cell in enumerate(nb["cells"]):
        drop = SOLUTION_TAG in _tags(cell) or inside
        for kind in solution_directives(cell):
            drop = True
            if kind == "solution-start":
                if inside:
                    raise SolutionMarkupError(f"{where}: cell {i} opens a solution-start while the one of cell "
                                              f"{start} is not closed: add its ```{{solution-end}}``` first")
                inside, start = True, i
            elif kind == "solution-end":
                if not inside:
                    raise SolutionMarkupError(f"{where}: cell {i} has a solution-end without a solution-start")
                inside = False
        flags.append(drop)
    if inside:
        raise SolutionMarkupError(f"{where}: the solution-start of cell {start} is never closed: add a markdown "
                                  "cell with ```{solution-end}``` after the solution, or everything after it "
                                  "would be taken for solution")
    return flags


def strip_solutions(nb, where: str = "notebook"):
    """``(student notebook, removed cells)``: a copy of ``nb`` (an nbformat notebook or its dict)
    without any solution material: every cell tagged :data:`SOLUTION_TAG`, every markdown cell
    opening a solution directive, and every cell from a ``solution-start`` to its
    ``solution-end``. Raises :class:`SolutionMarkupError` for an unclosed ``solution-start``, a
    nested one or a stray ``solution-end`` (``where`` names the notebook in the message)."""
    flags = _solution_flags(nb, where)
    out = copy.deepcopy(nb)
    out["cells"] = [c for c, f in zip(out["cells"], flags) if not f]
    left = [i for i, c in enumerate(out["cells"]) if solution_directives(c)]
    assert not left, f"{where}: solution directives survived stripping in cells {left}"  # by construction
    return out, [c for c, f in zip(nb["cells"], flags) if f]


def lint_solutions(nb, where: str = "notebook") -> list[str]:
    """Authoring problems the stripping survives but a reader would not: solution material not
    tagged ``solution``, an exercise label without a solution, a solution of an unknown label."""
    problems = []
    flags = _solution_flags(nb, where)
    labels, solved = [], []
    for i, (cell, f) in enumerate(zip(nb["cells"], flags)):
        if f and SOLUTION_TAG not in _tags(cell):
            problems.append(f"{where}: cell {i} is solution material but not tagged {SOLUTION_TAG!r}")
        src = _source(cell) if cell.get("cell_type") == "markdown" else ""
        labels += re.findall(r"\{exercise(?:-start)?\}[^\n]*\n(?:[ \t]*:[^\n]*\n)*?[ \t]*:label:[ \t]*(\S+)", src)
        solved += re.findall(r"\{solution(?:-start)?\}[ \t]+(\S+)", src)
    problems += [f"{where}: exercise {lab!r} has no solution" for lab in labels if lab not in solved]
    problems += [f"{where}: a solution refers to {lab!r}, which no exercise here defines"
                 for lab in solved if lab not in labels]
    return problems


# ============================================================================ leak audit
def _cell_text(cell) -> str:
    """A cell's source and the text of its outputs."""
    parts = [_source(cell)]
    for out in cell.get("outputs", []) or []:
        if "text" in out:
            parts.append("".join(out["text"]) if isinstance(out["text"], list) else str(out["text"]))
        for mime, value in (out.get("data") or {}).items():
            if mime.startswith("text/"):
                parts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(parts)


def _flat(text: str) -> str:
    return " ".join(text.split())


#: A line of a removed cell shorter than this is too common to mean anything when found.
MIN_FRAGMENT = 20


def solution_fragments(secret: Sequence, public_text: str) -> list[str]:
    """Distinctive lines of the solution cells ``secret`` (sources and outputs): at least
    :data:`MIN_FRAGMENT` characters, whitespace-collapsed, and found nowhere in ``public_text``
    (what the student edition legitimately shows: the other cells, the book's pages)."""
    kept = _flat(public_text)
    out = set()
    for cell in secret:
        for line in _cell_text(cell).splitlines():
            f = _flat(line)
            if len(f) >= MIN_FRAGMENT and f not in kept:
                out.add(f)
    return sorted(out)


def _visible_text(path: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".html":
        return _flat(_html.unescape(re.sub(r"<[^>]+>", "", raw)))
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
            return _flat("\n".join(_cell_text(c) for c in nb.get("cells", [])))
        except (ValueError, AttributeError):
            pass
    return _flat(raw)


def find_leaks(site: Path, fragments: Sequence[str]) -> list[str]:
    """``"<file>: <fragment>"`` for every fragment found in a text file of the built ``site``
    (HTML by its visible text, notebooks by their cells, everything else as it is), and every
    page that still renders a sphinx-exercise solution (``class="solution``)."""
    leaks = []
    for p in sorted(Path(site).rglob("*")):
        if not p.is_file() or p.suffix not in (".html", ".ipynb", ".js", ".txt", ".json", ".py", ".md"):
            continue
        if p.suffix == ".html" and 'class="solution' in p.read_text(encoding="utf-8", errors="replace"):
            leaks.append(f"{p.relative_to(site)}: a rendered solution")
        text = _visible_text(p)
        leaks += [f"{p.relative_to(site)}: {f[:80]}" for f in fragments if f in text]
    return leaks


# ============================================================================ the student build
def _toc_files(toc: Any) -> list[str]:
    """Every ``file:`` of a jupyter-book ``_toc.yml`` (root included), in order."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k in ("root", "file"):
                if isinstance(node.get(k), str):
                    out.append(node[k])
            for v in node.values():
                if isinstance(v, (list, dict)):
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return out


def student_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The student edition's ``_config.yml``: the book's, titled as the student edition, without
    launch buttons (Binder would open the source with its solutions) and with sphinx-exercise's
    ``hide_solutions`` on (a second guard: no solution directive should be left to hide)."""
    cfg = copy.deepcopy(dict(config))
    cfg["title"] = f"{cfg.get('title', 'semalign')} — student edition"
    cfg["launch_buttons"] = {"notebook_interface": cfg.get("launch_buttons", {}).get("notebook_interface", "classic")}
    sphinx = cfg.setdefault("sphinx", {})
    sphinx.setdefault("config", {})["hide_solutions"] = True
    return cfg


def build_student(root: str | os.PathLike | None = None, out: str | os.PathLike | None = None) -> Path:
    """Build the student edition into ``<out>/html`` (default ``_build/student/html``); return its
    ``index.html``. Nothing is executed: the notebooks are the executed copies in
    ``book/generated/`` (run ``semalign book`` first), each stripped by :func:`strip_solutions`.

    The edition is built in a staging copy of the book (``<out>/.src-*``: ``_config.yml`` from
    :func:`student_config`, ``_toc.yml``, ``book/`` with the stripped notebooks) with
    :func:`semalign.book.build_book`, audited by :func:`find_leaks` and only then moved to
    ``<out>/html`` (the previous edition stays until then); a leak raises
    :class:`~semalign.book.BookError` and publishes nothing. The audit sorts the original cells
    into solution and public ones itself (by tag and by directive), so a fault of the stripping
    cannot hide from it. The normal build is not touched.
    """
    import nbformat
    import yaml

    from semalign import book
    from semalign._io import atomic_write_text, file_lock

    root = Path(root).resolve() if root is not None else book.repo_root()
    out = Path(out).resolve() if out is not None else root / "_build" / "student"
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    generated = [f for f in _toc_files(toc) if f.startswith("book/generated/")]
    missing = [f for f in generated if not (root / f"{f}.ipynb").is_file()]
    if missing:
        raise book.BookError(f"{', '.join(missing)}.ipynb missing: run `semalign book` first (the student "
                             "edition is built from the executed notebooks and runs nothing)")
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out / ".student.lock"):
        staging = Path(tempfile.mkdtemp(prefix=".src-", dir=out))
        try:
            shutil.copytree(root / "book", staging / "book",
                            ignore=shutil.ignore_patterns("generated", ".*.lock", ".staging-*"))
            shutil.copy(root / "_toc.yml", staging / "_toc.yml")
            atomic_write_text(staging / "_config.yml", yaml.safe_dump(student_config(config), sort_keys=False,
                                                                      allow_unicode=True))
            secret, public = [], []
            for f in generated:
                nb = nbformat.read(root / f"{f}.ipynb", as_version=4)
                student, _ = strip_solutions(nb, where=f"{f}.ipynb")
                nbformat.write(student, _mkparent(staging / f"{f}.ipynb"))
                # the audit does not trust the stripping: it sorts the original cells itself
                flags = _solution_flags(nb, f"{f}.ipynb")
                for cell, flag in zip(nb.cells, flags):
                    (secret if flag or SOLUTION_TAG in _tags(cell) else public).append(cell)
            public_text = "\n".join(_cell_text(c) for c in public) + "\n".join(
                p.read_text(encoding="utf-8", errors="replace") for p in (staging / "book").rglob("*.md"))
            book.build_book(staging)
            site = staging / "_build" / "html"
            leaks = find_leaks(site, solution_fragments(secret, public_text))
            if leaks:
                raise book.BookError("the student edition would show solution text, so it was not published: "
                                     + "; ".join(leaks[:5]) + (" …" if len(leaks) > 5 else ""))
            final, old = out / "html", out / f".html-old-{os.getpid()}"
            if final.exists():
                os.replace(final, old)
            os.replace(site, final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final / "index.html"


def _mkparent(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def cli_student(args: argparse.Namespace) -> int:
    """``semalign book --student``: the student edition from the executed notebooks."""
    print(build_student())
    return 0
