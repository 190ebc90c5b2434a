"""The book pipeline: profiles, parameters, notebook execution, the vega bundle, the build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from semalign import book

ROOT = Path(__file__).resolve().parents[1]

SMOKE = '''# %% [markdown]
# # Smoke notebook

# %% tags=["parameters"]
profile = "none"
n = 3
words = ["a"]

# %%
import pandas as pd
from semalign import book
df = pd.DataFrame({"i": list(range(n)), "profile": profile, "words": "/".join(words)})
book.write_results(df)
print("ran with", profile, n, words)
'''


@pytest.fixture
def smoke(tmp_path) -> Path:
    p = tmp_path / "notebooks" / "07_smoke.py"
    p.parent.mkdir()
    p.write_text(SMOKE)
    return p


# --------------------------------------------------------------------------- profiles
@pytest.mark.parametrize("name", book.PROFILES)
def test_profiles_load_and_name_themselves(name):
    prof = book.load_profile(name)
    assert prof["name"] == name
    assert prof["description"]
    assert set(prof["common"]) >= {"device", "batch_size", "seed", "runs", "methods"}


def test_profile_keys_are_declared_by_the_notebooks():
    """A profile key no notebook declares would be silently ignored: a typo. Catch it."""
    declared = {p.stem: book.declared_parameters(book._to_ipynb(p)) for p in book.list_notebooks(ROOT)}
    assert declared, "no notebooks found"
    every = set().union(*declared.values())
    for name in book.PROFILES:
        prof = book.load_profile(name)
        assert set(prof["common"]) <= every, f"{name}: unused common keys {set(prof['common']) - every}"
        for stem, section in prof["notebooks"].items():
            assert stem in declared, f"{name}: section for a notebook that does not exist: {stem}"
            extra = set(section or {}) - declared[stem]
            assert not extra, f"{name}: {stem} does not declare {extra}"
        assert set(prof["notebooks"]) == set(declared), f"{name}: notebooks without a section"


def test_notebook_parameters_cover_the_brief():
    every = set().union(*(book.declared_parameters(book._to_ipynb(p)) for p in book.list_notebooks(ROOT)))
    for required in ("profile", "device", "batch_size", "seed", "runs", "methods", "anchor_counts",
                     "text_encoders", "vision_encoders", "text_task", "vision_tasks"):
        assert required in every, f"no notebook has a {required!r} parameter"
    for p in book.list_notebooks(ROOT):
        assert "profile" in book.declared_parameters(book._to_ipynb(p)), f"{p.name} lacks 'profile'"


def test_unknown_profile_says_what_exists():
    with pytest.raises(book.BookError, match="offline"):
        book.load_profile("nope")


def test_profile_from_a_yaml_path(tmp_path):
    p = tmp_path / "mine.yml"
    p.write_text("common: {seed: 7}\nnotebooks: {07_smoke: {n: 2}}\n")
    prof = book.load_profile(p)
    assert book.profile_parameters(prof, "07_smoke") == {"profile": "mine", "seed": 7, "n": 2}
    p.write_text("- a list\n")
    with pytest.raises(book.BookError, match="mapping"):
        book.load_profile(p)


def test_overrides_are_yaml():
    got = book.parse_overrides([("runs", "1"), ("methods", "[ortho, linear]"), ("device", "cpu"),
                                ("x", "0.5"), ("flag", "true")])
    assert got == {"runs": 1, "methods": ["ortho", "linear"], "device": "cpu", "x": 0.5, "flag": True}
    with pytest.raises(book.BookError, match="identifier"):
        book.parse_overrides([("not-a-name", "1")])


def test_resolve_notebook_by_stem_and_number():
    nbs = book.list_notebooks(ROOT)
    first = nbs[0]
    assert book.resolve_notebook(first.stem, ROOT) == first
    assert book.resolve_notebook(first.stem[:2], ROOT) == first
    with pytest.raises(book.BookError, match="no notebook"):
        book.resolve_notebook("99_nothing", ROOT)


def test_a_notebook_without_parameters_cell_is_refused(tmp_path):
    p = tmp_path / "08_bad.py"
    p.write_text("# %%\nx = 1\n")
    with pytest.raises(book.BookError, match="parameters"):
        book.run_notebook(p, {"name": "t", "common": {}, "notebooks": {}}, output_dir=tmp_path / "out")


# --------------------------------------------------------------------------- execution (a kernel: slow)
@pytest.mark.slow
def test_run_injects_profile_and_overrides_visibly(smoke, tmp_path):
    prof = {"name": "mine", "common": {"n": 2, "unrelated": 1}, "notebooks": {"07_smoke": {"words": ["x", "y"]}}}
    out = book.run_notebook(smoke, prof, {"n": 4}, tmp_path / "gen")
    assert out == (tmp_path / "gen" / "07_smoke.ipynb").resolve()
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, "papermill's injected-parameters cell must be visible"
    src = injected[0].source
    assert 'profile = "mine"' in src and "n = 4" in src and "words = [\"x\", \"y\"]" in src
    assert "unrelated" not in src, "parameters the notebook does not declare are not injected"
    import pandas as pd

    res = pd.read_csv(tmp_path / "gen" / "results" / "07_smoke.csv")
    assert list(res["i"]) == [0, 1, 2, 3] and set(res["profile"]) == {"mine"} and set(res["words"]) == {"x/y"}
    assert not list((tmp_path / "gen").glob(".*.ipynb")), "temporary notebooks must not be left behind"


@pytest.mark.slow
def test_run_refuses_unknown_override(smoke, tmp_path):
    with pytest.raises(book.BookError, match="no parameter nope"):
        book.run_notebook(smoke, {"name": "m", "common": {}, "notebooks": {}}, {"nope": 1}, tmp_path / "gen")
    # the book applies one -p to every notebook: there, unknown names are skipped
    book.run_notebook(smoke, {"name": "m", "common": {}, "notebooks": {}}, {"nope": 1}, tmp_path / "gen",
                      strict=False)


@pytest.mark.slow
def test_failed_notebook_leaves_no_output(smoke, tmp_path):
    smoke.write_text(SMOKE + "\n# %%\nraise RuntimeError('boom')\n")
    with pytest.raises(book.BookError, match="boom"):
        book.run_notebook(smoke, {"name": "m", "common": {}, "notebooks": {}}, None, tmp_path / "gen")
    assert not (tmp_path / "gen" / "07_smoke.ipynb").exists()
    assert (tmp_path / "gen" / "07_smoke.failed.ipynb").exists()


# --------------------------------------------------------------------------- the vega bundle and the build
@pytest.mark.slow
def test_vega_bundle_sets_altair_versions(tmp_path):
    import altair as alt

    (tmp_path / "book" / "_static").mkdir(parents=True)
    path = book.write_vega_bundle(tmp_path)
    text = path.read_text()
    tail = text[text.rindex("window.VEGA_DEBUG"):]
    debug = json.loads(tail[tail.index("{}, ") + 4:tail.rindex("}") + 1])
    # Altair's HTML skips the CDN only when these equal the versions it writes
    assert debug == {"vega_version": alt.VEGA_VERSION, "vegalite_version": alt.VEGALITE_VERSION,
                     "vegaembed_version": alt.VEGAEMBED_VERSION}
    assert "window.vegaEmbed=" in text
    mtime = path.stat().st_mtime_ns
    book.write_vega_bundle(tmp_path)
    assert path.stat().st_mtime_ns == mtime, "an up-to-date bundle is not rewritten"


def test_config_keeps_the_book_offline():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    sph = cfg["sphinx"]["config"]
    assert "vega-bundle.js" in sph["html_js_files"]
    assert "sphinx_thebe" not in sph["extensions"], "sphinx_thebe would fetch thebe from unpkg"
    assert cfg["launch_buttons"]["binderhub_url"] and "semalign.sphinxext" in sph["extensions"]
    assert not cfg["launch_buttons"].get("colab_url"), "Colab can only open committed .ipynb files"


def test_launch_links_open_the_tracked_jupytext_source():
    import subprocess

    from semalign import sphinxext

    ctx = {"header_buttons": [{"label": "launch-buttons", "type": "group", "buttons": [
        {"type": "link", "text": "Binder",
         "url": "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/book/generated/02_transforms.ipynb"}]},
        {"label": "download-buttons", "type": "group", "buttons": [{"url": "../_sources/book/generated/02_transforms.ipynb"}]}]}
    sphinxext.retarget_launch_buttons(None, "book/generated/02_transforms", "page.html", ctx, None)
    url = ctx["header_buttons"][0]["buttons"][0]["url"]
    assert url.endswith("urlpath=tree/notebooks/02_transforms.py")
    assert ctx["header_buttons"][1]["buttons"][0]["url"].endswith(".ipynb"), "downloads are left alone"
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for p in book.list_notebooks(ROOT):
        target = sphinxext.source_path(f"book/generated/{p.stem}.ipynb")
        assert target in tracked, f"the launch link of {p.stem} would open {target}, which git does not track"
    toc = (ROOT / "_toc.yml").read_text()
    for p in book.list_notebooks(ROOT):
        assert f"book/generated/{p.stem}" in toc, f"{p.stem} is not in _toc.yml"


@pytest.mark.slow
def test_build_a_small_book(smoke, tmp_path):
    """jupytext → papermill → jupyter-book on a one-notebook book; the chart references the bundle."""
    root = smoke.parent.parent
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    (root / "book" / "_static").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "_static" / "semalign.css", root / "book" / "_static")
    shutil.copy(ROOT / "book" / "references.bib", root / "book")
    (root / "book" / "intro.md").write_text("# Intro\n\nSmall book.\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/generated/07_smoke\n")
    smoke.write_text(SMOKE + "\n# %%\nimport altair as alt\nfrom semalign.report import style\nstyle.setup()\n"
                     "alt.Chart(df).mark_point().encode(x='i', y='i')\n")
    gen = root / "book" / "generated"
    book.run_notebook(smoke, {"name": "m", "common": {}, "notebooks": {}}, None, gen)
    # what a failed run leaves for inspection (it may hold a credentialed sample) is never published
    shutil.copy(gen / "07_smoke.ipynb", gen / "08_broken.failed.ipynb")
    (gen / "08_broken.failed-results").mkdir()
    (gen / "08_broken.failed-results" / "notes.md").write_text("# FAILED-RUN-CANARY\n")
    index = book.build_book(root)
    page = (root / "_build" / "html" / "book" / "generated" / "07_smoke.html").read_text()
    assert index.is_file()
    built = [p.name for p in (root / "_build" / "html").rglob("*")]
    assert not [n for n in built if "08_broken" in n or n == "notes.html"], built
    assert "vega-bundle.js" in page and "altair-viz-" in page
    assert "THEBE_JS_URL" not in page
    assert (root / "_build" / "html" / "_static" / "vega-bundle.js").is_file()


# --------------------------------------------------------------------------- notebook glue (semalign.encoders.tasks)
def test_task_params_exact_name_beats_glob():
    from semalign.encoders.tasks import task_params_for

    tp = {"synthcxr-*": {"n_pool": 200}, "synthcxr-pneumonia": {"n_pool": 50}}
    assert task_params_for("synthcxr-pneumonia", tp) == {"n_pool": 50}
    assert task_params_for("synthcxr-vindr-cardiomegaly", tp) == {"n_pool": 200}
    assert task_params_for("openi-5class", tp) == {}


def test_a_shared_pool_gets_one_cache_key_across_tasks():
    from semalign.encoders.tasks import _family, _group_key
    from semalign.encoders.tasks import get_task

    a = get_task("synthcxr-pneumonia", {"synthcxr-*": {"n_train_per_class": 2, "n_test_per_class": 2, "n_pool": 4}})
    b = get_task("synthcxr-vindr-cardiomegaly", {"synthcxr-*": {"n_train_per_class": 2, "n_test_per_class": 2,
                                                                "n_pool": 4}})
    assert _family("synthpool-3-000012") == _family("synthpool-3-000999") == "synthpool-3-"
    assert _family("CXR12") == _family("CXR3999") == "CXR"
    pool = {_family(i) for i in a.anchors["id"]} - {_family(i) for i in a.train["id"]}
    assert len(pool) == 1 and pool == {_family(i) for i in b.anchors["id"]} - {_family(i) for i in b.train["id"]}
    (fam,) = pool
    assert _group_key(fam, a) == _group_key(fam, b), "the pool is embedded once"
    test_fam = _family(a.test["id"].iloc[0])
    assert test_fam == _family(b.test["id"].iloc[0]), "one shared test pool"
    assert _group_key(test_fam, a) == _group_key(test_fam, b) != a.dataset_key != b.dataset_key
    assert _group_key("CXR", a) == a.dataset_key, "a family no pool names uses the task's key"


def test_binary_labels_mark_the_positive_class():
    import pandas as pd
    from types import SimpleNamespace

    from semalign.data import DataError
    from semalign.encoders.tasks import binary_labels
    from semalign.vocab import finding

    t = SimpleNamespace(name="x", finding=finding("cardiomegaly"), positive="Cardiomegaly",
                        test=pd.DataFrame({"label": ["Cardiomegaly", "no finding", "Cardiomegaly"]}))
    assert list(binary_labels(t)) == [1, 0, 1]
    t.test, t.positive = pd.DataFrame({"label": [0, 1, 1]}), 1
    assert list(binary_labels(t)) == [0, 1, 1]
    with pytest.raises(DataError, match="not a binary finding task"):
        binary_labels(SimpleNamespace(name="openi-5class", finding=None, positive=None, test=t.test))
