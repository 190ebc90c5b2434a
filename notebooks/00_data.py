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
task_params = {"synthcxr-*": {"n_train_per_class": 100, "n_test_per_class": 100, "n_pool": 200}}
text_task = "openi-5class"
vision_tasks = ["synthcxr-pneumonia", "synthcxr-vindr-aortic-enlargement", "synthcxr-vindr-cardiomegaly",
                "synthcxr-vindr-lung-opacity", "synthcxr-vindr-pleural-thickening",
                "synthcxr-vindr-pulmonary-fibrosis", "synthcxr-vindr-tuberculosis"]
text_dataset = "openi-reports"
gallery_n = 12

# %%
from IPython.display import Markdown

from semalign import book
from semalign.report import data_overview, style

style.setup()
data_overview.profiles_table()

# %% [markdown]
# ## Label balance of the active profile's tasks
# Samples per class in the training and test split of each task, and the size of the unlabelled
# pool the anchors are drawn from. A balanced test split makes AUROC and chance easy to read.

# %%
balance = data_overview.compute([text_task, *vision_tasks], task_params)
balance.insert(0, "profile", profile)
book.write_results(balance)
data_overview.chart(balance, title=f"Samples per class and split (profile {profile})")

# %%
Markdown(data_overview.reading(balance))

# %% [markdown]
# ## The text source in aggregate
# Counts and lengths only; no report text leaves the dataset.

# %%
lengths = data_overview.text_lengths(text_dataset)
style.glue_numbers("lengths", data_overview.lengths_numbers(lengths))
data_overview.lengths_chart(lengths, title=f"{text_dataset}: {len(lengths)} reports")

# %% [markdown]
# **Reading.** {glue:text}`lengths_reports` reports; median length {glue:text}`lengths_median:.0f`
# words (10th–90th percentile {glue:text}`lengths_p10:.0f`–{glue:text}`lengths_p90:.0f`).

# %% [markdown]
# ## SynthCXR: the offline stand-in for chest radiographs
# Procedural images with anatomy and controllable findings; each comes with a report written
# from the same findings. Hover an image for its generated report (synthetic text, safe to show).

# %%
if gallery_n:
    images, captions, reports = data_overview.synthcxr_gallery(gallery_n, seed=seed)
    display(data_overview.gallery_chart(images, captions, details=reports, columns=6))

# %% [markdown]
# **Reading.** Every image is synthetic (generated from a seed); the captions list the findings
# the generator drew, which are also the labels of the SynthCXR tasks above.
