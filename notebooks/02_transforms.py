# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Influence of the transform and of the number of anchors
#
# **Paper: Sec. 4.1, "Influence of 𝒯", Fig. 3.** Every ordered (source, target) pair of encoders
# of one modality is stitched: the source embeds a test sample, a transform fitted on *N*
# anchors maps it into the target space, and the target's decoder (a linear SVM trained on the
# target's own training embeddings) classifies it. The curves show AUROC against *N* for
# `affine`, `linear`, `l-ortho` and `ortho`, as mean ± std over all pairs and runs (each run a
# new random draw of anchors), beside `naive` stitching (no transform) and the `upper bound`
# (each target decoder on its own encoder). (a) is text, (b) is vision.

# %% tags=["parameters"]
profile = "offline"
device = "cpu"
batch_size = 64
seed = 0
task_params = {"synthcxr-*": {"n_train_per_class": 100, "n_test_per_class": 100, "n_pool": 200}}
runs = 3
anchor_pool = 1200
text_task = "openi-5class"
text_encoders = ["minilm-l6", "wordllama-256", "standin-text-minilm-openi", "standin-text-wordllama-openi"]
vision_task = "synthcxr-pneumonia"
vision_encoders = ["efficientnet-lite0", "mobilenet-v2", "standin-vision-ssl"]
methods = ["affine", "linear", "l-ortho", "ortho"]
anchor_counts = [10, 50, 250, 1000]

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

from semalign import book
from semalign.align import Translator
from semalign.encoders.tasks import encode_task
from semalign.report import fig3, style
from semalign.stitching import auroc, decision_scores, fit_decoder

style.setup()
embedded = dict(device=device, batch_size=batch_size, anchor_pool=anchor_pool, seed=seed, task_params=task_params)
text = encode_task(text_task, text_encoders, **embedded)
vision = encode_task(vision_task, vision_encoders, **embedded)
Markdown(style.describe_encoders({**text.domains, **vision.domains})
         + f"\n\nAnchor pools: {text.pool_size} ({text_task}), {vision.pool_size} ({vision_task}); "
         f"anchor counts above a pool's size are skipped. {runs} runs, seed {seed}, profile `{profile}`.")

# %% [markdown]
# ## The method in one cell
# One stitch of panel (a), by hand: the first text encoder embeds the test reports, `ortho`
# fitted on the largest anchor count maps them into the second encoder's space, and the second
# encoder's own decoder classifies them. The grid below does this for every pair, transform,
# anchor count and run.

# %%
src, tgt = text.encoders[text_encoders[0]], text.encoders[text_encoders[1]]
n = max(fig3.counts_within(anchor_counts, text.pool_size))
a = np.random.default_rng([seed, 0]).permutation(text.pool_size)[:n]    # run 0's anchors
t = Translator("ortho", seed=seed).fit(src.anchors[a], tgt.anchors[a])
y_hat = t.transform(src.test)                                           # source test reports, target space
decoder = fit_decoder(tgt.train, text.y_train)                          # the target's own classifier
one = auroc(text.y_test, decision_scores(decoder, y_hat), list(decoder.classes_))
glue("fig3_one_stitch", one, display=False)
glue("fig3_one_n", int(n), display=False)
one

# %% [markdown]
# Stitched this way with {glue:text}`fig3_one_n` anchors, the test reports get an AUROC of
# {glue:text}`fig3_one_stitch:.3f` (one pair, one draw: a single point of the grid below).

# %%
text_res = fig3.compute(text, methods, anchor_counts, runs=runs, seed=seed)
vision_res = fig3.compute(vision, methods, anchor_counts, runs=runs, seed=seed)
results = pd.concat([text_res.assign(panel="(a) text"), vision_res.assign(panel="(b) vision")], ignore_index=True)
results.insert(0, "profile", profile)
book.write_results(results)
style.glue_numbers("fig3_text", fig3.numbers(text_res))
style.glue_numbers("fig3_vision", fig3.numbers(vision_res))

