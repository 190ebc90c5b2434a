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
task_params = {"synthcxr-*": {"n_train_per_class": 40, "n_test_per_class": 40, "n_pool": 200}}
runs = 3
anchor_pool = 1200
text_task = "openi-5class"
text_encoders = ["minilm-l6", "wordllama-256", "standin-text-mesh", "standin-text-tfidf"]
vision_task = "synthcxr-pneumonia"
vision_encoders = ["efficientnet-lite0", "mobilenet-v2", "standin-vision-synthcxr"]
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
