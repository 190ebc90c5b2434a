"""The course edition: exercise checks, solution stripping, the student build (semalign.course)."""

from __future__ import annotations

import ast
import builtins
import os
import re
import shutil
import stat
import tomllib
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from semalign import book, course
from semalign.course import ExerciseError, PromptBench, SolutionMarkupError, check

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ("01_semantic_alignment", "02_transforms", "03_general_to_medical", "04_zeroshot")


# --------------------------------------------------------------------------- check.procrustes
def procrustes(x, y):
    u, _, vt = np.linalg.svd(x.T @ y, full_matrices=False)
    return u @ vt


def test_procrustes_check_accepts_the_closed_form_also_with_fewer_anchors_than_dimensions(capsys):
    rng = np.random.default_rng(3)
    # 30 anchors < 40 dimensions: the SVD's null space is arbitrary, the anchors' image is not
    x = (rng.normal(size=(30, 40)) * 3 + 1).astype(np.float32)
    y = rng.normal(size=(30, 24)).astype(np.float32)
    check.procrustes(procrustes, anchors=(x, y))
    assert "equals Translator('ortho')" in capsys.readouterr().out


def _full_svd(x, y):
    u, _, vt = np.linalg.svd(x.T @ y)
    return u @ vt


def _stub(x, y):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize("fn, message", [
    (lambda x, y: procrustes(x, y).T, "transpose"),
    (lambda x, y: np.linalg.lstsq(x, y, rcond=None)[0], "not orthogonal|differs from Translator"),
    (lambda x, y: (lambda u, s, vt: u @ np.diag(s) @ vt)(*np.linalg.svd(x.T @ y, full_matrices=False)),
     "not orthogonal"),
    (_full_svd, "thin SVD"),
    (lambda x, y: None, "forget the `return`"),
    (_stub, "NotImplementedError"),
    ("procrustes", "expected a function"),
])
def test_procrustes_check_names_the_mistake(fn, message):
    with pytest.raises(ExerciseError, match=message):
        check.procrustes(fn)


def test_exercise_errors_are_assertions_and_semalign_errors():
    from semalign.errors import SemalignError

    assert issubclass(ExerciseError, AssertionError) and issubclass(ExerciseError, SemalignError)


# --------------------------------------------------------------------------- check.top1
def top1(y_hat, y_true):
    a = y_hat / np.linalg.norm(y_hat, axis=1, keepdims=True)
    b = y_true / np.linalg.norm(y_true, axis=1, keepdims=True)
    return float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(a))))


def test_top1_check_accepts_cosine_retrieval(capsys):
    check.top1(top1)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (lambda a, b: float(np.mean(((a[:, None] - b[None]) ** 2).sum(-1).argmin(1) == np.arange(len(a)))), "cosine"),
    (lambda a, b: 100 * top1(a, b), "percentage"),
    (lambda a, b: 1.0, "row i itself"),
    (lambda a, b: "high", "return a number"),
])
def test_top1_check_names_the_mistake(fn, message):
    with pytest.raises(ExerciseError, match=message):
        check.top1(fn)


# --------------------------------------------------------------------------- predictions
def test_effect_compares_kindly_and_only_refuses_malformed_input(capsys):
    assert check.effect("lower", [0.8, 0.7], [0.6, 0.65], change="x") is True
    assert check.effect("higher", [0.8, 0.7], [0.6, 0.65], change="x", hint="look at the offsets") is False
    out = capsys.readouterr().out
    assert "Not what you predicted" in out and "look at the offsets" in out
    assert check.effect("same", 0.800, 0.805, change="x") is True           # within the 0.01 band
    assert check.effect("Same ", 0.8, 0.9, change="x") is False             # case and spaces do not matter
    for bad, message in ((None, "prediction first"), ("worse", "use one of")):
        with pytest.raises(ExerciseError, match=message):
            check.effect(bad, [0.8], [0.7], change="x")
    with pytest.raises(ExerciseError, match="pair them"):
        check.effect("lower", [0.8, 0.7], [0.7], change="x")
    with pytest.raises(ExerciseError, match="number"):
        check.effect("lower", [0.8, float("nan")], [0.7, 0.6], change="x")


