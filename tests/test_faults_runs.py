"""Faults of `semalign run` / `semalign book` (issue 9, items 2 and 7): every one gives exit status 2
and ONE clear line on stderr, never a traceback; a failed run never replaces a good run's outputs.

Every test drives the real command (:func:`semalign.cli.main`), as a user would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from semalign import book
from semalign.cli import main

#: A tiny notebook: writes ``n`` rows (and how many rows another notebook's published results
#: hold, read with read_results), then raises a SemalignError when ``fail`` is set. The raise
#: comes *after* write_results, as a notebook failing in a late cell does.
TINY = '''# %% tags=["parameters"]
n = 2
fail = False

# %%
import pandas as pd
from semalign.book import BookError, read_results, write_results

prev = len(read_results("06_prev"))
write_results(pd.DataFrame({"i": list(range(n)), "prev": prev}))

# %%
if fail:
    raise BookError("the tiny notebook was told to fail")
'''


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """``semalign *argv`` in-process; returns (exit status, stderr)."""
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_clear_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


def _refuse(*a, **k):
    raise AssertionError("a notebook was executed although the command should have been refused")


@pytest.fixture
def no_execution(monkeypatch):
    """Call it before `semalign book`: that must refuse before executing anything (and so never
    touches the repository's book/generated/, nor reuses a stored run into it)."""
    def refuse_all():
        monkeypatch.setattr(book, "run_notebook", _refuse)
        monkeypatch.setattr(book, "run", _refuse)
    return refuse_all


@pytest.fixture
def tiny(tmp_path) -> Path:
    p = tmp_path / "src" / "07_tiny.py"
    p.parent.mkdir()
    p.write_text(TINY)
    return p


@pytest.fixture
def out(tmp_path) -> Path:
    d = tmp_path / "gen"
    (d / "results").mkdir(parents=True)
    pd.DataFrame({"x": [1, 2, 3]}).to_csv(d / "results" / "06_prev.csv", index=False)
    return d


# --------------------------------------------------------------------------- item 2: runs publish all or nothing
@pytest.mark.slow
def test_a_failed_run_keeps_the_good_run_and_publishes_nothing(tiny, out, capsys):
    """good run -> failing run (writes its results, then raises) -> good run again: three kernels."""
    code, err = run_cli(capsys, "run", str(tiny), "-p", "n", "2", "--output-dir", str(out))
    assert code == 0, err
    nb, res = out / "07_tiny.ipynb", out / "results" / "07_tiny.csv"
    good_nb, good_res = nb.read_bytes(), res.read_bytes()
    # the kernel ran in a staging folder but read the *published* results of another notebook
    assert list(pd.read_csv(res)["prev"]) == [3, 3]

    code, err = run_cli(capsys, "run", str(tiny), "-p", "n", "5", "-p", "fail", "true", "--output-dir", str(out))
    assert code == 2
    # the kernel's own SemalignError line, in one line
    assert_one_clear_line(err, "07_tiny", "BookError: the tiny notebook was told to fail", "07_tiny.failed.ipynb")
    assert res.read_bytes() == good_res, "a failed run must not replace the good run's results"
    assert nb.read_bytes() == good_nb, "a failed run must not replace the good executed notebook"
    assert (out / "07_tiny.failed.ipynb").is_file(), "the failed notebook is kept for inspection"
    kept = out / "07_tiny.failed-results" / "07_tiny.csv"
    assert len(pd.read_csv(kept)) == 5, "the failed run's rows are kept apart, under <stem>.failed-results/"
    assert not list(out.glob(".staging-*")), "no staging folder is left behind"

    code, err = run_cli(capsys, "run", str(tiny), "-p", "n", "3", "--output-dir", str(out))
    assert code == 0, err
    assert len(pd.read_csv(res)) == 3 and nb.read_bytes() != good_nb, "a good run publishes both"
    assert not (out / "07_tiny.failed.ipynb").exists() and not (out / "07_tiny.failed-results").exists()
    assert not list(out.glob(".staging-*")) and not list(out.glob(".*.ipynb"))
    assert sorted(p.name for p in (out / "results").iterdir()) == ["06_prev.csv", "07_tiny.csv"]


def test_read_results_prefers_this_runs_staged_results_then_the_published_ones(tmp_path, monkeypatch):
    staged, published = tmp_path / "stage", tmp_path / "pub"
    (staged / "results").mkdir(parents=True)
    (published / "results").mkdir(parents=True)
    pd.DataFrame({"v": [1]}).to_csv(published / "results" / "a.csv", index=False)
    pd.DataFrame({"v": [2]}).to_csv(published / "results" / "b.csv", index=False)
    pd.DataFrame({"v": [3]}).to_csv(staged / "results" / "b.csv", index=False)
    monkeypatch.chdir(staged)  # a kernel's working directory is its staging folder
    monkeypatch.setenv("SEMALIGN_RESULTS_DIR", str(published / "results"))
    assert book.read_results("a")["v"].tolist() == [1]
    assert book.read_results("b")["v"].tolist() == [3]
    assert book.write_results(pd.DataFrame({"v": [4]}), "c").resolve() == staged / "results" / "c.csv"
    with pytest.raises(book.BookError, match="semalign run zz"):
        book.read_results("zz")


# --------------------------------------------------------------------------- item 7: one clear line, exit 2
def test_malformed_profile_yaml_names_the_file_and_line(tmp_path, capsys):
    p = tmp_path / "mine.yml"
    p.write_text("common:\n  seed: 1\n  runs: [1, 2\nnotebooks: {}\n")
    code, err = run_cli(capsys, "run", "02_transforms", "--profile", str(p), "--output-dir", str(tmp_path / "o"))
    assert code == 2
    assert_one_clear_line(err, "mine.yml", "line ")
    assert not (tmp_path / "o").exists(), "nothing is written before the profile is read"


@pytest.mark.parametrize("name", ["../x", "../profiles/offline", "offline/../../assets", "/etc/passwd", "nope.yml"])
def test_a_profile_name_cannot_escape_the_profiles_folder(name, tmp_path, capsys, no_execution):
    no_execution()
    code, err = run_cli(capsys, "book", "--profile", name, "--no-build", "--only", "05_summary")
    assert code == 2
    assert_one_clear_line(err, "offline")
    with pytest.raises(book.BookError):
        book.load_profile(name)


def test_a_profile_path_and_the_known_names_still_load(tmp_path, monkeypatch):
    p = tmp_path / "sub" / "mine.yaml"
    p.parent.mkdir()
    p.write_text("common: {seed: 7}\n")
    monkeypatch.chdir(tmp_path)
    assert book.load_profile("sub/mine.yaml")["common"] == {"seed": 7}
    assert book.load_profile("offline")["name"] == "offline"


def test_output_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    for target in (f, f / "below"):
        code, err = run_cli(capsys, "run", "05_summary", "--output-dir", str(target))
        assert code == 2
        assert_one_clear_line(err, str(f), "folder")
    assert f.read_text() == "x"


def test_syntax_error_in_the_parameters_cell_names_notebook_and_line(tmp_path, capsys):
    p = tmp_path / "08_bad.py"
    p.write_text('# %% [markdown]\n# # Bad\n\n# %% tags=["parameters"]\nn = 1\nm = (2,\n\n# %%\nprint(n)\n')
    code, err = run_cli(capsys, "run", str(p), "--output-dir", str(tmp_path / "o"))
    assert code == 2
    assert_one_clear_line(err, "08_bad.py", "parameters", "line ")


@pytest.mark.parametrize("missing", ["nbformat", "papermill", "jupytext"])
def test_book_extra_not_installed(missing, tmp_path, monkeypatch, capsys, no_execution):
    monkeypatch.setitem(sys.modules, missing, None)  # `import <missing>` now raises ImportError
    code, err = run_cli(capsys, "run", "05_summary", "--output-dir", str(tmp_path / "o"))
    assert code == 2
    assert_one_clear_line(err, missing, 'pip install -e ".[book]"')
    no_execution()
    code, err = run_cli(capsys, "book", "--only", "05_summary", "--no-build")
    assert code == 2
    assert_one_clear_line(err, missing, 'pip install -e ".[book]"')


@pytest.mark.parametrize("name,value,expects", [("runs", "abc", "int"), ("methods", "ortho", "list"),
                                                ("runs", "true", "int")])
def test_an_override_of_the_wrong_type_is_refused_before_running(name, value, expects, tmp_path, capsys,
                                                                no_execution):
    code, err = run_cli(capsys, "run", "02_transforms", "-p", name, value, "--output-dir", str(tmp_path / "o"))
    assert code == 2
    assert_one_clear_line(err, f"-p {name}", expects)
    no_execution()
    code, err = run_cli(capsys, "book", "-p", name, value, "--no-build")
    assert code == 2
    assert_one_clear_line(err, f"-p {name}", expects)


def test_overrides_of_a_compatible_type_are_accepted(tmp_path):
    nb = book._to_ipynb(book.resolve_notebook("02_transforms"))
    ok = {"runs": 1, "anchor_pool": None, "methods": ["ortho"], "device": "cpu", "task_params": {"a": {}}}
    book.check_overrides(nb, "02_transforms", ok)
