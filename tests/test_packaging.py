"""The project's own files must install what it needs: keep them consistent."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml


def _pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


def test_environment_yml_installs_the_project_with_the_same_torch_pin(repo_root):
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e .[all]" in pip_section, "environment.yml must install the project with all extras"
    torch_pins = [p for p in pip_section if p.startswith("torch")]
    readme = (repo_root / "README.md").read_text()
    ci = (repo_root / ".ci" / "run").read_text()
    (pin,) = torch_pins
    assert pin == "torch==2.13.0"
    assert pin in readme and pin in ci, "README, .ci/run and environment.yml must pin the same torch"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = _pyproject(repo_root)["project"]["requires-python"]
    assert requires == ">=" + python.split("=", 1)[1]


def test_no_torchvision_anywhere_in_the_dependencies(repo_root):
    project = _pyproject(repo_root)["project"]
    deps = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        deps += extra
    names = {re.split(r"[<>=!\[ ;]", d, maxsplit=1)[0].lower() for d in deps}
    assert not names & {"torchvision", "timm", "torchxrayvision", "open-clip-torch"}, names


def test_readme_test_command_is_what_ci_runs(repo_root):
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    setup = [line for b in blocks[:1] for line in b.strip().splitlines() if not line.startswith("#")]
    ci = (repo_root / ".ci" / "run").read_text()
    assert len(setup) == 2, "the README's set-up is exactly two commands"
    for command in setup:
        assert command in ci, f"README command not run by .ci/run: {command}"


def test_importing_semalign_stays_light():
    code = "import sys, semalign, semalign.cli; print(sorted(m for m in ('torch','transformers','sklearn','pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_answers():
    out = subprocess.run([sys.executable, "-m", "semalign.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "book" in out.stdout
