"""`vaebench report`: one self-contained HTML page (figures embedded, opens offline) answering the question.

Everything on the page comes from the results directory (the tables of `vaebench aggregate`,
which carry every run.json / metrics.json field, and the PNGs of `vaebench figures`), the
figures' captions (workflow/report/NAME.rst, the ones Snakemake's report shows) and, when given,
the study config. The decisions are `vaebench.analysis`'s and the sentences `vaebench.findings`',
so the text never claims more than the tests allow; this package lays them out: one function per
section (`tables`, `setup`, `runs`), assembled by `page.render` into templates/report.html.
"""

import argparse

from vaebench.report.page import render, write_index
from vaebench.results import ResultsError, Study, read_config
from vaebench.utils import atomic_write


def run(args: argparse.Namespace) -> int:
    study = Study.load(args.results, args.manifest, args.quality)
    figures = args.figures or args.results / "figures"
    if not figures.is_dir():  # else every figure would be left out without a word
        raise ResultsError(
            f"figures folder {figures} does not exist: run `vaebench figures --results "
            f"{args.results}` first, or point --figures at it"
        )
    page = render(study, read_config(args.config) if args.config else None, figures, args.captions)
    atomic_write(args.out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    if args.index is not None:
        write_index(args.index)
    print(f"report ({len(page) // 1024} KiB, {len(study.metrics)} runs) -> {args.out}")
    return 0
