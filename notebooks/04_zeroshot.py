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
task_params = {"synthcxr-*": {"n_train_per_class": 40, "n_test_per_class": 40, "n_pool": 200}}
vision_tasks = ["synthcxr-pneumonia", "synthcxr-vindr-aortic-enlargement", "synthcxr-vindr-cardiomegaly",
                "synthcxr-vindr-lung-opacity", "synthcxr-vindr-pleural-thickening",
                "synthcxr-vindr-pulmonary-fibrosis", "synthcxr-vindr-tuberculosis"]
vision_encoders = ["efficientnet-lite0", "mobilenet-v2", "standin-vision-synthcxr"]
text_encoder = "minilm-l6"
pairs = "synthcxr-pairs"
n_pairs = 600
pair_pool = 800
runs = 3
method = "ortho"
n_prompts = 10
baselines = {}

# %%
from IPython.display import Markdown
from myst_nb import glue

from semalign import book
from semalign.report import fig4, style
from semalign.zeroshot import anchor_draws, unimodal_zeroshot

style.setup()
results, info = fig4.compute(
    vision_tasks, vision_encoders, text_encoder, pairs=pairs, n_pairs=n_pairs, method=method,
    n_prompts=n_prompts, baselines=baselines, device=device, batch_size=batch_size, seed=seed,
    task_params=task_params, runs=runs, pair_pool=pair_pool,
)
results.insert(0, "profile", profile)
book.write_results(results)
style.glue_numbers("fig4", fig4.numbers(results))
Markdown(style.describe_encoders(info["domains"]) + "\n\n" + fig4.describe_setup(
    text_encoder, info["domains"][text_encoder], pairs, info["n_pairs"], method, n_prompts, profile,
    runs=info["runs"], pair_pool=info["pair_pool"]))

# %% [markdown]
# ## The method in one cell
# The first result of the grid, by hand (first task, first vision encoder, run 0): `method` is
# fitted on run 0's image–report pairs (image embeddings → report embeddings), maps the test
# images into the text space, and each image is scored by its similarity to the positive prompts
# minus the negative ones.

# %%
embedded = info["encoded"]                                              # what the grid scored
task, enc = embedded.tasks[0], vision_encoders[0]
a = anchor_draws(embedded.pair_pool, n_pairs, runs, seed)[0]            # run 0's pairs
r = unimodal_zeroshot(task.images[enc], task.y, embedded.anchor_images[enc][a], embedded.anchor_text[a],
                      task.pos, task.neg, method=method, seed=seed)
glue("fig4_one_auroc", r.auroc, display=False)
glue("fig4_one", f"{enc} on {task.name}", display=False)
r.auroc

# %% [markdown]
# {glue:text}`fig4_one`, run 0: AUROC {glue:text}`fig4_one_auroc:.3f`. The grid repeats this for
# every task, vision encoder and run.

# %%
if not baselines:
    display(Markdown(
        "**No multimodal baseline in this profile.** CLIP and MedCLIP weights are not shipped by any "
        "package registry, so the offline profile shows only the paper's unimodal method; the "
        "comparison of Fig. 4 with CLIP and MedCLIP is **not reproduced here** (run the `open` or "
        "`paper` profile for it)."))

# %% [markdown]
# Each bar is a mean over the runs' anchor draws, with its standard deviation; the dashed line is
# chance. Look at how many bars clear the chance level by two null standard deviations
# (AUROC {glue:text}`fig4_threshold:.2f` here): {glue:text}`fig4_above` of
# {glue:text}`fig4_results` (encoder, task) results do, and the best encoder clears it on
# {glue:text}`fig4_tasks_above` of {glue:text}`fig4_tasks` tasks.

# %%
fig4.chart(fig4.frame(results), title=f"Zero-shot AUROC per task (ours, profile {profile}); dashed line: chance")

# %%
Markdown(fig4.reading(results))

# %%
fig4.frame(results).pivot_table(index="model", columns="task", values="auroc").round(3)  # means over runs
