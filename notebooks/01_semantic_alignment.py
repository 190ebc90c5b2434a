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
# # Semantic alignment: what the transforms do
#
# **Paper: Sec. 3.1 and Fig. 1.** Two encoders see the same *anchors*; a transform
# 𝒯, at most affine, is estimated on them so that 𝒯(source embedding) lands on the target
# embedding of the same sample. Here we fit each of the paper's transforms (`naive`,
# `affine`, `linear`, `l-ortho`, `ortho`) between two text encoders of the active profile (the
# `source` and `target` parameters; the line below says which is general and which a stand-in)
# on radiology-report anchors, and map held-out reports (never seen while fitting) into the
# target space.

# %% tags=["parameters"]
profile = "offline"
device = "cpu"
batch_size = 64
seed = 0
task_params = {"synthcxr-*": {"n_train_per_class": 100, "n_test_per_class": 100, "n_pool": 200}}
text_task = "openi-5class"
source = "minilm-l6"
target = "standin-text-minilm-openi"
n_anchors = 300
anchor_pool = 1200
n_show = 120
methods = ["affine", "linear", "l-ortho", "ortho"]

# %%
from IPython.display import Markdown
from myst_nb import glue

from semalign import book
from semalign.align import Translator
from semalign.encoders.tasks import encode_task
from semalign.report import fig1, style

style.setup()
task = encode_task(text_task, [source, target], device=device, batch_size=batch_size, anchor_pool=anchor_pool,
                   seed=seed, task_params=task_params)
held = fig1.held_out(task, source, target, n_anchors=n_anchors, n_show=n_show, seed=seed)
Markdown(f"Source **{source}** ({task.domains[source]}, {held.x_test.shape[1]}-d) → "
         f"target **{target}** ({task.domains[target]}, {held.y_test.shape[1]}-d); "
         f"{len(held.x_anchors)} anchors, {len(held.ids)} held-out test reports of task `{text_task}`, "
         f"profile `{profile}`.")

# %% [markdown]
# ## The method in one cell
# `x_anchors` and `y_anchors` are the same anchor reports embedded by the source and by the
# target encoder. `ortho` (Procrustes, after standard scaling with the anchors' statistics) is
# fitted on them and maps the source embeddings of the held-out reports into the target space.

# %%
t = Translator("ortho", seed=seed).fit(held.x_anchors, held.y_anchors)
y_hat = t.transform(held.x_test)                      # (n_show, d_target): source reports, in target space
glue("fig1_ortho_cosine", float(fig1.cosine(y_hat, held.y_test).mean()), display=False)
y_hat.shape

# %% [markdown]
# Each translated report lies at a mean cosine similarity of
# {glue:text}`fig1_ortho_cosine:.2f` from the target encoder's own embedding of the same report.
# The figure does this for every transform.

# %%
points, scores = fig1.compute(
    held.x_anchors, held.y_anchors, held.x_test, held.y_test, ["naive", *methods], ids=held.ids,
    labels=held.labels, seed=seed, aggregate=not fig1.publishes_samples(text_task),  # credentialed: bin counts only
)
scores.insert(0, "target", target)
scores.insert(0, "source", source)
scores.insert(0, "profile", profile)
book.write_results(scores)
style.glue_numbers("fig1", fig1.numbers(scores))
fig1.chart(points, title=f"{source} → {target}: held-out reports, target PCA frame (ours, profile {profile})")

# %% [markdown]
# Each panel shows the same held-out reports: the target encoder's own embeddings (green
# circles), the source embeddings mapped by the transform (red triangles) in the target's
# principal-component frame, and the source embeddings in their own frame (purple squares;
# a different space, shown for its shape only). For a credentialed dataset (MIMIC-CXR) no
# report is drawn: each mark is a cell of a 10 × 10 grid sized by how many reports fall in it,
# and cells with fewer than 5 are left out.
#
# **Reading.** Without a transform (`naive`, padding/cutting only) the source embeddings land
# far from their targets (mean cosine {glue:text}`fig1_naive_cosine:.2f`); the fitted transforms
# bring them to a mean cosine of {glue:text}`fig1_min_cosine:.2f`–{glue:text}`fig1_best_cosine:.2f`,
# the best being **{glue:text}`fig1_best`**, on reports that were not anchors. This is the premise of
# Sec. 3.1: a simple transform estimated on anchors translates one latent space into another.