def test_ordering_counts_pairs_in_the_measured_order(capsys):
    measured = {"a": 0.70, "b": 0.80, "c": 0.50}
    assert check.ordering(["b", "a", "c"], measured) == 1.0
    assert check.ordering(["a", "b", "c"], measured) == pytest.approx(2 / 3)
    assert "b beat a by 0.100" in capsys.readouterr().out
    assert check.ordering(["c", "a", "b"], measured) == 0.0
    for ranking, message in (([], "ranking first"), (["a", "b"], "missing"), (["a", "b", "c", "d"], "not measured"),
                             (["a", "a", "b", "c"], "twice")):
        with pytest.raises(ExerciseError, match=message):
            check.ordering(ranking, measured)


# --------------------------------------------------------------------------- check.table1_cell
def _stitch_frame() -> pd.DataFrame:
    """A tiny tidy stitching frame: two general and two medical text encoders, self-pairs included."""
    rng = np.random.default_rng(0)
    dom = {"g1": "general", "g2": "general", "m1": "medical", "m2": "medical (stand-in)"}
    rows = []
    for run in range(2):
        for s in dom:
            for t in dom:
                for method in ("ortho", "naive"):
                    rows.append(dict(task="t", source=s, target=t, source_domain=dom[s], target_domain=dom[t],
                                     method=method, n_anchors=100, run=run, auroc=float(rng.uniform(0.5, 0.9))))
            rows.append(dict(task="t", source=s, target=s, source_domain=dom[s], target_domain=dom[s],
                             method="upper_bound", n_anchors=0, run=run, auroc=float(rng.uniform(0.7, 0.95))))
    return pd.DataFrame(rows).assign(modality="text")


def test_table1_cell_check_accepts_the_hand_computation_and_names_mistakes(capsys):
    res = _stitch_frame()
    gen_src, med_tgt = res["source_domain"] == "general", res["target_domain"] != "general"
    ortho = res[(res["method"] == "ortho") & gen_src & med_tgt]
    mean = ortho["auroc"].mean()                                  # no self-pairs across domains
    sub = res[(res["method"] == "upper_bound") & gen_src]["auroc"].mean()
    tub = res[(res["method"] == "upper_bound") & ~gen_src]["auroc"].mean()
    check.table1_cell(mean, 100 * (mean - sub) / sub, res, modality="text", pair="Gen→Med")
    assert "✓" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match="percent"):
        check.table1_cell(mean, (mean - sub) / sub, res, modality="text", pair="Gen→Med")
    with pytest.raises(ExerciseError, match="SOURCE"):
        check.table1_cell(mean, 100 * (mean - tub) / tub, res, modality="text", pair="Gen→Med")
    # Gen→Gen has self-pairs (g1→g1): keeping them is the classic slip
    gg = res[(res["method"] == "ortho") & gen_src & ~med_tgt]
    with pytest.raises(ExerciseError, match="stitched to itself"):
        check.table1_cell(gg["auroc"].mean(), 0.0, res, modality="text", pair="Gen→Gen")
    every = res[gen_src & med_tgt & (res["method"] != "upper_bound")]
    with pytest.raises(ExerciseError, match="every method"):
        check.table1_cell(every["auroc"].mean(), 0.0, res, modality="text", pair="Gen→Med")
    with pytest.raises(ExerciseError, match="both numbers"):
        check.table1_cell(None, None, res)


# --------------------------------------------------------------------------- check.prompts and the bench
POS = [f"finding sentence number {i}" for i in range(10)]
NEG = [f"normal sentence number {i}" for i in range(10)]


