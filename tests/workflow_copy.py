"""A copy of the workflow in a temporary directory: tests never touch the repository's results/,
and a test may edit a family's code in the copy to see what Snakemake reruns."""

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "environment.yml"):
        shutil.copy(ROOT / name, dest / name)
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / folder, dest / folder)
    (dest / "src" / "vaebench").mkdir(parents=True)
    shutil.copy(ROOT / "src" / "vaebench" / "families.py", dest / "src" / "vaebench" / "families.py")
    return dest
