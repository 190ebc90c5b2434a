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
# # The data of each profile
#
# **Paper: Sec. 4, "Datasets".** The paper evaluates text classification on MIMIC-CXR reports
# (MIMIC-5×200), vision on RSNA pneumonia and six VinDr-CXR findings, and learns the image–report
# alignment of its zero-shot method on MIMIC-CXR pairs. All three are credentialed. This page
# shows what each profile of this book puts in those roles, the label balance of the active
# profile's tasks, and SynthCXR, the procedural radiographs that stand in for the images offline.
# Report text is never shown: the Open-i reports are CC BY-NC-ND and read in place, so only
# aggregates (counts, lengths) appear here.

# %% tags=["parameters"]
profile = "offline"
seed = 0
task_params = {}
text_task = "openi-5class"
vision_tasks = ["synthcxr-pneumonia"]
text_dataset = "openi-reports"
gallery_n = 12

# %%
import numpy as np
import pandas as pd
import altair as alt
from IPython.display import Markdown

from semalign import book, experiments, plots

plots.setup()
experiments.profiles_table()

# %% [markdown]
# ## Label balance of the active profile's tasks

# %%
balance = experiments.label_balance([text_task, *vision_tasks], task_params)
balance.insert(0, "profile", profile)
book.write_results(balance)
alt.Chart(balance).mark_bar().encode(
    x=alt.X("count:Q", title="samples"),
    y=alt.Y("split:N", title=None),
    color=alt.Color("label:N", title="class"),
    row=alt.Row("task:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
    tooltip=["task", "split", "label", "count"],
).properties(width=420, height=60, title=f"Samples per class and split (profile {profile})")

# %%
Markdown(experiments.read_balance(balance))

# %% [markdown]
# ## The text source in aggregate
# Counts and lengths only; no report text leaves the dataset.

# %%
lengths = experiments.text_lengths(text_dataset)
alt.Chart(lengths).mark_bar().encode(
    x=alt.X("words:Q", bin=alt.Bin(maxbins=40), title="words per report (findings + impression)"),
    y=alt.Y("count():Q", title="reports"),
    tooltip=[alt.Tooltip("count():Q", title="reports")],
).properties(width=420, height=180, title=f"{text_dataset}: {len(lengths)} reports")

# %%
Markdown(f"**Reading.** {len(lengths)} reports; median length {lengths['words'].median():.0f} words "
         f"(10th–90th percentile {lengths['words'].quantile(0.1):.0f}–{lengths['words'].quantile(0.9):.0f}).")

# %% [markdown]
# ## SynthCXR: the offline stand-in for chest radiographs
# Procedural images with anatomy and controllable findings; each comes with a report written
# from the same findings. Hover an image for its generated report (synthetic text, safe to show).

# %%
if gallery_n:
    images, captions, reports = experiments.synthcxr_gallery(gallery_n, seed=seed)
    display(plots.gallery(images, captions, details=reports, columns=6))

# %%
Markdown("**Reading.** Every image is synthetic (generated from a seed); the captions list the findings "
         "the generator drew, which are also the labels of the SynthCXR tasks above.")
