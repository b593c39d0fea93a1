"""`vaebench figures`: the comparison figures (PNG and SVG) from a results directory alone.

Reads metrics.csv / summary.csv / tests.csv (from `vaebench aggregate`) and each run's
history.csv and artifacts.npz, through `vaebench.results.Study`. Every figure is always written:
where a study has nothing to show (no latent dimension 2, no family with a learned scale, too
few seeds for tests) the file says why, so the Snakemake report never meets a missing file. One
family order, colour, marker and line style (`family_styles`) is shared by every figure; image
grids take the lowest seed with an ok run. The figures' names and order are `captions.FIGURES`
(the Snakefile reads them too), their captions workflow/report/NAME.rst. The draw functions live by
topic: `likelihood`, `pictures`, `quality`, `latent` and `cost`, with what they share in `style`.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import seaborn as sns  # noqa: E402

from vaebench.captions import FIGURES  # noqa: E402
from vaebench.figures.cost import cost  # noqa: E402
from vaebench.figures.latent import latent_scatter  # noqa: E402
from vaebench.figures.likelihood import bpd_vs_latent, learning_curves, significance  # noqa: E402
from vaebench.figures.pictures import reconstructions, samples, std_maps  # noqa: E402
from vaebench.figures.quality import calibration, picture_quality, quality_vs_likelihood  # noqa: E402
from vaebench.figures.style import DPI, NoData, family_styles  # noqa: E402
from vaebench.results import Study  # noqa: E402
from vaebench.utils import atomic_write  # noqa: E402

__all__ = ["DRAW", "FIGURES", "NoData", "draw_all", "family_styles", "run"]

DRAW = {  # name -> draw function; the names and their order are captions.FIGURES
    "bpd_vs_latent": bpd_vs_latent,
    "learning_curves": learning_curves,
    "reconstructions": reconstructions,
    "samples": samples,
    "quality_vs_likelihood": quality_vs_likelihood,
    "picture_quality": picture_quality,
    "latent_scatter": latent_scatter,
    "std_maps": std_maps,
    "calibration": calibration,
    "significance": significance,
    "cost": cost,
}
if set(DRAW) != set(FIGURES):
    raise ImportError(
        f"figures.DRAW and captions.FIGURES disagree: draw functions without a name "
        f"{sorted(set(DRAW) - set(FIGURES))}, names without a draw function "
        f"{sorted(set(FIGURES) - set(DRAW))}"
    )


def placeholder(name: str, reason: str):
    fig, ax = plt.subplots(figsize=(7, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{name}: not drawn\n{reason}", ha="center", va="center", wrap=True, fontsize=10)
    return fig


def draw_all(study: Study, out_dir: Path) -> dict[str, str]:
    """Write every figure as NAME.png and NAME.svg; return {name: reason} for those drawn as placeholders."""
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped = {}
    # svg.hashsalt: the SVGs' element ids are hashes of their content, not random: SVGs repeat byte for byte
    rc = {"svg.fonttype": "none", "svg.hashsalt": "vaebench", "figure.dpi": DPI}
    with sns.axes_style("ticks"), plt.rc_context(rc):
        for name in FIGURES:
            try:
                fig = DRAW[name](study)
            except NoData as reason:
                skipped[name] = str(reason)
                fig = placeholder(name, str(reason))
            for ext in ("png", "svg"):
                atomic_write(
                    out_dir / f"{name}.{ext}",
                    lambda tmp, ext=ext, fig=fig: fig.savefig(
                        tmp, format=ext, dpi=DPI, bbox_inches="tight", metadata=_metadata(ext)
                    ),
                )
            plt.close(fig)
    return skipped


def _metadata(ext: str) -> dict:
    """No creation dates: the same results give byte-identical figures."""
    return {"Date": None} if ext == "svg" else {"Software": None}


def run(args: argparse.Namespace) -> int:
    out_dir = args.out_dir or args.results / "figures"
    skipped = draw_all(Study.load(args.results, args.manifest, args.quality), out_dir)
    for name, reason in skipped.items():
        print(f"{name}: not drawn ({reason})")
    print(f"{len(FIGURES)} figures (PNG and SVG) -> {out_dir}")
    return 0
