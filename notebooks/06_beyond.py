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
# # Beyond the paper: which anchors, how many, and when stitching works
#
# **Paper: Sec. 3.1, 4.1 and 4.2, and beyond them.** Anchors are paired data: two encoders run on
# the same samples, or credentialed image–report pairs — the costly part of the method. The paper
# draws them at random and shows one curve. This chapter asks what a user of the method asks next,
# on the same tasks, encoders and embeddings as the previous chapters:
#
# 1. **Which anchors, and how many?** Random anchors against label-free *coverage* strategies
#    chosen in the source space (the samples nearest to k-means centroids; farthest-point
#    sampling) and a class-stratified draw, for general → medical pairs.
# 2. **Why does a pair stitch?** How alike two encoders' spaces are on the same samples (linear
#    CKA; mutual k-nearest neighbours, as in the Platonic-representation work) against how well
#    the pair stitches.
# 3. **Is fitting needed at all?** ASIF (Norelli et al. 2023), a training-free zero-shot
#    classifier built from the same unimodal encoders and image–text pairs, beside the paper's
#    method on the Fig. 4 tasks.
# 4. **Why does `linear` dip?** Least squares interpolates its anchors when their number *N*
#    reaches the source dimension *d* (*N* − 1 = *d* once centred), and its test error peaks there
#    (double descent); `ortho` cannot interpolate, and a ridge penalty chosen on the anchors
#    (`ridge`) should not dip.
#
# Every number in the prose below comes from this chapter's results file.

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
vision_task = "synthcxr-pneumonia"
vision_encoders = ["efficientnet-lite0", "mobilenet-v2", "standin-vision-ssl"]
vision_tasks = ["synthcxr-pneumonia", "synthcxr-vindr-aortic-enlargement", "synthcxr-vindr-cardiomegaly",
                "synthcxr-vindr-lung-opacity", "synthcxr-vindr-pleural-thickening",
                "synthcxr-vindr-pulmonary-fibrosis", "synthcxr-vindr-tuberculosis"]
text_encoder = "minilm-l6"
pairs = "synthcxr-pairs"
n_pairs = 600
pair_pool = 800
n_prompts = 10
method = "ortho"
strategies = ["random", "kmeans", "farthest", "stratified"]
selection_counts = [10, 25, 50, 100, 250, 500]
selection_sources = 1
selection_method = "ortho"
fraction = 0.95
similarity_method = "ortho"
similarity_anchors = 250
knn_k = 10
dip_methods = ["linear", "ortho", "ridge"]
dip_ratios = [0.5, 0.75, 1.0, 1.25, 2.0]
dip_runs = 1
asif_k = None
asif_p = None

# %%
from IPython.display import Markdown
from myst_nb import glue

from semalign import anchors, book
from semalign.align import Translator
from semalign.report import beyond, style
from semalign.stitching import auroc, decision_scores, fit_decoder

style.setup()
results, embedded = beyond.compute(
    text_task=text_task, text_encoders=text_encoders, vision_task=vision_task, vision_encoders=vision_encoders,
    vision_tasks=vision_tasks, text_encoder=text_encoder, pairs=pairs, n_pairs=n_pairs, pair_pool=pair_pool,
    n_prompts=n_prompts, strategies=strategies, selection_counts=selection_counts, selection_method=selection_method,
    selection_sources=selection_sources, similarity_method=similarity_method, similarity_anchors=similarity_anchors,
    knn_k=knn_k, dip_methods=dip_methods, dip_ratios=dip_ratios, dip_runs=dip_runs, zeroshot_method=method,
    asif_k=asif_k, asif_p=asif_p, runs=runs, seed=seed, device=device, batch_size=batch_size,
    anchor_pool=anchor_pool, task_params=task_params,
)
results.insert(0, "profile", profile)
book.write_results(results)
style.glue_numbers("beyond", beyond.numbers(results, fraction))
text, vision = embedded["text"], embedded["vision"]
Markdown(style.describe_encoders({**text.domains, **vision.domains})
         + f"\n\nAnchor pools: {text.pool_size} ({text_task}), {vision.pool_size} ({vision_task}); "
         f"zero-shot: {n_pairs} of {pair_pool} pairs of `{pairs}` with `{text_encoder}`. {runs} runs "
         f"({dip_runs} for part 4), seed {seed}, profile `{profile}`.")

# %% [markdown]
# ## The method in one cell
# One point of part 1, by hand: the first general → medical text pair, its anchors chosen by
# k-means **in the source space** (the pool samples nearest to the centroids), the transform
# fitted on those anchors, and the target's own decoder scoring the translated test reports.
# The grid below does this for every strategy, anchor count, pair and run.

# %%
src_name, tgt_name = beyond.selection_pairs(text, selection_sources)[0]
src, tgt = text.encoders[src_name], text.encoders[tgt_name]
counts = sorted(c for c in selection_counts if c <= text.pool_size)
n = counts[len(counts) // 2]                                              # a middle count
a = anchors.kmeans(src.anchors, n, seed=seed, run=0)                    # run 0's k-means anchors
t = Translator(selection_method, seed=seed).fit(src.anchors[a], tgt.anchors[a])
decoder = fit_decoder(tgt.train, text.y_train)                          # the target's own classifier
one = auroc(text.y_test, decision_scores(decoder, t.transform(src.test)), list(decoder.classes_))
grid_cell = results.query("part == 'selection' and strategy == 'kmeans' and source == @src_name and "
                          "target == @tgt_name and n_anchors == @n and run == 0")["value"]
glue("beyond_one_auroc", one, display=False)
glue("beyond_one_grid", float(grid_cell.iloc[0]), display=False)
glue("beyond_one", f"{src_name} → {tgt_name}, {n} k-means anchors", display=False)
one

# %% [markdown]
# {glue:text}`beyond_one`: AUROC {glue:text}`beyond_one_auroc:.3f` (the grid's point for this
# pair, count and run: {glue:text}`beyond_one_grid:.3f`).
#
# ## 1. Which anchors, and how many
# Each strategy chooses the anchors of a source encoder in that encoder's own space, once per
# run and anchor count, and every target of that source is fitted on the same samples (choosing
# in the target space would be a different question: it needs the target's embeddings of the
# whole pool first). `random` is the paper's draw; `kmeans` takes the pool sample nearest to each
# of *N* centroids; `farthest` adds, one at a time, the sample farthest from those already taken;
# `stratified` draws at random within classes, in the pool's class proportions — only possible
# when every pool sample has a label. Transform: `selection_method`; pairs: the first
# `selection_sources` general encoder(s) to every medical one (the CPU budget: k-means runs once
# per source, run and count).
#
# With {glue:text}`beyond_sel_text_n_min` anchors the best text strategy is
# **{glue:text}`beyond_sel_text_best_small`**; the dotted line is {glue:text}`beyond_sel_text_target:.3f`,
# the chosen fraction of the mean upper bound ({glue:text}`beyond_sel_text_upper_bound:.3f`).
# Strategies not applicable to the text pool: {glue:text}`beyond_sel_text_na`. Click a legend entry
# to highlight a strategy; the bands are ± one standard deviation over runs.

# %%
beyond.selection_chart(results, fraction=fraction,
                       title=f"AUROC against the number of anchors, by anchor strategy (`{selection_method}`, profile {profile})")

# %%
Markdown(beyond.selection_reading(results, fraction))

# %% [markdown]
# ## 2. Why a pair stitches
# For every ordered pair of encoders of a modality: linear CKA and mutual *k*-NN alignment
# (*k* = `knn_k`) of the two spaces on the distinct samples of the anchor pool (a repeated report
# counts once), against the pair's stitched AUROC with `similarity_method` at
# {glue:text}`beyond_sim_n_anchors` anchors (mean over runs). Over all
# {glue:text}`beyond_sim_all_pairs` ordered pairs the Spearman correlation with the stitched AUROC
# is {glue:text}`beyond_sim_all_cka_auroc:+.2f` for CKA and {glue:text}`beyond_sim_all_knn_auroc:+.2f` for
# mutual *k*-NN. Hover a point for the pair; click a legend entry to keep one modality.

# %%
beyond.similarity_chart(results, title=f"Stitched AUROC against the similarity of the two spaces (profile {profile})")

# %%
Markdown(beyond.similarity_reading(results))

# %% [markdown]
# ## 3. A training-free baseline: ASIF
# ASIF represents an image by its cosine similarities to the anchor *images* and a prompt by its
# similarities to the anchor *reports*, keeps the largest (top-*k*), raises them to a power *p* and
# compares the two vectors: anchor *i* is one image–report pair, so the coordinates match. It
# fits nothing. Here it uses the Fig. 4 set-up exactly — the same vision encoders, text encoder,
# {glue:text}`beyond_asif_tasks` tasks, prompts and, run by run, the same anchor pairs as the
# paper's method (`method`). Its mean AUROC is {glue:text}`beyond_asif_asif_mean:.3f` against
# {glue:text}`beyond_asif_paper_mean:.3f`, higher in {glue:text}`beyond_asif_asif_wins` of
# {glue:text}`beyond_asif_cells` (task, encoder) cells.

# %%
beyond.asif_chart(results, title=f"Zero-shot AUROC: the paper's method beside ASIF (profile {profile}); dashed: chance")

# %%
Markdown(beyond.asif_reading(results))

# %% [markdown]
# ## 4. The least-squares dip
# Each encoder is the source, to every other encoder of its modality, at anchor counts placed
# around its own dimension: (*N* − 1) / *d* in `dip_ratios`. `linear` is minimum-norm least
# squares: below *d* it interpolates the anchors, at *N* − 1 = *d* the fit is exact but its
# weakest directions are amplified without bound, and beyond it the error falls again. `ridge`
# is the same map with a penalty chosen by 5-fold cross-validation *on the anchors* (folds keep a
# repeated report together: leave-one-out is fooled by such twins and chooses no penalty); it is
# registered as a method, so Fig. 3 shows it with `-p methods "[affine, linear, l-ortho, ortho, ridge]"`.
# How far a curve falls below the lower of its two ends — 0 for no dip — is
# {glue:text}`beyond_dip_linear_depth:.3f` for `linear`, {glue:text}`beyond_dip_ortho_depth:.3f` for
# `ortho` and {glue:text}`beyond_dip_ridge_depth:.3f` for `ridge`. Sources whose anchor pool is
# smaller than *d* + 1 cannot show it: {glue:text}`beyond_dip_skipped`.

# %%
beyond.dip_chart(results, title=f"AUROC against (N − 1) / d of the source (profile {profile}); dashed: N − 1 = d")

# %%
Markdown(beyond.dip_reading(results))