# %% [markdown]
# ## (a) Text: report classification
# The task is the `text_task` parameter (the paper: MIMIC-5×200; the offline profile: Open-i
# reports, `openi-5class`). Look at where the curves end: with {glue:text}`fig3_text_n_max`
# anchors the best transform, **{glue:text}`fig3_text_best`**, reaches a mean AUROC of
# {glue:text}`fig3_text_best_auroc:.3f`, against {glue:text}`fig3_text_naive:.3f` for naive
# stitching and {glue:text}`fig3_text_upper_bound:.3f` for the upper bound. Hover a point for its
# mean, std and number of (pair, run) values.

# %%
fig3.chart(text_res, title=f"(a) text — {text_task} (ours, profile {profile})")

# %%
Markdown(fig3.reading(text_res, "text"))

# %% [markdown]
# ## (b) Vision: pneumonia
# The task is the `vision_task` parameter (the paper: RSNA pneumonia; the offline profile:
# SynthCXR radiographs, `synthcxr-pneumonia`). With {glue:text}`fig3_vision_n_max` anchors the
# best transform, **{glue:text}`fig3_vision_best`**, reaches {glue:text}`fig3_vision_best_auroc:.3f`
# (naive {glue:text}`fig3_vision_naive:.3f`, upper bound {glue:text}`fig3_vision_upper_bound:.3f`).

# %%
fig3.chart(vision_res, title=f"(b) vision — {vision_task} (ours, profile {profile})")

# %%
Markdown(fig3.reading(vision_res, "vision"))

# %% [markdown]
# **Fewer anchors than dimensions.** `ortho` and `l-ortho` are unique only when the anchors span
# the embedding space. With fewer anchors than an encoder has dimensions (the offline CNN features
# have 1280, so every vision count above), the anchors fix the orthogonal map on their span only,
# and every completion on the rest of the space fits them equally well. A plain SVD (latentis's,
# so the paper's code) lets its basis of the null space decide, which moves with the
# linear-algebra library, its thread count and the last bits of the embeddings: measured here, up
# to 0.28 AUROC for one cell (`benchmarks/RESULTS.md`, "Speed round"). `semalign` keeps only what
# the anchors determine: the partial isometry on their span, the mean of all the equally good
# completions, which maps the directions the anchors leave free to zero (not to `naive`'s
# identity: that would mix the baseline into the transform, and the stand-ins share coordinates
# with their base encoders). These points are the same on every machine up to rounding, but
# they are not the paper's: its largest anchor counts exceed its encoders' dimensions, so its
# curves end where the map is unique and this choice does not arise.


# %% [markdown]
# ## Exercises
#
# Each exercise has a solution, hidden until you open it (the student edition of the book,
# `semalign book --student`, has none). Predict before you measure: write your prediction in
# the cell first, then let `semalign.course.check` compare it with the measurement.
#
# ```{exercise} Predict, then switch off standard scaling
# :label: ex-02-scaling
#
# Every transform here runs after the paper's standard scaling: each feature centred and divided
# by its standard deviation over the anchors, the output de-normalised with the target's
# statistics (Sec. 3.1). *Predict first*: with `ortho` at the largest anchor count of panel (a),
# does switching it off (`Translator("ortho", std_scaling=False)`) make the stitched AUROC of
# the text encoders higher, lower or about the same? Then measure it for every ordered pair of
# text encoders on run 0's anchors (the one-stitch cell above shows each step) and compare with
# `check.effect`.
# ```

# %%
from semalign.course import check

n_max = max(fig3.counts_within(anchor_counts, text.pool_size))
run0 = np.random.default_rng([seed, 0]).permutation(text.pool_size)[:n_max]   # run 0's anchors
text_pairs = [(s, t_) for s in text_encoders for t_ in text_encoders if s != t_]
scaling_prediction = None        # "higher", "lower" or "same": write it before measuring


