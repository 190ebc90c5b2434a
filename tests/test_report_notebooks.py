"""The notebooks read like the paper section: parameter defaults equal to the offline profile,
one visible cell of the method itself, and every number the prose glues in is glued."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from semalign import book

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = book.list_notebooks(ROOT)
GLUE_REF = re.compile(r"\{glue:text\}`([A-Za-z0-9_]+)(?::[^`]*)?`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameter_defaults_equal_the_offline_profile(path):
    nb = book._to_ipynb(path)
    defaults = book.parameter_defaults(nb)
    given = book.profile_parameters(book.load_profile("offline"), path.stem)
    differ = {k: (defaults[k], given[k]) for k in set(defaults) & set(given) if defaults[k] != given[k]}
    assert not differ, f"{path.name}: parameter defaults differ from the offline profile (default, profile): {differ}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_title_and_the_paper_section_come_first(path):
    first = book._to_ipynb(path).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "**Paper: Sec." in first.source, f"{path.name}: the first cell says which paper section it reproduces"


@pytest.mark.parametrize("stem", ["01_semantic_alignment", "02_transforms", "03_general_to_medical", "04_zeroshot"])
def test_one_visible_cell_shows_the_method(stem):
    cells = book._to_ipynb(ROOT / "notebooks" / f"{stem}.py").cells
    heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## The method in one cell" in c.source]
    assert len(heads) == 1, f"{stem}: one 'The method in one cell' section"
    code = cells[heads[0] + 1]
    assert code.cell_type == "code" and re.search(r"\b(Translator|unimodal_zeroshot)\(", code.source)
    assert "glue(" in code.source, f"{stem}: the method cell's output is used in the prose"
    assert not code.metadata.get("tags"), "visible: not hidden or removed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_glued_reference_is_glued(path):
    cells = book._to_ipynb(path).cells
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    keys = set(re.findall(r"""\bglue\(\s*["']([A-Za-z0-9_]+)["']""", code))
    prefixes = set(re.findall(r"""glue_numbers\(\s*["']([A-Za-z0-9_]+)["']""", code))
    refs = {k for c in cells if c.cell_type == "markdown" for k in GLUE_REF.findall(c.source)}
    missing = {k for k in refs if k not in keys and not any(k.startswith(p + "_") for p in prefixes)}
    assert not missing, f"{path.name}: the prose pastes keys no cell glues: {sorted(missing)}"
    assert refs, f"{path.name}: the prose states no glued number"
