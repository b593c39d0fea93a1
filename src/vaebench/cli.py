"""`vaebench <stage>`: one subcommand per pipeline stage (data -> train -> evaluate -> aggregate -> figures -> report)."""

import argparse
import importlib
import sys

from vaebench.errors import VaebenchError

STAGES = {
    "data": "fetch (if needed) and check a dataset, and write its manifest",
    "train": "fit one VAE for one (dataset, family, latent dimension, seed)",
    "evaluate": "estimate a trained model's test log-likelihood by importance sampling, and its other metrics",
    "aggregate": "collect every run's metrics into tables, summaries and pairwise tests",
    "figures": "draw the comparison figures",
    "report": "write the self-contained HTML report",
}


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; only the chosen stage's module is imported, so `vaebench train` never loads pandas."""
    parser = argparse.ArgumentParser(prog="vaebench", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text in STAGES.items():
        stage_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == stage:
            importlib.import_module(f"vaebench.{name}").add_arguments(stage_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    module = importlib.import_module(f"vaebench.{args.stage}")
    try:
        return module.run(args)
    except VaebenchError as err:
        print(f"vaebench {args.stage}: error: {err}", file=sys.stderr)
        return err.exit_status


if __name__ == "__main__":
    sys.exit(main())
