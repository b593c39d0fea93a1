"""`vaebench <stage>`: one subcommand per pipeline stage (data -> train -> evaluate -> aggregate -> figures
-> report). Parsing a command line, `--help` included, imports neither torch nor pandas."""

import argparse
import importlib
import sys
from pathlib import Path

from vaebench import captions, layout
from vaebench.catalog import FAMILY_IDS
from vaebench.cli_types import (
    NON_NEGATIVE,
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    POSITIVE_NUMBER,
    SEED,
    THREAD_COUNT,
    UNIT_FACTOR,
    device,
    named,
)
from vaebench.errors import VaebenchError
from vaebench.settings import (
    ARCHITECTURES,
    COMPILE_MODES,
    DATASETS,
    DEFAULT_DATA_DIR,
    FIXED_SCALES,
    THREADS,
    EvalConfig,
    TrainConfig,
)
from vaebench.utils import DEVICE_HELP

STAGES = {
    "data": "fetch (if needed) and check a dataset, and write its manifest",
    "classifier": "train the small CNN whose features score a dataset's reconstructions and samples",
    "train": "fit one VAE for one (dataset, family, latent dimension, seed)",
    "select": "choose a family's learning rate (and fixed scale) from its grid runs, on the validation split",
    "warm": "compile a family's evaluation kernels into the compile cache once, for every evaluation of it "
    "to load",
    "evaluate": "estimate a trained model's test log-likelihood by importance sampling, and its other "
    "metrics",
    "aggregate": "collect every run's metrics into tables, summaries and pairwise tests",
    "baselines": "score models without a latent (uniform, two masses, per-pixel histogram)",
    "figures": "draw the comparison figures",
    "report": "write the self-contained HTML report",
    "compare": "what changed between two studies: bits/dim, the ranking, the seed post's claims",
    "readme": "a study's results as Markdown for a README: the headline table, the verdict, the checks, the "
    "seed post's claims, the limits and the job time per stage",
}