def stitched_auroc(source, target, std_scaling):
    """AUROC of `source`'s test reports translated by ortho (fitted on run0) and classified by `target`'s decoder."""
    raise NotImplementedError("your code here")


# check.effect(scaling_prediction, [stitched_auroc(s, t_, True) for s, t_ in text_pairs],
#              [stitched_auroc(s, t_, False) for s, t_ in text_pairs], change="switching off standard scaling")

# %% [markdown] tags=["solution"]
# ```{solution-start} ex-02-scaling
# :class: dropdown
# ```
#
# Prediction, written before measuring: **lower**. Standard scaling does two things a rotation
# cannot: it removes each encoder's mean embedding (a rotation maps the source's mean onto some
# other direction, not onto the target's mean) and it puts every feature on one scale (a rotation
# keeps the source's lengths, while the target's decoder was trained on the target's).

# %% tags=["solution"]
scaling_prediction = "lower"
decoders = {name: fit_decoder(text.encoders[name].train, text.y_train) for name in text_encoders}


def stitched_auroc(source, target, std_scaling):
    src_e, tgt_e, dec = text.encoders[source], text.encoders[target], decoders[target]
    tr = Translator("ortho", std_scaling=std_scaling, seed=seed).fit(src_e.anchors[run0], tgt_e.anchors[run0])
    return auroc(text.y_test, decision_scores(dec, tr.transform(src_e.test)), list(dec.classes_))


check.effect(scaling_prediction, [stitched_auroc(s, t_, True) for s, t_ in text_pairs],
             [stitched_auroc(s, t_, False) for s, t_ in text_pairs], change="switching off standard scaling");

# %% [markdown] tags=["solution"]
# If the measurement disagrees with the prediction, look at what scaling had to correct: the
# encoders' mean embeddings and their features' spreads (`text.encoders[s].anchors.mean(0)`,
# `.std(0)`). Embeddings that are already nearly centred, with features of similar spread, leave
# it little to do.
#
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Which transform wins with few anchors?
# :label: ex-02-few-anchors
#
# With few anchors, a transform with fewer parameters has less to estimate and less to get wrong.
# Rank the transforms of `methods` from best to worst at the *smallest* anchor count of panel
# (a), before you look at the left end of the chart. Then write `few_anchor_means(res)`, the mean
# AUROC of each transform at the smallest anchor count of a Fig. 3 results frame, and compare
# your ranking with `check.ordering(ranking, few_anchor_means(text_res))`.
# ```

# %%
few_anchor_ranking = []          # the transforms of `methods`, best first, written before looking


def few_anchor_means(res):
    """{method: mean AUROC} of the transforms (not naive, not the upper bound) at res's smallest anchor count."""
    raise NotImplementedError("your code here")


# check.ordering(few_anchor_ranking, few_anchor_means(text_res), what="transforms at the fewest anchors")

# %% [markdown] tags=["solution"]
# ```{solution-start} ex-02-few-anchors
# :class: dropdown
# ```
#
# Prediction, before looking: the paper's text panel (Fig. 3a) has `ortho` on top, and an
# orthogonal map cannot blow up the scale of a fit on a handful of anchors, so `ortho`, then
# `l-ortho`, then `linear` (a minimum-norm fit that interpolates the few anchors exactly), and
# `affine` last (300 Adam steps from a random start move it little from where it began).

# %% tags=["solution"]
paper_order = ["ortho", "l-ortho", "linear", "affine"]
few_anchor_ranking = [m for m in paper_order if m in methods] + [m for m in methods if m not in paper_order]


def few_anchor_means(res):
    aligned = res[~res["method"].isin(fig3.BASELINES)]
    fewest = aligned[aligned["n_anchors"] == aligned["n_anchors"].min()]
    return fewest.groupby("method")["auroc"].mean().to_dict()


check.ordering(few_anchor_ranking, few_anchor_means(text_res), what="transforms at the fewest anchors");

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```
