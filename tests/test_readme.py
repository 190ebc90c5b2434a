"""The README's Python examples run as written and say what the README says they say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_block(code: str) -> tuple[dict, str]:
    ns: dict = {"__name__": "__readme__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), ns)
    return ns, out.getvalue()


def test_readme_has_the_two_examples():
    blocks = python_blocks()
    assert len(blocks) == 2, "README: one Translator example on arrays, one stitching example on real data"
    assert "Translator(" in blocks[0] and "stitch_grid(" in blocks[1]


def test_readme_translator_example_recovers_the_map():
    _, out = run_block(python_blocks()[0])
    errs = {tuple(line.split()[:2]): float(line.split()[-1]) for line in out.strip().splitlines()}
    assert errs[("ortho", "std_scaling=False")] < 1e-4, "ortho recovers a hidden isometry without scaling"
    assert errs[("linear", "std_scaling=True")] < 1e-4, "linear recovers it under standard scaling"
    assert errs[("ortho", "std_scaling=True")] > 1e-2, "the README says scaled ortho is not exact here"


@pytest.mark.slow
def test_readme_stitching_example_on_real_encoders():
    ns, out = run_block(python_blocks()[1])
    res = ns["results"]
    mean = res.groupby(["method", "n_anchors"])["auroc"].mean()
    assert "upper_bound" in out and "ortho" in out, "the example prints the AUROC table"
    assert mean[("ortho", 500)] > mean[("naive", 0)] + 0.15, "alignment must beat naive stitching by far"
    assert mean[("ortho", 500)] > mean[("ortho", 25)], "more anchors help"
    assert mean[("ortho", 500)] <= mean[("upper_bound", 0)] + 0.02
    assert set(res["source"]) == {"minilm-l6", "wordllama-256"} and len(set(res["run"])) == 2
    # the numbers the README quotes are the ones this example gives (within run-to-run noise)
    text = " ".join(README.read_text().split())
    m = re.search(r"naive (0\.\d+), ortho with 25 anchors (0\.\d+) and with 500 anchors (0\.\d+), "
                  r"affine (0\.\d+) and (0\.\d+), upper bound (0\.\d+)", text)
    assert m, "the README quotes the example's AUROCs"
    keys = [("naive", 0), ("ortho", 25), ("ortho", 500), ("affine", 25), ("affine", 500), ("upper_bound", 0)]
    for k, quoted in zip(keys, map(float, m.groups())):
        assert abs(mean[k] - quoted) <= 0.03, f"README says {k} {quoted}, the example gives {mean[k]:.3f}"


def test_readme_run_commands_name_real_notebooks_and_parameters():
    import shlex

    from semalign import book

    lines = [ln.split("#")[0].strip() for ln in README.read_text().splitlines()
             if ln.strip().startswith("semalign run ")]
    assert lines, "the README shows how to rerun a notebook with -p"
    for ln in lines:
        argv = shlex.split(ln)[2:]
        nb = book.resolve_notebook(argv[0])
        declared = book.declared_parameters(book._to_ipynb(nb))
        names = [argv[i + 1] for i, a in enumerate(argv) if a in ("-p", "--parameter")]
        assert names and set(names) <= declared, f"{ln!r}: {set(names) - declared} not parameters of {nb.name}"
        book.parse_overrides([(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == "-p"])
