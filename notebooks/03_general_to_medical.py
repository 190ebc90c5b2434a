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
# pools the pneumonia task and the six VinDr findings, as in the paper. Our cells add what the
# paper's do not: the standard error (SE) each mean has from its finite test sets.

# %% tags=["parameters"]
profile = "offline"
device = "cpu"
batch_size = 64
seed = 0
task_params = {"synthcxr-*": {"n_train_per_class": 100, "n_test_per_class": 100, "n_pool": 200}}
runs = 3
anchor_pool = 1200
text_task = "openi-5class"
text_encoders = ["minilm-l6", "wordllama-256", "standin-text-minilm-openi", "standin-text-wordllama-openi"]
vision_tasks = ["synthcxr-pneumonia", "synthcxr-vindr-aortic-enlargement", "synthcxr-vindr-cardiomegaly",
                "synthcxr-vindr-lung-opacity", "synthcxr-vindr-pleural-thickening",
                "synthcxr-vindr-pulmonary-fibrosis", "synthcxr-vindr-tuberculosis"]
vision_encoders = ["efficientnet-lite0", "mobilenet-v2", "standin-vision-ssl"]
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
n_test = results.groupby(["modality", "task"])["n_test"].first()   # test samples per task
glue("t1_n_test_text", int(n_test["text"].iloc[0]), display=False)
glue("t1_n_test_vision", int(n_test["vision"].iloc[0]), display=False)
glue("t1_n_tasks_vision", len(n_test["vision"]), display=False)
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
# mean AUROC of {glue:text}`t1_text_gen_med:.2f` (SE {glue:text}`t1_text_gen_med_se:.3f`) against a
# source upper bound (SUB) of {glue:text}`t1_text_gen_med_sub:.2f` (SE {glue:text}`t1_text_gen_med_sub_se:.3f`):
# {glue:text}`t1_text_gen_med_change_pct:+.0f` %, {glue:text}`t1_text_gen_med_verdict` (the paper:
# {glue:text}`t1_paper_text_gen_med_change_pct:+.0f` %, {glue:text}`t1_paper_text_gen_med_verdict`), a
# difference of {glue:text}`t1_text_gen_med_diff_z:+.1f` SE of the difference —
# {glue:text}`t1_text_gen_med_noise`. In vision it is {glue:text}`t1_vision_gen_med:.2f`
# (SE {glue:text}`t1_vision_gen_med_se:.3f`) against {glue:text}`t1_vision_gen_med_sub:.2f`
# (SE {glue:text}`t1_vision_gen_med_sub_se:.3f`): {glue:text}`t1_vision_gen_med_change_pct:+.0f` %,
# {glue:text}`t1_vision_gen_med_verdict` (the paper: {glue:text}`t1_paper_vision_gen_med_change_pct:+.0f` %,
# {glue:text}`t1_paper_vision_gen_med_verdict`), {glue:text}`t1_vision_gen_med_diff_z:+.1f` SE of the
# difference — {glue:text}`t1_vision_gen_med_noise`.
#
# **Two kinds of ±.** The ± after a mean is the paper's: the standard deviation over encoder
# pairs, runs and (vision) tasks — how much the combinations differ, not how well the mean is
# known. The SE under each of our cells is the standard error from the finite test sets
# (Hanley–McNeil, from each task's AUROC and class counts): {glue:text}`t1_n_test_text` test
# reports for text, {glue:text}`t1_n_tasks_vision` vision tasks of {glue:text}`t1_n_test_vision`
# test images each (half with the finding), drawn from one shared SynthCXR test pool. The rows
# of a task share its test set, so their errors are not averaged away; the tasks are combined as
# independent (an approximation: the SynthCXR tasks share test images). A change against SUB is
# beyond the test-set noise when it is at least 2 SE of the difference, whose SE treats the two
# means as independent — which overstates it, as they are measured on the same test sets.

# %%
HTML(table1.html(ours, table1.PAPER_TABLE1, ours_label=f"ours (profile {profile}"
                 + (", medical encoders are stand-ins)" if info["standins"] else ")")))

# %%
Markdown(table1.reading(ours, table1.PAPER_TABLE1, standins=info["standins"]))


