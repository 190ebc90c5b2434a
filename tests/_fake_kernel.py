"""An in-process stand-in for ``papermill.execute_notebook`` (tests of the execution cache and
sweeps without starting a kernel: a kernel costs seconds, these tests run in milliseconds).

It does what papermill does that the book relies on: inserts an ``injected-parameters`` cell
after the ``parameters`` cell, executes the code cells in order in ``cwd`` (here: in this
process, with the environment :func:`semalign.book._execute` set), records the parameters in
``metadata.papermill.parameters``, writes the output notebook, and raises
``PapermillExecutionError`` when a cell fails. ``calls`` counts the "kernels started".
"""

from __future__ import annotations

import os

import nbformat
import papermill
import pytest

from semalign import runcache


class FakeKernel:
    def __init__(self):
        self.calls: list[dict] = []
        self.during = None  # optional callable run after the cells (e.g. to change a file meanwhile)

    def __call__(self, input_path, output_path, parameters=None, cwd=None, **_kw):
        self.calls.append({"parameters": dict(parameters or {}), "cwd": cwd})
        nb = nbformat.read(input_path, as_version=4)
        cells = []
        for c in nb.cells:
            cells.append(c)
            if c.cell_type == "code" and "parameters" in c.metadata.get("tags", []):
                src = "\n".join(f"{k} = {v!r}" for k, v in (parameters or {}).items())
                cells.append(nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]}))
        ns: dict = {"__name__": "__main__"}
        before = os.getcwd()
        os.chdir(cwd)
        try:
            for i, c in enumerate(cells):
                if c.cell_type != "code":
                    continue
                try:
                    exec(compile(c.source, f"<cell {i}>", "exec"), ns)  # noqa: S102 - the test's own notebook
                except Exception as e:  # noqa: BLE001 - papermill reports any failure of a cell
                    nbformat.write(nbformat.v4.new_notebook(cells=cells), output_path)
                    raise papermill.PapermillExecutionError(i, i + 1, c.source, type(e).__name__, str(e), []) from None
            if self.during is not None:
                self.during()
        finally:
            os.chdir(before)
        nb.cells = cells
        nb.metadata["papermill"] = {"parameters": dict(parameters or {})}
        nbformat.write(nb, output_path)
        return nb

    @property
    def runs(self) -> int:
        return len(self.calls)


@pytest.fixture
def kernel(monkeypatch) -> FakeKernel:
    k = FakeKernel()
    monkeypatch.setattr(papermill, "execute_notebook", k)
    return k


@pytest.fixture(autouse=True)
def stable_package(tmp_path_factory, monkeypatch):
    """The package part of the key from a folder of the test's own: the real package is being
    edited by others while tests run (a change while a notebook runs is detected and not stored)."""
    pkg = tmp_path_factory.mktemp("package")
    (pkg / "mod.py").write_text("X = 1\n")
    monkeypatch.setattr(runcache, "PACKAGE_DIR", pkg)
    return pkg
