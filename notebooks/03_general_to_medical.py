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
task_params = {"synthcxr-*": {"n_train_per_class": 40, "n_test_per_class": 40, "n_pool": 200}}
runs = 3
anchor_pool = 1200
text_task = "openi-5class"
text_encoders = ["minilm-l6", "wordllama-256", "standin-text-mesh", "standin-text-tfidf"]
vision_tasks = ["synthcxr-pneumonia", "synthcxr-vindr-aortic-enlargement", "synthcxr-vindr-cardiomegaly",
                "synthcxr-vindr-lung-opacity", "synthcxr-vindr-pleural-thickening",
                "synthcxr-vindr-pulmonary-fibrosis", "synthcxr-vindr-tuberculosis"]
vision_encoders = ["efficientnet-lite0", "mobilenet-v2", "standin-vision-synthcxr"]
table_method = "ortho"
table_anchors = 1000

# %%
import numpy as np
from IPython.display import HTML, Markdown
from myst_nb import glue

from semalign import book
from semalign.align import Translator
from semalign.report import style, table1
from semalign.stitching import auroc, decision_scores, fit_decoder

results, info = table1.compute(
    text_task, text_encoders, vision_tasks, vision_encoders, method=table_method,
    n_anchors=table_anchors, runs=runs, seed=seed, device=device, batch_size=batch_size,
    anchor_pool=anchor_pool, task_params=task_params,
)
results.insert(0, "profile", profile)
book.write_results(results)
ours = table1.table(results, method=table_method)
style.glue_numbers("t1", table1.numbers(ours))
style.glue_numbers("t1_paper", table1.numbers(table1.PAPER_TABLE1))
Markdown(style.describe_encoders(info["domains"])
         + f"\n\nTransform `{table_method}` with {table1.describe_anchor_counts(info['n_anchors'])} "
         f"anchors (each capped by its task's anchor pool; the paper: `ortho`, 2500); "
         f"{runs} runs; profile `{profile}`.")

# %% [markdown]
# ## The method in one cell
# One pair of the text Gen→Med cell, by hand: the first text encoder (general) embeds the test
# reports, `table_method` fitted on run 0's anchors maps them into a medical encoder's space,
# and that encoder's own decoder classifies them. Its upper bound, the same decoder on its own
# embeddings, is the TUB side of the table.

# %%
text = info["encoded"][text_task]                                 # the embeddings the table used
med = next((n for n, d in text.domains.items() if style.is_medical(d)), text_encoders[-1])
src, tgt = text.encoders[text_encoders[0]], text.encoders[med]
n = min(table_anchors, text.pool_size)
a = np.random.default_rng([seed, 0]).permutation(text.pool_size)[:n]    # run 0's anchors
t = Translator(table_method, seed=seed).fit(src.anchors[a], tgt.anchors[a])
decoder = fit_decoder(tgt.train, text.y_train)                    # the target encoder's own classifier
stitched = auroc(text.y_test, decision_scores(decoder, t.transform(src.test)), list(decoder.classes_))
own = auroc(text.y_test, decision_scores(decoder, tgt.test), list(decoder.classes_))
glue("t1_one_stitch", stitched, display=False)
glue("t1_one_own", own, display=False)
glue("t1_one_pair", f"{text_encoders[0]} → {med}", display=False)
stitched, own

# %% [markdown]
# {glue:text}`t1_one_pair`: stitched AUROC {glue:text}`t1_one_stitch:.3f`, against
# {glue:text}`t1_one_own:.3f` for the target encoder on its own embeddings of the reports.
#
# ## Table 1
# Gen→Med is the row to read. In text, stitching general encoders into the medical ones gives a
# mean AUROC of {glue:text}`t1_text_gen_med:.2f` against a source upper bound (SUB) of
# {glue:text}`t1_text_gen_med_sub:.2f`: {glue:text}`t1_text_gen_med_change_pct:+.0f` %,
# {glue:text}`t1_text_gen_med_verdict` (the paper: {glue:text}`t1_paper_text_gen_med_change_pct:+.0f` %,
# {glue:text}`t1_paper_text_gen_med_verdict`). In vision it is {glue:text}`t1_vision_gen_med:.2f`
# against {glue:text}`t1_vision_gen_med_sub:.2f`: {glue:text}`t1_vision_gen_med_change_pct:+.0f` %,
# {glue:text}`t1_vision_gen_med_verdict` (the paper: {glue:text}`t1_paper_vision_gen_med_change_pct:+.0f` %,
# {glue:text}`t1_paper_vision_gen_med_verdict`).

# %%
HTML(table1.html(ours, table1.PAPER_TABLE1, ours_label=f"ours (profile {profile}"
                 + (", medical encoders are stand-ins)" if info["standins"] else ")")))

# %%
Markdown(table1.reading(ours, table1.PAPER_TABLE1, standins=info["standins"]))
