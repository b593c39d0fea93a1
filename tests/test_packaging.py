"""environment.yml and pyproject.toml must name the same runtime packages with the same bounds."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    from_env = {normalise(r) for r in pip_section if not r.startswith("-e")}
    assert from_env == {normalise(r) for r in project["dependencies"]}
    assert "-e ." in pip_section
    assert any(str(d).startswith("python=3.") for d in env["dependencies"])


def readme_commands() -> list[str]:
    """The one-line commands in the README's first code blocks (quick preset, then tests)."""
    return re.findall(r"```\n(.+)\n```", (ROOT / "README.md").read_text())[:2]


def test_ci_runs_the_readme_test_line_verbatim():
    quick, tests = readme_commands()
    assert "config/quick.yaml" in quick and "snakemake" in quick
    assert "pytest" in tests
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines
