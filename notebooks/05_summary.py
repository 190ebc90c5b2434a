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
from IPython.display import HTML, Markdown

from semalign import book
from semalign.report import claims, style, table1

fig3 = book.read_results("02_transforms")
t1 = book.read_results("03_general_to_medical")
fig4 = book.read_results("04_zeroshot")
summary = claims.compute(fig3, table1.table(t1), table1.PAPER_TABLE1, fig4)
book.write_results(summary)
style.glue_numbers("claims", claims.counts(summary))

# %% [markdown]
# {glue:text}`claims_held` of the {glue:text}`claims_tested` claims this profile can test hold in
# our numbers; of the others, {glue:text}`claims_noise` are within the test-set noise (our
# difference is under 2 SE: neither reproduced nor contradicted). {glue:text}`claims_untested`
# cannot be tested with this profile. Each row below says where the paper makes the claim, its value, ours, and
# whether they agree.

# %%
HTML(claims.html(summary, profile=profile))

# %%
Markdown(claims.reading(summary, profile))

# %% [markdown]
# ## Beyond the paper
# What the chapter *Beyond the paper* found with this profile, read from its results file
# (`results/06_beyond.csv`). These are not claims of the paper: they answer questions it leaves
# open (which anchors, why a pair stitches, a training-free baseline, the least-squares dip).

# %%
try:
    beyond_results = book.read_results("06_beyond")
except book.BookError:  # the chapter has not run with this profile
    beyond_results = None
Markdown(claims.beyond_list(beyond_results, profile))
