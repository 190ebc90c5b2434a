"""Sweeps (``semalign run NB -p …``), ``semalign runs`` and ``semalign compare`` (issue 13).

Notebooks run through the in-process papermill stand-in (``_fake_kernel``): no kernel starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from semalign import runs
from semalign.cli import main
from _fake_kernel import kernel, stable_package  # noqa: F401 - fixtures

WRITER = '''# %% tags=["parameters"]
profile = "none"
n = 3
scale = 1.0

# %%
import pandas as pd
from semalign import book
book.write_results(pd.DataFrame({"method": ["a", "b"] * n, "run": [i // 2 for i in range(2 * n)],
                                 "auroc": [scale * (0.5 + 0.1 * (i % 2)) for i in range(2 * n)]}))
'''

READER = '''# %% tags=["parameters"]
profile = "none"

# %%
import pandas as pd
from semalign import book
up = book.read_results("07_writer")
book.write_results(pd.DataFrame({"rows_upstream": [len(up)]}))
'''


@pytest.fixture(autouse=True)
def project(tmp_path, monkeypatch):
    """A project folder (``_config.yml`` + ``notebooks/``) with a published book, as cwd; the
    runs root inside it (the package part of the key: ``stable_package``)."""
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "07_writer.py").write_text(WRITER)
    (tmp_path / "notebooks" / "08_reader.py").write_text(READER)
    gen = tmp_path / "book" / "generated" / "results"
    gen.mkdir(parents=True)
    pd.DataFrame({"method": ["a"], "run": [0], "auroc": [0.9]}).to_csv(gen / "07_writer.csv", index=False)
    monkeypatch.delenv(runs.RUNS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_a_sweep_goes_to_its_own_folder_and_never_touches_the_book(project, kernel, capsys):
    gen = project / "book" / "generated"
    before = snapshot(gen)
    assert main(["run", "07_writer", "-p", "n", "4", "-p", "scale", "2.0"]) == 0
    out = capsys.readouterr().out
    assert snapshot(gen) == before, "a sweep writes nothing under book/generated"
    name = runs.sweep_name("07_writer", "offline", {"n": 4, "scale": 2.0})
    folder = project / "runs" / name
    assert f"notebook: {folder / '07_writer.ipynb'}" in out
    assert f"results:  {folder / 'results' / '07_writer.csv'}" in out
    assert f"semalign compare book {name}" in out
    assert len(pd.read_csv(folder / "results" / "07_writer.csv")) == 8
    rec = json.loads((folder / "run.json").read_text())
    assert rec["name"] == name and rec["notebooks"]["07_writer"]["overrides"] == {"n": 4, "scale": 2.0}
    assert rec["notebooks"]["07_writer"]["parameters"]["n"] == 4
    # the same sweep again: the same folder, reused from the execution cache
    assert main(["run", "07_writer", "-p", "scale", "2.0", "-p", "n", "4"]) == 0
    assert "07_writer: reused (key " in capsys.readouterr().out and kernel.runs == 1


def test_a_named_sweep_and_its_reader_read_the_run_first_then_the_book(project, kernel, capsys):
    assert main(["run", "08_reader", "--name", "mine"]) == 0  # no 07 in the run yet: the book's
    assert pd.read_csv(project / "runs" / "mine" / "results" / "08_reader.csv")["rows_upstream"].tolist() == [1]
    assert main(["run", "07_writer", "--name", "mine", "-p", "n", "5"]) == 0
    assert main(["run", "08_reader", "--name", "mine"]) == 0
    out = capsys.readouterr().out
    assert "08_reader: executing (the results of 07_writer it reads changed)" in out
    assert pd.read_csv(project / "runs" / "mine" / "results" / "08_reader.csv")["rows_upstream"].tolist() == [10]
    rec = json.loads((project / "runs" / "mine" / "run.json").read_text())
    assert sorted(rec["notebooks"]) == ["07_writer", "08_reader"]


def test_the_books_own_run_is_unchanged_without_p_or_name(project, kernel, capsys):
    assert main(["run", "07_writer"]) == 0
    out = capsys.readouterr().out
    published = project / "book" / "generated" / "07_writer.ipynb"
    assert out.strip().splitlines()[-1] == str(published)
    assert not (project / "runs").exists()
    assert main(["run", "07_writer", "-p", "n", "2", "--output-dir", str(project / "o")]) == 0
    assert (project / "o" / "07_writer.ipynb").is_file() and not (project / "runs").exists()


@pytest.mark.parametrize("argv,needles", [
    (["run", "07_writer", "-p", "nope", "1"], ["07_writer has no parameter nope", "n, profile, scale"]),
    (["run", "07_writer", "-p", "n", "four"], ["-p n", "an int"]),
    (["run", "07_writer", "--name", "../escape"], ["--name", "letters"]),
    (["compare", "book", "nothing-here"], ["no run 'nothing-here'", "semalign runs"]),
    (["run", "07_writer", "--name", "x", "--output-dir", "o"], ["--name", "--output-dir", "not both"]),
])
def test_mistakes_are_one_clear_line_and_create_nothing(argv, needles, project, kernel, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    assert kernel.runs == 0 and not (project / "runs").exists() and not (project / "o").exists()


def test_runs_lists_the_sweeps(project, kernel, capsys):
    assert main(["runs"]) == 0
    assert "no runs in" in capsys.readouterr().out
    main(["run", "07_writer", "--name", "small", "-p", "n", "1"])
    main(["run", "07_writer", "-p", "scale", "3.0"])
    capsys.readouterr()
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "small" in out and "07_writer (n=1)" in out and "07_writer (scale=3.0)" in out
    assert "(2 runs in " in out


# --------------------------------------------------------------------------- compare
def _run_folder(folder: Path, params: dict, frame: pd.DataFrame, stem: str = "02_x") -> Path:
    (folder / "results").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": params}
    nbformat.write(nb, folder / f"{stem}.ipynb")
    frame.to_csv(folder / "results" / f"{stem}.csv", index=False)
    return folder


def test_compare_known_means_and_parameter_diff(project, capsys):
    def frame(shift: float, runs_: int) -> pd.DataFrame:
        rows = []
        for run in range(runs_):
            for src, tgt in (("e1", "e2"), ("e2", "e1")):
                for method, base in (("ortho", 0.7), ("linear", 0.6)):
                    for n in (10, 100):
                        rows.append({"task": "t", "source": src, "target": tgt, "method": method,
                                     "n_anchors": n, "run": run,
                                     "auroc": base + (0.1 if n == 100 else 0) + (shift if src == "e1" else 0)})
        return pd.DataFrame(rows)

    _run_folder(project / "runs" / "A", {"profile": "offline", "runs": 2, "anchor_counts": [10, 100]}, frame(0.0, 2))
    _run_folder(project / "runs" / "B", {"profile": "offline", "runs": 3, "anchor_counts": [10, 100]}, frame(0.02, 3))
    assert main(["compare", "A", "B"]) == 0
    out = capsys.readouterr().out
    assert "parameters that differ:" in out and "02_x.runs" in out and "A 2  B 3" in out
    assert "anchor_counts" not in out.split("02_x.csv")[0], "equal parameters are not listed"
    assert "02_x.csv: mean by method, n_anchors" in out, out  # not by run, source, target; task is constant
    table = runs.compare_results(pd.read_csv(project / "runs" / "A" / "results" / "02_x.csv"),
                                 pd.read_csv(project / "runs" / "B" / "results" / "02_x.csv"))[0]
    row = table.loc[("ortho", 100)]
    # A: 0.8 everywhere; B: e1 pairs +0.02 → mean over both pairs 0.81
    assert row["auroc A"] == pytest.approx(0.8) and row["auroc B"] == pytest.approx(0.81)
    assert row["auroc B-A"] == pytest.approx(0.01)
    assert row["n A"] == 4 and row["n B"] == 6
    by_source = runs.compare_results(pd.read_csv(project / "runs" / "A" / "results" / "02_x.csv"),
                                     pd.read_csv(project / "runs" / "B" / "results" / "02_x.csv"), by=["source"])[0]
    assert by_source.loc["e1", "auroc B-A"] == pytest.approx(0.02)
    assert by_source.loc["e2", "auroc B-A"] == pytest.approx(0.0)
    assert main(["compare", "A", "B", "--by", "nope"]) == 2
    assert "--by nope" in capsys.readouterr().err


def test_compare_with_the_book_after_a_sweep(project, kernel, capsys):
    assert main(["run", "07_writer"]) == 0  # the book's own 07
    assert main(["run", "07_writer", "--name", "doubled", "-p", "scale", "2.0"]) == 0
    capsys.readouterr()
    assert main(["compare", "book", "doubled", "--notebook", "07_writer"]) == 0
    out = capsys.readouterr().out
    assert "07_writer.scale  A (default)  B 2.0" in out
    assert "07_writer.csv: mean by method" in out
    table = runs.compare_results(pd.read_csv(project / "book" / "generated" / "results" / "07_writer.csv"),
                                 pd.read_csv(project / "runs" / "doubled" / "results" / "07_writer.csv"))[0]
    assert table.loc["a", "auroc B-A"] == pytest.approx(0.5) and table.loc["b", "auroc B-A"] == pytest.approx(0.6)


def test_the_documented_commands_parse():
    """Every `semalign …` line of reproduce.md's and the README's command blocks is a valid command."""
    import re
    import shlex

    from semalign.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    lines = []
    for doc in (root / "book" / "reproduce.md", root / "README.md"):
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
            lines += [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.startswith("semalign ")]
    assert any(" compare " in ln for ln in lines) and any(ln.startswith("semalign runs") for ln in lines)
    for ln in lines:
        build_parser().parse_args(shlex.split(ln)[1:])  # SystemExit (a usage error) fails the test
