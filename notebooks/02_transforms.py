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
task_params = {}
runs = 3
anchor_pool = 1200
text_task = "openi-5class"
text_encoders = ["minilm-l6", "wordllama-256"]
vision_task = "synthcxr-pneumonia"
vision_encoders = ["efficientnet-lite0", "mobilenet-v2"]
methods = ["affine", "linear", "l-ortho", "ortho"]
anchor_counts = [10, 25, 50, 100, 250, 500, 1000]

# %%
import pandas as pd
from IPython.display import Markdown

from semalign import book, experiments, plots
from semalign.stitching import stitch_grid

plots.setup()


def fig3(task_name, encoders):
    task = experiments.encode_task(task_name, encoders, device=device, batch_size=batch_size,
                                   anchor_pool=anchor_pool, seed=seed, task_params=task_params)
    pool = min(e.anchors.shape[0] for e in task.encoders.values())
    counts = [n for n in anchor_counts if n <= pool]
    res = stitch_grid(task, ["naive", *methods, "upper_bound"], counts, runs=runs, seed=seed, progress=False)
    return task, res, pool, counts


text, text_res, text_pool, text_counts = fig3(text_task, text_encoders)
vision, vision_res, vision_pool, vision_counts = fig3(vision_task, vision_encoders)
results = pd.concat([text_res.assign(panel="(a) text"), vision_res.assign(panel="(b) vision")], ignore_index=True)
results.insert(0, "profile", profile)
book.write_results(results)
Markdown(experiments.describe_encoders({**text.domains, **vision.domains})
         + f"\n\nAnchor pools: {text_pool} ({text_task}), {vision_pool} ({vision_task}); "
         f"anchor counts above a pool's size are skipped. {runs} runs, seed {seed}, profile `{profile}`.")

# %% [markdown]
# ## (a) Text: report classification
# The task is the `text_task` parameter (the paper: MIMIC-5×200; the offline profile: Open-i
# reports, `openi-5class`). Hover a point for its mean, std and number of (pair, run) values.

# %%
plots.transforms_vs_anchors(text_res, title=f"(a) text — {text_task} (ours, profile {profile})")

# %%
Markdown(experiments.read_fig3(text_res, "text"))

# %% [markdown]
# ## (b) Vision: pneumonia
# The task is the `vision_task` parameter (the paper: RSNA pneumonia; the offline profile:
# SynthCXR radiographs, `synthcxr-pneumonia`).

# %%
plots.transforms_vs_anchors(vision_res, title=f"(b) vision — {vision_task} (ours, profile {profile})")

# %%
Markdown(experiments.read_fig3(vision_res, "vision"))
