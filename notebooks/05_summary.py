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
# # Results summary: our numbers beside the paper's
#
# **Paper: Sec. 4 and 5.** This page reads the result files written by the previous notebooks
# (`results/*.csv`, in the same folder as the executed notebooks) and sets each of the paper's
# claims beside what this book computed with the active profile. Nothing here is typed by hand
# except the paper's own numbers and claims, which are labelled **paper**.

# %% tags=["parameters"]
profile = "offline"

# %%
import pandas as pd
from IPython.display import HTML, Markdown

from semalign import book, experiments, plots, tables

fig3 = book.read_results("02_transforms")
t1 = book.read_results("03_general_to_medical")
fig4 = book.read_results("04_zeroshot")
summary = experiments.claims_summary(fig3, experiments.table1_frame(t1, method=t1.loc[~t1["method"].isin(["naive", "upper_bound"]), "method"].iloc[0]), tables.PAPER_TABLE1, fig4)
book.write_results(summary)
HTML(plots.claims_html(summary, profile=profile))

# %%
Markdown(experiments.read_claims(summary, profile))