class UsageError(VaebenchError):
    """A command line the parser refuses (unknown option, bad value): one line, as any user error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage first: two lines or more
        raise UsageError(message)


def _threads_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=THREAD_COUNT,
        default=THREADS,
        help="torch CPU threads (default: %(default)s, the fastest for a lone job on CPU; jobs "
        "side by side: one each; 0: torch's own default, one per core)",
    )


def _train_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument(
        "--dataset",
        default=d.dataset,
        choices=DATASETS,
        type=named("dataset", DATASETS),
        help="dataset to train on (default: %(default)s)",
    )
    p.add_argument(
        "--loss",
        default=d.loss,
        metavar="FAMILY",
        type=named("family", FAMILY_IDS),
        help=f"output family / reconstruction loss, one of: {', '.join(FAMILY_IDS)} (default: %(default)s)",
    )
    p.add_argument(
        "--latent-dim", type=POSITIVE, default=d.latent_dim, help="latent dimension Z (default: %(default)s)"
    )
    p.add_argument(
        "--seed",
        type=SEED,
        default=d.seed,
        help="seed for weights, batch order and all noise (default: %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=POSITIVE,
        default=d.epochs,
        help="the epoch cap: with --validation the stopping rule usually ends a run before it "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--arch",
        default=d.arch,
        choices=ARCHITECTURES,
        type=named("architecture", ARCHITECTURES),
        help="encoder/decoder architecture (default: %(default)s)",
    )
    p.add_argument(
        "--hidden",
        type=POSITIVE,
        default=d.hidden,
        help="hidden width of the mlp; the conv net has none (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size", type=POSITIVE, default=d.batch_size, help="images per step (default: %(default)s)"
    )
    p.add_argument(
        "--lr", type=POSITIVE_NUMBER, default=d.lr, help="Adam learning rate (default: %(default)s)"
    )
    p.add_argument(
        "--validation",
        type=NON_NEGATIVE,
        default=d.validation,
        help="hold out this many training images (the same ones for every run) and keep the epoch with the "
        "best ELBO on them; 0 keeps the last epoch (default: %(default)s)",
    )
    _stopping_arguments(p, d)
    p.add_argument(
        "--selected",
        type=Path,
        default=None,
        metavar="JSON",
        help="the learning rate and fixed scale chosen on the validation split (`vaebench select`'s output): "
        "they replace --lr, --sigma and --laplace-b",
    )
    p.add_argument(
        "--dequantize",
        action=argparse.BooleanOptionalAction,
        default=d.dequantize,
        help="train on (v+u)/256 (default); --no-dequantize trains on v/255 as the seed did, "
        "and the likelihoods are then not comparable",
    )
    p.add_argument(
        "--sigma",
        type=POSITIVE_NUMBER,
        default=None,
        help=f"fixed std of gaussian_fixed; other families ignore it (default: {FIXED_SCALES['sigma']:.4g}, "
        "the summed-squared-error loss)",
    )
    p.add_argument(
        "--laplace-b",
        type=POSITIVE_NUMBER,
        default=None,
        help="fixed scale of laplace_fixed; other families ignore it (default: "
        f"{FIXED_SCALES['laplace_b']:g}, the summed-absolute-error loss)",
    )
    p.add_argument("--device", default=d.device, type=device, help=DEVICE_HELP)
    _threads_argument(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model for training (pays off on GPU; on CPU the mlp gains little "
        "and compiling takes a minute)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help=f"where datasets are looked for and downloaded to (default: {DEFAULT_DATA_DIR})",
    )
    p.add_argument("--out", required=True, type=Path, help=f"run directory for {', '.join(layout.TRAINED)}")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run (or the checkpoint of an unfinished one) in --out; without "
        "it a finished run with other arguments is refused and one with the same is kept",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="one epoch of two batches, to check that everything runs"
    )


def _stopping_arguments(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    rule = p.add_argument_group(
        "stopping rule",
        "on the validation ELBO (vaebench.stopping): a run ends when it has converged or at --epochs",
    )
    rule.add_argument(
        "--patience",
        type=POSITIVE,
        default=d.patience,
        help="epochs without a gain before the learning rate decays, or the run stops (default: %(default)s)",
    )
    rule.add_argument(
        "--min-gain-bpd",
        type=NON_NEGATIVE_NUMBER,
        default=d.min_gain_bpd,
        help="an epoch gains when it beats the best validation ELBO by more than this many bits/dim "
        "(default: %(default)s)",
    )
    rule.add_argument(
        "--lr-decay",
        type=UNIT_FACTOR,
        default=d.lr_decay,
        help="factor of the learning rate after --patience epochs without a gain (default: %(default)s)",
    )
    rule.add_argument(
        "--max-decays",
        type=NON_NEGATIVE,
        default=d.max_decays,
        help="decays before the next plateau ends the run as converged (default: %(default)s)",
    )


def _select_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runs",
        required=True,
        nargs="+",
        type=Path,
        help="run directories of one family's grid points, each trained with --validation",
    )
    p.add_argument(
        "--round",
        type=int,
        default=0,
        help="the grid's extensions done so far: the runs are the initial grid and the points they added",
    )
    p.add_argument(
        "--max-extensions",
        type=int,
        default=0,
        help="how many times a choice at the edge of the points tried may extend them one step outward",
    )
    p.add_argument("--out", required=True, type=Path, help="JSON file for the chosen settings")


def _scoring_arguments(p: argparse.ArgumentParser) -> None:
    """What an evaluation scores and how: `vaebench warm` takes the same, to build the same kernels."""
    d = EvalConfig()
    p.add_argument(
        "--run",
        required=True,
        type=Path,
        help=f"run directory holding {layout.MODEL} and {layout.RUN_RECORD}",
    )
    p.add_argument(
        "--k", type=POSITIVE, default=d.k, help="importance samples per test image (default: %(default)s)"
    )
    p.add_argument(
        "--n-test", type=POSITIVE, default=None, help="score the first N test images (default: all)"
    )
    p.add_argument(
        "--batch", type=POSITIVE, default=d.batch, help="test images per batch (default: %(default)s)"
    )
    p.add_argument(
        "--chunk",
        type=POSITIVE,
        default=None,
        help="samples decoded at once, rounded down to a multiple of 16 (at least 16, said on "
        "stderr); memory grows with batch*chunk, never with K; numbers do not depend on it "
        "(default: from free memory)",
    )
    p.add_argument(
        "--seed",
        type=SEED,
        default=d.seed,
        help="seed of the evaluation noise: dequantization, z samples, ELBO, prior samples "
        "(default: %(default)s)",
    )
    p.add_argument("--device", default="auto", type=device, help=DEVICE_HELP)
    _threads_argument(p)
    p.add_argument(
        "--data-dir", default=None, help="where the dataset is looked for (default: the run's data_dir)"
    )
    p.add_argument(
        "--compile",
        choices=COMPILE_MODES,
        type=named("compile mode", COMPILE_MODES),
        default=d.compile,
        help="run the family math as one torch.compile'd kernel, faster per sample; needs a C++ "
        "compiler on CPU. true, false, or auto: compiled when K x test images is large enough to pay "
        "for compiling on this device (default: %(default)s)",
    )
    p.add_argument(
        "--compile-cache",
        type=Path,
        default=Path(d.compile_cache),
        help="directory keeping compiled kernels for the next job, so only the first job per "
        "family and shape compiles (default: %(default)s)",
    )


def _warm_arguments(p: argparse.ArgumentParser) -> None:
    _scoring_arguments(p)
    p.add_argument(
        "--out", required=True, type=Path, help="record to write: the kernels' shapes and compile seconds"
    )


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    _scoring_arguments(p)
    p.add_argument(
        "--out", required=True, type=Path, help=f"metrics file to write, e.g. RUN_DIR/{layout.METRICS}"
    )
    p.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help=f"arrays for the figures, e.g. RUN_DIR/{layout.ARTIFACTS} (default: not written)",
    )
    p.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="the dataset's classifier (vaebench classifier --out), for the picture-quality "
        "metrics (default: none, and those metrics are null)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a metrics file of another run or other settings in --out; without it "
        "that is refused, and one of this run with the same settings is kept",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="K=4 on 64 test images and 500 train images, to check that everything runs",
    )


def _results_argument(p: argparse.ArgumentParser, after: str) -> None:
    p.add_argument("--results", required=True, type=Path, help=f"results/STUDY, {after}")


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        required=True,
        choices=DATASETS,
        type=named("dataset", DATASETS),
        help="dataset to fetch and check",
    )
    p.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help="where it is looked for and downloaded to (default: %(default)s)",
    )
    p.add_argument("--out", required=True, type=Path, help="manifest JSON to write (sha256, source, sizes)")


def _classifier_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        required=True,
        choices=DATASETS,
        type=named("dataset", DATASETS),
        help="dataset to train the classifier on",
    )
    p.add_argument(
        "--data-dir", default=None, help=f"where the dataset is looked for (default: {DEFAULT_DATA_DIR})"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="weights to write, e.g. resources/quality/DATASET.pt; its accuracy and reference values go "
        "beside it, as DATASET.json",
    )
    p.add_argument(
        "--n-test",
        type=POSITIVE,
        default=None,
        help="the test images the evaluations score (default: all); the reference values use the "
        "same N as theirs",
    )
    p.add_argument(
        "--epochs",
        type=NON_NEGATIVE,
        default=None,
        help="training epochs (default: the dataset's recipe in vaebench.classifier.RECIPES)",
    )
    p.add_argument(
        "--seed", type=SEED, default=0, help="seed of the weights, batch order and shifts (default: 0)"
    )
    _threads_argument(p)


def _baselines_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        required=True,
        choices=DATASETS,
        type=named("dataset", DATASETS),
        help="the dataset of the study",
    )
    p.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help="where the dataset is looked for (default: %(default)s)",
    )
    p.add_argument(
        "--n-test",
        type=POSITIVE,
        default=None,
        help="score the first N test images, as the evaluations did (default: all)",
    )
    p.add_argument(
        "--out", required=True, type=Path, help=f"the JSON file, e.g. results/STUDY/{layout.BASELINES}"
    )


def _aggregate_arguments(p: argparse.ArgumentParser) -> None:
    _results_argument(p, "holding FAMILY/zDIM/seedSEED/ runs")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"where {', '.join(layout.TABLES)} go (default: --results)",
    )
    p.add_argument(
        "--expected",
        nargs="*",
        default=[],
        metavar="RUN_DIR",
        help="run directories the config asks for; those absent on disk become rows with status 'missing'",
    )


def _figures_arguments(p: argparse.ArgumentParser) -> None:
    _results_argument(p, "after `vaebench aggregate`")
    p.add_argument(
        "--out-dir", type=Path, default=None, help="where NAME.png and NAME.svg go (default: RESULTS/figures)"
    )
    _reference_arguments(p)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    _results_argument(p, "after `vaebench aggregate` and `vaebench figures`")
    p.add_argument("--out", required=True, type=Path, help="the HTML file, e.g. report/STUDY/index.html")
    p.add_argument(
        "--config", type=Path, default=None, help="the study config (YAML), to show what it asked for"
    )
    p.add_argument(
        "--figures",
        type=Path,
        default=None,
        help="folder of the figures (default: RESULTS/figures); it must exist",
    )
    p.add_argument(
        "--captions",
        type=Path,
        default=captions.DEFAULT_DIR,
        help="folder of the figures' captions, NAME.rst, shared with Snakemake's report (default: "
        "%(default)s, from the repository root)",
    )
    _reference_arguments(p)
    p.add_argument(
        "--index",
        type=Path,
        default=None,
        help="also rewrite this index of studies (e.g. report/index.html), listing every "
        "report in its folder's subfolders",
    )


def _reference_arguments(p: argparse.ArgumentParser) -> None:
    """--manifest and --quality: the reference files the figures and the report read beside the tables."""
    p.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="the dataset manifest of `vaebench data` (resources/DATASET.json), for the split sizes",
    )
    p.add_argument(
        "--quality",
        type=Path,
        default=None,
        help="picture-quality references of the test images (resources/quality/DATASET.json)",
    )


def _readme_arguments(p: argparse.ArgumentParser) -> None:
    _results_argument(p, "after `vaebench aggregate`")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the study config (YAML) whose budget the limits quote (default: RESULTS/study.yaml if present)",
    )
    p.add_argument(
        "--benchmarks",
        type=Path,
        default=None,
        help="the study's Snakemake benchmarks folder (benchmarks/), to add the job time per stage",
    )
    _reference_arguments(p)


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--before", required=True, type=Path, help="the earlier study's results, e.g. results/OLD")
    p.add_argument("--after", required=True, type=Path, help="the later study's results, e.g. results/STUDY")


# every stage's arguments, defined here torch-free, so that parsing (and --help) imports no stage module
ARGUMENTS = {
    "data": _data_arguments,
    "classifier": _classifier_arguments,
    "train": _train_arguments,
    "select": _select_arguments,
    "warm": _warm_arguments,
    "evaluate": _evaluate_arguments,
    "aggregate": _aggregate_arguments,
    "baselines": _baselines_arguments,
    "figures": _figures_arguments,
    "report": _report_arguments,
    "compare": _compare_arguments,
    "readme": _readme_arguments,
}


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; only the chosen stage's arguments are added. It imports no stage module (and so neither
    torch nor pandas)."""
    parser = _Parser(prog="vaebench", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text in STAGES.items():
        stage_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == stage:
            ARGUMENTS[name](stage_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one stage; a user error (bad arguments included) is one line on stderr and the error's status."""
    argv = sys.argv[1:] if argv is None else argv
    stage = argv[0] if argv and argv[0] in STAGES else None
    try:
        args = build_parser(stage).parse_args(argv)
        return importlib.import_module(f"vaebench.{args.stage}").run(args)
    except VaebenchError as err:
        print(f"vaebench{f' {stage}' if stage else ''}: error: {err}", file=sys.stderr)
        return err.exit_status


if __name__ == "__main__":
    sys.exit(main())