# %%
scores.round(3)


# %% [markdown]
# ## Exercises
#
# Each exercise has a solution, hidden until you open it (the student edition of the book,
# `semalign book --student`, has none). The checks of `semalign.course` run in a second on the
# arrays above and say what is wrong, and how to look for the fix, when something is.
#
# ```{exercise} Procrustes in five lines
# :label: ex-01-procrustes
#
# `ortho` is orthogonal Procrustes: the (semi-)orthogonal $R$ of shape $d_1 \times d_2$ that
# minimises $\lVert X R - Y \rVert_F$ for anchors $X$ ($N \times d_1$) and $Y$ ($N \times d_2$).
# Write `procrustes(x, y)` with numpy in at most five lines (hint: the SVD of $X^\top Y$), then
# check it: on planted rotations, against `Translator("ortho", std_scaling=False)` on random
# anchors of different dimensions, and — after the paper's standard scaling — against
# `Translator("ortho")` on this chapter's anchors.
# ```

# %%
import numpy as np

from semalign.course import check


def procrustes(x, y):
    """R (d1, d2), (semi-)orthogonal, minimising ||x @ R - y|| for x (N, d1), y (N, d2)."""
    raise NotImplementedError("your code here")


# check.procrustes(procrustes, anchors=(held.x_anchors, held.y_anchors))   # uncomment to check

# %% [markdown] tags=["solution"]
# ```{solution-start} ex-01-procrustes
# :class: dropdown
# ```
#
# With $U S V^\top$ the SVD of $X^\top Y$, $\operatorname{tr}(R^\top X^\top Y)$ is largest over
# orthogonal $R$ for $R = U V^\top$; the thin SVD makes $R$ rectangular when $d_1 \neq d_2$ (the
# zero padding of Sec. 3.1, never built).

# %% tags=["solution"]
def procrustes(x, y):
    u, _, vt = np.linalg.svd(x.T @ y, full_matrices=False)
    return u @ vt


check.procrustes(procrustes, anchors=(held.x_anchors, held.y_anchors))

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Close is not the same as found
# :label: ex-01-retrieval
#
# A high mean cosine can come from a direction all embeddings share, so that even unrelated
# reports lie close together. A stricter test: is each translated report's *nearest* target
# embedding, among all the held-out ones, its own? Write `top1(y_hat, y_true)`, the fraction of
# rows $i$ of `y_hat` whose most cosine-similar row of `y_true` is row $i$, and check it. Then
# predict, and measure, its value for `naive` and for `ortho` on the held-out reports
# (`held.x_test` translated, against `held.y_test`; chance is one over the number of reports).
# ```

# %%
def top1(y_hat, y_true):
    """Fraction of rows i of y_hat (n, d) whose most cosine-similar row of y_true (n, d) is row i."""
    raise NotImplementedError("your code here")


# check.top1(top1)                                                       # uncomment to check

# %% [markdown] tags=["solution"]
# ```{solution-start} ex-01-retrieval
# :class: dropdown
# ```
#
# Normalise the rows, take all cosine similarities at once, and count the rows whose best
# match is on the diagonal.

# %% tags=["solution"]
def top1(y_hat, y_true):
    a = y_hat / np.linalg.norm(y_hat, axis=1, keepdims=True)
    b = y_true / np.linalg.norm(y_true, axis=1, keepdims=True)
    return float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(a))))


check.top1(top1)
for name in ("naive", "ortho"):
    mapped = Translator(name, seed=seed).fit(held.x_anchors, held.y_anchors).transform(held.x_test)
    print(f"{name:6s} top-1 retrieval {top1(mapped, held.y_test):.2f} (chance {1 / len(held.y_test):.3f})")

# %% [markdown] tags=["solution"]
# Retrieval asks more than closeness: a translated report must be closer to its own target than
# to every other report's, which a shared direction cannot fake.
#
# ```{solution-end}
# ```