# %% [markdown]
# ## Exercises
#
# Each exercise has a solution, hidden until you open it (the student edition of the book,
# `semalign book --student`, has none); `semalign.course.check` compares your numbers with the
# table's and says what to look at when they differ.
#
# ```{exercise} One cell of Table 1, by hand
# :label: ex-03-cell
#
# `results` is the tidy frame the table is computed from: one row per task, source, target,
# method and run with its AUROC, the `upper_bound` rows being each encoder's decoder on its own
# embeddings. Compute the text **Gen→Med** cell with pandas: the mean AUROC of `table_method`
# over the ordered pairs whose source is general and whose target is medical (a stand-in counts as
# medical) and over the runs, and its change in % against the source domain's upper bound (SUB:
# the mean upper bound of the general encoders). Then check both with `check.table1_cell`.
# ```

# %%
from semalign.course import check

gen_med_mean = None              # the stitched mean AUROC of the text Gen→Med cell
gen_med_change = None            # its change against SUB, in %

# check.table1_cell(gen_med_mean, gen_med_change, results, modality="text", pair="Gen→Med", method=table_method)

# %% [markdown] tags=["solution"]
# ```{solution-start} ex-03-cell
# :class: dropdown
# ```
#
# Keep the `table_method` rows at the table's anchor count with a general source, a medical
# target and two different encoders; SUB is the mean of the general encoders' upper bounds. (The
# text modality has one task; for vision the table averages each task first, then the tasks.)

# %% tags=["solution"]
txt = results[results["modality"] == "text"]
n_table = txt.loc[txt["method"] == table_method, "n_anchors"].max()
general_source, medical_target = txt["source_domain"] == "general", txt["target_domain"] != "general"
cell = txt[(txt["method"] == table_method) & (txt["n_anchors"] == n_table) & general_source & medical_target
           & (txt["source"] != txt["target"])]
sub = txt.loc[(txt["method"] == "upper_bound") & general_source, "auroc"].mean()
gen_med_mean = cell["auroc"].mean()
gen_med_change = 100 * (gen_med_mean - sub) / sub
check.table1_cell(gen_med_mean, gen_med_change, results, modality="text", pair="Gen→Med", method=table_method)

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Does the text gain depend on the transform?
# :label: ex-03-linear
#
# Table 1 uses `ortho`. *Predict*: with `linear` instead — the same anchors, the same runs —
# will the stitched AUROC of the text Gen→Med pairs be higher, lower or about the same? Then stitch
# the text task again with `stitch_grid(text_embedded, ["linear"], [n_text], runs=runs, seed=seed,
# progress=False)` and compare pair by pair and run by run with `check.effect`.
# ```

# %%
from semalign.stitching import stitch_grid

text_embedded = info["encoded"][text_task]                 # the text embeddings Table 1 used
n_text = min(table_anchors, text_embedded.pool_size)       # and its anchor count
linear_prediction = None         # "higher", "lower" or "same": write it before measuring

# linear_res = stitch_grid(text_embedded, ["linear"], [n_text], runs=runs, seed=seed, progress=False)
# check.effect(linear_prediction, <the ortho Gen→Med AUROCs>, <the linear ones, same pairs and runs in the same order>,
#              change="linear instead of ortho")

# %% [markdown] tags=["solution"]
# ```{solution-start} ex-03-linear
# :class: dropdown
# ```
#
# Prediction, before measuring: **lower**. `linear` estimates a full $d_1 \times d_2$ matrix from
# the anchors, hundreds of thousands of numbers from about a thousand anchors, and the paper
# found `ortho` best for text (Fig. 3a); an orthogonal map cannot overfit them that way.

# %% tags=["solution"]
linear_prediction = "lower"
linear_res = stitch_grid(text_embedded, ["linear"], [n_text], runs=runs, seed=seed, progress=False)


def gen_med_aurocs(frame, method):
    stitched = frame[(frame["method"] == method) & (frame["n_anchors"] == n_text) & (frame["source"] != frame["target"])]
    rows = stitched[(stitched["source_domain"] == "general") & (stitched["target_domain"] != "general")]
    # a parameter set without a medical text encoder has no Gen→Med pair: compare every ordered pair
    rows = rows if len(rows) else stitched
    return rows.sort_values(["source", "target", "run"])["auroc"].to_numpy()


check.effect(linear_prediction, gen_med_aurocs(results[results["task"] == text_task], table_method),
             gen_med_aurocs(linear_res, "linear"), change=f"linear instead of {table_method}");

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```