@pytest.mark.parametrize("pos, neg, message", [
    (None, NEG, "prompts first"),
    ("one string", NEG, "not one string"),
    (POS[:9], NEG, "exactly 10"),
    (POS[:9] + [" "], NEG, "empty"),
    (POS[:9] + ["Finding  sentence number 0"], NEG, "same sentence"),
    (POS, NEG[:9] + [POS[3]], "both a positive and a negative"),
])
def test_prompts_check_validates_the_format(pos, neg, message):
    with pytest.raises(ExerciseError, match=message):
        check.prompts(pos, neg)


def test_prompts_check_passes_good_prompts_and_scores_them_on_a_planted_bench(capsys):
    assert check.prompts(POS, NEG) is None
    rng = np.random.default_rng(0)
    d = 16
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    anchors = rng.normal(size=(300, d))
    y = np.repeat([0, 1], 40)
    test = rng.normal(size=(80, d)) + 4.0 * y[:, None] * np.eye(d)[0]   # the finding: along image axis 0
    e0 = np.eye(d)[0] @ q                                                # ... which is text axis e0 @ q

    def embed(prompts):                    # positive prompts point along the finding, negative ones away
        sign = np.array([1.0 if p.startswith("finding") else -1.0 for p in prompts])[:, None]
        return sign * e0 + 0.1 * np.random.default_rng(len(prompts)).normal(size=(len(prompts), d))

    bench = PromptBench(finding="planted", y=y, test_images={"planted": test, "noise": rng.normal(size=(80, d))},
                        anchor_images={"planted": anchors, "noise": anchors}, anchor_text=anchors @ q, embed=embed)
    scores = check.prompts(POS, NEG, bench).set_index("vision_encoder")
    assert scores.loc["planted", "auroc"] > 0.95 and bool(scores.loc["planted", "above_chance"])
    assert scores.loc["planted", "chance_level"] == pytest.approx(0.5 + 2 * np.sqrt(81 / (12 * 40 * 40)))
    assert list(scores["n_pos"]) == [40, 40]


def test_prompt_bench_refuses_pairs_it_cannot_label():
    assert PromptBench.supports("synthcxr-pairs") and not PromptBench.supports("mimic-cxr-pairs")
    with pytest.raises(ExerciseError, match="offline profile"):
        PromptBench.from_chapter(None, "atelectasis", pairs="mimic-cxr-pairs", n_pairs=10)


def test_the_chapter_finding_is_new_to_fig4_and_drawn_by_synthcxr():
    from semalign.data import synthcxr
    from semalign.vocab import ZEROSHOT_FINDINGS

    assert "atelectasis" in synthcxr.FINDINGS
    assert "atelectasis" not in {f.synthcxr for f in ZEROSHOT_FINDINGS}
    assert "atelectasis" in (ROOT / "notebooks" / "04_zeroshot.py").read_text()


# --------------------------------------------------------------------------- stripping solutions
def _nb(*cells) -> nbformat.NotebookNode:
    """Cells as (kind, source, tags)."""
    nb = nbformat.v4.new_notebook()
    for kind, source, tags in cells:
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        nb.cells.append(make(source, metadata={"tags": list(tags)} if tags else {}))
    return nb


EXERCISE = ("md", "```{exercise} A title\n:label: ex-a\n\nDo it. EXERCISE-TEXT\n```", ())
START = ("md", "```{solution-start} ex-a\n:class: dropdown\n```\nSOLUTION-PROSE", ("solution",))
END = ("md", "```{solution-end}\n```", ("solution",))


def test_strip_removes_tagged_cells_and_everything_between_start_and_end():
    nb = _nb(("md", "# Title", ()), EXERCISE, ("code", "def f():\n    raise NotImplementedError", ()),
             START, ("code", "SOLUTION_CODE = 1", ("solution",)), ("code", "untagged_but_inside = 2", ()), END,
             ("code", "lonely_tagged = 3", ("solution",)), ("md", "After.", ()))
    student, removed = course.strip_solutions(nb)
    kept = [c.source for c in student.cells]
    assert kept == ["# Title", EXERCISE[1], "def f():\n    raise NotImplementedError", "After."]
    assert len(removed) == 5 and len(nb.cells) == 9, "the input notebook is not modified"
    assert not any(course.solution_directives(c) for c in student.cells)
    problems = course.lint_solutions(nb)
    assert len(problems) == 1 and "cell 5" in problems[0] and "not tagged" in problems[0]


