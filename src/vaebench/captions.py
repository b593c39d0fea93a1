"""The figures' names, in page order, and their captions: standard library only.

The Snakefile imports FIGURES on every invocation (the figures rule's outputs, the report rule's
inputs), so this module stays free of matplotlib, pandas and torch; `vaebench.figures` maps each
name to its draw function. Each figure's title and caption are written once, in
workflow/report/NAME.rst: Snakemake's report shows that file, and `vaebench report` reads it
with `read_caption`.
"""

import re
from dataclasses import dataclass
from pathlib import Path

FIGURES = (
    "bpd_vs_latent",
    "learning_curves",
    "reconstructions",
    "samples",
    "quality_vs_likelihood",
    "picture_quality",
    "latent_scatter",
    "std_maps",
    "calibration",
    "significance",
    "cost",
)
DEFAULT_DIR = Path("workflow/report")  # relative to the working directory: the workflow's is the repository

TITLE = re.compile(r"\*\*(.+?)\*\*(.*)")  # the bold lead of the first line, then the rest of that line
# for Snakemake's report only: "Study ``{{ snakemake.wildcards.study }}``."
JINJA_STUDY = re.compile(r"\s*Study\s+``\{\{.*?\}\}``\.?")


@dataclass(frozen=True)
class Caption:
    title: str  # plain text, without its closing full stop
    text: str  # one line; rst inline literals (``name``) kept as they are


def caption_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}.rst"


def read_caption(directory: Path, name: str) -> Caption:
    """The title (the bold first line) and caption (the rest, on one line) of DIRECTORY/NAME.rst.

    The first line's Jinja fragment for Snakemake's report (Study ``{{ ... }}``) is left out.
    FileNotFoundError if the file does not exist; a file without a bold first line has the figure's
    name as its title.
    """
    first, _, rest = caption_path(directory, name).read_text(encoding="utf-8").strip().partition("\n")
    match = TITLE.match(first)
    title, after = (match.group(1).strip().removesuffix("."), match.group(2)) if match else (name, first)
    return Caption(title, " ".join(f"{JINJA_STUDY.sub('', after)} {rest}".split()))
