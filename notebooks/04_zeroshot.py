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
# # Unimodal zero-shot classification
#
# **Paper: Sec. 3.2 and 4.2, Fig. 2 and Fig. 4.** A vision encoder trained without text cannot
# compare an image with a sentence. The paper's method fits a transform (`ortho`) on
# image–report pairs that maps the vision encoder's embeddings into a text encoder's space, and
# there scores each test image by its cosine similarity with 10 prompts describing the finding
# minus 10 prompts describing its absence. A bar counts as *above chance* only when it clears
# 0.5 by two standard deviations of an uninformative classifier's AUROC on the same test set
# (about 0.065 with 40 + 40 images). Fig. 4 compares it, for every vision encoder, with
# the standard multimodal zero-shot of CLIP and MedCLIP, on pneumonia and six VinDr-CXR findings.

# %% tags=["parameters"]
profile = "offline"
device = "cpu"
batch_size = 64
seed = 0
task_params = {}
vision_tasks = ["synthcxr-pneumonia"]
vision_encoders = ["efficientnet-lite0", "mobilenet-v2"]
text_encoder = "minilm-l6"
pairs = "synthcxr-pairs"
n_pairs = 2000
pair_pool = 2700
runs = 3
method = "ortho"
n_prompts = 10
baselines = {}

# %%
import pandas as pd
from IPython.display import Markdown

from semalign import book, experiments, plots

plots.setup()
results, info = experiments.zeroshot_grid(
    vision_tasks, vision_encoders, text_encoder, pairs=pairs, n_pairs=n_pairs, method=method,
    n_prompts=n_prompts, baselines=baselines, device=device, batch_size=batch_size, seed=seed,
    task_params=task_params, runs=runs, pair_pool=pair_pool,
)
results.insert(0, "profile", profile)
book.write_results(results)
Markdown(experiments.describe_encoders(info["domains"]) + "\n\n" + experiments.describe_zeroshot_setup(
    text_encoder, info["domains"][text_encoder], pairs, info["n_pairs"], method, n_prompts, profile,
    runs=info["runs"], pair_pool=info["pair_pool"]))

# %%
if not baselines:
    display(Markdown(
        "**No multimodal baseline in this profile.** CLIP and MedCLIP weights are not shipped by any "
        "package registry, so the offline profile shows only the paper's unimodal method; the "
        "comparison of Fig. 4 with CLIP and MedCLIP is **not reproduced here** (run the `open` or "
        "`paper` profile for it)."))
plots.zeroshot_bars(experiments.fig4_frame(results),
                    title=f"Zero-shot AUROC per task (ours, profile {profile}); dashed line: chance")

# %%
Markdown(experiments.read_fig4(results))

# %%
experiments.fig4_frame(results).pivot_table(index="model", columns="task", values="auroc").round(3)  # means over runs
