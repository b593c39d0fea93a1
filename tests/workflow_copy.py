"""A copy of the workflow in a temporary directory: tests never touch the repository's results/,
and a test may edit the package source in the copy (a family, a numerical helper, the catalog) to see
what Snakemake reruns: the copy's src/vaebench is what its fingerprints hash. `snakemake` runs Snakemake
on such a copy and `planned_jobs` counts the jobs of its dry run."""

import re
import shutil
import subprocess
import sys
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


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--directory",
        str(workdir),
        "--snakefile",
        str(workdir / "Snakefile"),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> number of jobs a dry run would execute (parsed from Snakemake's 'Job stats' table)."""
    proc = snakemake(workdir, "--dry-run", *args)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M))
    jobs.pop("total", None)
    return {rule: int(n) for rule, n in jobs.items()}