def test_strip_recognises_every_fence_and_ignores_inline_mentions():
    nb = _nb(("md", "Use the `{solution}` directive, or ```{solution}``` inline.", ()),
             ("md", ":::{solution-start} ex-a\n:::", ("solution",)), ("code", "x = 1", ("solution",)),
             ("md", "~~~{solution-end}\n~~~", ("solution",)), ("md", "````{solution} ex-b\nold style\n````", ()))
    student, removed = course.strip_solutions(nb)
    assert [c.source for c in student.cells] == [nb.cells[0].source]
    assert len(removed) == 4


@pytest.mark.parametrize("cells, message", [
    ((EXERCISE, START, ("code", "x = 1", ("solution",))), "never closed"),
    ((EXERCISE, END), "without a solution-start"),
    ((EXERCISE, START, START, END), "not closed"),
])
def test_strip_refuses_markup_it_cannot_delimit(cells, message):
    with pytest.raises(SolutionMarkupError, match=message):
        course.strip_solutions(_nb(*cells), where="my.ipynb")


def test_lint_pairs_exercises_with_solutions():
    assert course.lint_solutions(_nb(EXERCISE, START, END)) == []
    assert "has no solution" in course.lint_solutions(_nb(EXERCISE))[0]
    orphan = ("md", "```{solution-start} ex-zzz\n:class: dropdown\n```", ("solution",))
    assert any("ex-zzz" in p for p in course.lint_solutions(_nb(EXERCISE, START, END, orphan, END)))


# --------------------------------------------------------------------------- the chapters' exercises
def _chapter(stem: str):
    import jupytext

    return jupytext.read(ROOT / "notebooks" / f"{stem}.py")


def _defined(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def _loaded(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.mark.parametrize("stem", CHAPTERS)
def test_each_chapter_ends_with_two_or_three_exercises_each_with_a_hidden_solution(stem):
    nb = _chapter(stem)
    assert course.lint_solutions(nb, stem) == []
    labels = re.findall(r":label: (ex-\S+)", "\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    assert 2 <= len(labels) <= 3, labels
    assert all(lab.startswith(f"ex-{stem[:2]}-") for lab in labels), "labels are unique across the book"
    starts = [c.source for c in nb.cells if "{solution-start}" in c.source]
    assert len(starts) == len(labels) and all(":class: dropdown" in s for s in starts), "hidden by default"
    heading = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    assert all(not course.solution_directives(c) for c in nb.cells[:heading]), "exercises come last"
    student, removed = course.strip_solutions(nb, stem)
    assert removed and all(c.cell_type == "code" or "solution" in c.source for c in removed)
    for c in student.cells[heading:]:
        if c.cell_type != "code":
            continue
        calls = [ln for ln in c.source.splitlines() if re.match(r"\s*check\.\w+\(", ln)]
        assert not calls, f"{stem}: a student cell calls a check (papermill fails the book on its error): {calls}"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_the_student_notebook_needs_no_name_only_a_solution_defines(stem):
    """Run top to bottom without its solutions, the notebook must not hit a NameError."""
    nb = _chapter(stem)
    flags = [c in course.strip_solutions(nb, stem)[1] for c in nb.cells]
    solution_names, kept_names = set(), set(dir(builtins))
    for cell, is_solution in zip(nb.cells, flags):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        if is_solution:
            solution_names |= _defined(tree)
            continue
        missing = (_loaded(tree) & solution_names) - kept_names - _defined(tree)
        assert not missing, f"{stem}: a student cell uses {sorted(missing)}, defined only in a solution"
        kept_names |= _defined(tree)


def test_exercise_labels_are_unique_across_the_book():
    labels = [lab for stem in CHAPTERS for lab in re.findall(r":label: (\S+)", (ROOT / "notebooks" / f"{stem}.py").read_text())]
    assert len(labels) == len(set(labels)) >= 2 * len(CHAPTERS)


# --------------------------------------------------------------------------- configuration
def test_book_config_loads_sphinx_exercise_and_launches_jupyterlab():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    ext = cfg["sphinx"]["config"]["extensions"]
    assert "sphinx_exercise" in ext and "sphinx_togglebutton" in ext, "exercises, and dropdowns for solutions"
    assert cfg["launch_buttons"]["notebook_interface"] == "jupyterlab"
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["book"]
    assert any(re.match(r"sphinx-exercise\b", d) for d in extra), "the book extra installs sphinx-exercise"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert any(isinstance(d, str) and d.startswith("jupyterlab") for d in env["dependencies"])


def test_binder_opens_python_sources_as_notebooks():
    post = ROOT / "postBuild"
    assert post.stat().st_mode & stat.S_IXUSR, "repo2docker runs postBuild only if it is executable"
    assert re.search(r"^jupytext-config set-default-viewer python$", post.read_text(), re.M)
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists(), (
        "a binder/ folder would make repo2docker ignore the root environment.yml and postBuild")


def test_student_config_drops_launch_buttons_and_hides_solutions():
    cfg = course.student_config(yaml.safe_load((ROOT / "_config.yml").read_text()))
    assert not any(cfg["launch_buttons"].get(k) for k in ("binderhub_url", "jupyterhub_url", "colab_url"))
    assert cfg["sphinx"]["config"]["hide_solutions"] is True and "student edition" in cfg["title"]
    assert "sphinx_exercise" in cfg["sphinx"]["config"]["extensions"]


def test_cli_book_takes_student():
    from semalign.cli import build_parser

    args = build_parser().parse_args(["book", "--student"])
    assert args.student is True
    assert build_parser().parse_args(["book"]).student is False


def test_find_leaks_reads_highlighted_code_and_notebooks(tmp_path):
    site = tmp_path / "html"
    (site / "_sources").mkdir(parents=True)
    (site / "page.html").write_text('<pre><span class="n">secret_value</span> <span class="o">=</span> '
                                    '<span class="mi">424242</span>&amp;more</pre>')
    nb = _nb(("code", "another_secret_line = 7", ()))
    nbformat.write(nb, site / "_sources" / "page.ipynb")
    frags = ["secret_value = 424242&more", "another_secret_line = 7", "never anywhere at all"]
    leaks = course.find_leaks(site, frags)
    assert len(leaks) == 2 and any("page.html" in x for x in leaks) and any("page.ipynb" in x for x in leaks)
    (site / "x.html").write_text('<div class="solution dropdown admonition">')
    assert any("rendered solution" in x for x in course.find_leaks(site, []))


def test_student_build_needs_the_executed_notebooks(tmp_path):
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/generated/07_x\n")
    with pytest.raises(book.BookError, match="semalign book"):
        course.build_student(tmp_path)


# --------------------------------------------------------------------------- the student build (slow)
NOTEBOOK = '''# %% [markdown]
# # Course notebook
#
# ## Exercises
#
# ```{exercise} Double it
# :label: ex-07-double
#
# Write `double(x)`. EXERCISE-TEXT-CANARY
# ```

# %% tags=["parameters"]
profile = "none"

# %%
def double(x):
    raise NotImplementedError("your code here")

# %% [markdown] tags=["solution"]
# ```{solution-start} ex-07-double
# :class: dropdown
# ```
#
# SOLUTION-PROSE-CANARY: multiply by two.

# %% tags=["solution"]
def double(x):
    return 2 * x  # SOLUTION-CODE-CANARY


print("SOLUTION-OUTPUT-CANARY", double(212121))

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% [markdown]
# After the exercise: AFTER-TEXT-CANARY.
'''
CANARIES = ("SOLUTION-PROSE-CANARY", "SOLUTION-CODE-CANARY", "SOLUTION-OUTPUT-CANARY", "424242")


def _small_book(tmp_path) -> Path:
    root = tmp_path / "book-root"
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "07_course.py").write_text(NOTEBOOK)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "book" / "_static").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "_static" / "semalign.css", root / "book" / "_static")
    shutil.copy(ROOT / "book" / "references.bib", root / "book")
    (root / "book" / "intro.md").write_text("# Intro\n\nSmall book.\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/generated/07_course\n")
    book.run_notebook(root / "notebooks" / "07_course.py", {"name": "m", "common": {}, "notebooks": {}}, None,
                      root / "book" / "generated")
    return root


