"""A copy of the workflow in a temporary directory: tests never touch the repository's results/,
and a test may edit the package source in the copy (a family, a numerical helper, the catalog) to see
what Snakemake reruns: the copy's src/vaebench is what its fingerprints hash."""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "environment.yml"):
        shutil.copy(ROOT / name, dest / name)
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / folder, dest / folder)
    shutil.copytree(
        ROOT / "src" / "vaebench", dest / "src" / "vaebench", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest
