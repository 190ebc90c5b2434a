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
# # From general to medical models
#
# **Paper: Sec. 4.1, "Alignment from the general to medical domain" and "Ablation study",
# Table 1.** Encoders are grouped by domain (*general* / *medical*) and every ordered pair is
# stitched with one transform (the paper's `ortho`; parameter `table_method`). For each domain pair the table gives the source domain's
# upper bound (SUB: its encoders' mean AUROC with their own decoders), the stitched AUROC
# (mean ± std over pairs, runs and, for vision, tasks), the target domain's upper bound (TUB),
# and ▲/▼ the change against SUB — green for a gain, red for a loss, grey under 5 %. Vision
# pools the pneumonia task and the six VinDr findings, as in the paper.

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
vision_tasks = ["synthcxr-pneumonia"]
vision_encoders = ["efficientnet-lite0", "mobilenet-v2"]
table_method = "ortho"
table_anchors = 1000

# %%
import pandas as pd
from IPython.display import HTML, Markdown

from semalign import book, experiments, plots, tables

results, info = experiments.table1_results(
    text_task, text_encoders, vision_tasks, vision_encoders, method=table_method,
    n_anchors=table_anchors, runs=runs, seed=seed, device=device, batch_size=batch_size,
    anchor_pool=anchor_pool, task_params=task_params,
)
results.insert(0, "profile", profile)
book.write_results(results)
ours = experiments.table1_frame(results, method=table_method)
Markdown(experiments.describe_encoders(info["domains"])
         + f"\n\nTransform `{table_method}` with {experiments.describe_anchor_counts(info['n_anchors'])} "
         f"anchors (each capped by its task's anchor pool; the paper: `ortho`, 2500); "
         f"{runs} runs; profile `{profile}`.")

# %%
HTML(plots.table1_html(ours, tables.PAPER_TABLE1, ours_label=f"ours (profile {profile}"
                       + (", medical encoders are stand-ins)" if info["standins"] else ")")))

# %%
Markdown(experiments.read_table1(ours, tables.PAPER_TABLE1, standins=info["standins"]))