def _all_text(site: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in site.rglob("*") if p.is_file()
                     and p.suffix in (".html", ".ipynb", ".js", ".txt", ".json"))


@pytest.mark.slow
def test_student_edition_has_the_exercise_and_no_solution_text(tmp_path):
    root = _small_book(tmp_path)
    book.build_book(root)
    page = (root / "_build" / "html" / "book" / "generated" / "07_course.html").read_text()
    assert 'class="solution dropdown admonition"' in page, "the solution is a dropdown, hidden by default"
    dropdown = page[page.index('class="solution dropdown admonition"'):]
    assert "SOLUTION-CODE-CANARY" in dropdown and "SOLUTION-OUTPUT-CANARY 424242" in dropdown, (
        "the solution's code cell and its output sit inside the dropdown")

    index = course.build_student(root)
    site = root / "_build" / "student" / "html"
    assert index == site / "index.html" and index.is_file()
    everything = _all_text(site)
    for canary in CANARIES:
        assert canary not in everything, f"{canary} shipped in the student edition"
    student_page = (site / "book" / "generated" / "07_course.html").read_text()
    assert "EXERCISE-TEXT-CANARY" in student_page and "AFTER-TEXT-CANARY" in student_page
    assert "student edition" in student_page and "mybinder.org" not in student_page
    assert 'class="solution' not in everything
    # the normal build stays as it was, solutions included
    assert "SOLUTION-CODE-CANARY" in (root / "_build" / "html" / "book" / "generated" / "07_course.html").read_text()
    assert not [p for p in (root / "_build" / "student").iterdir() if p.name.startswith(".src-")], "no staging left"


@pytest.mark.slow
def test_a_leak_stops_the_student_edition_before_it_is_published(tmp_path, monkeypatch):
    root = _small_book(tmp_path)
    real = course.strip_solutions

    def leaky(nb, where="notebook"):           # reports the solutions removed but keeps their code cell
        student, removed = real(nb, where)
        student.cells += [c for c in removed if c.cell_type == "code"]
        return student, removed

    monkeypatch.setattr(course, "strip_solutions", leaky)
    with pytest.raises(book.BookError, match="SOLUTION-CODE-CANARY|SOLUTION-OUTPUT-CANARY"):
        course.build_student(root)
    assert not (root / "_build" / "student" / "html").exists(), "nothing is published"


@pytest.mark.slow
def test_student_edition_of_the_real_book(tmp_path):
    """After `semalign book` (CI runs it first): the whole book's student edition, audited."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    missing = [f for f in course._toc_files(toc) if f.startswith("book/generated/") and not (ROOT / f"{f}.ipynb").is_file()]
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the book is not built ({missing[0]}.ipynb missing): .ci/run runs `semalign book` first")
        pytest.skip("run `semalign book` first")
    index = course.build_student(ROOT, out=tmp_path / "student")
    site = index.parent
    for stem in CHAPTERS:
        page = (site / "book" / "generated" / f"{stem}.html").read_text()
        assert "Exercise" in page and 'class="solution' not in page
        # every solution code line of the source is gone from the built page
        nb = nbformat.read(ROOT / "book" / "generated" / f"{stem}.ipynb", as_version=4)
        _, removed = course.strip_solutions(nb, stem)
        assert removed, f"{stem}: the executed notebook has no solutions (is it older than its source?)"
