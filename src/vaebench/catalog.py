"""The output families as every stage sees them, torch-free: id, order, label, style and properties.

One entry per family, in the order of every table and figure (related families next to each other).
`families.py` holds the math, one class per family; at import it checks that its registry and this
catalog name the same families with the same properties. Adding a family is its class there and
its entry here.

A "family" is what the CLI flag `--loss` and the workflow's `losses` key and `{loss}` wildcard name:
the user picks a reconstruction loss, the code scores the output distribution it is the
negative log of. Everything inside the package says family.
"""

from dataclasses import dataclass
from typing import Literal

Scale = Literal["none", "fixed", "shared", "per_pixel"]


@dataclass(frozen=True)
class FamilyEntry:
    """What the torch-free stages (config, aggregate, figures, report) need to know about a family."""

    id: str
    label: str
    color: str  # related families share a hue
    marker: str
    scale: Scale  # "none": the family has no scale parameter; "fixed": a constant or a setting, not learned
    has_cdf: bool  # calibration (PIT, coverage) needs the CDF
    real_line: bool  # support is the whole real line: the edge bins v = 0 and 255 extend to -inf / +inf
    discrete: bool = False  # trained and scored on the 8-bit bins: its density is P(bin) * 256^D
    scored_as: str | None = None  # scored through another family's density (BCE read as CB)
    everyday_loss: str | None = None  # the loss its negative log-likelihood equals up to a constant
    distribution: str = ""  # shared by the families that differ only in their scale ("gaussian"); "" if none
    # a fixed scale's training setting (TrainConfig field, config key); None for a constant: the literal loss
    scale_setting: str | None = None

    def __post_init__(self):
        if self.scale_setting is not None and not self.fixed_scale:
            raise ValueError(f"{self.id}: only a fixed scale names a scale_setting")

    @property
    def fixed_scale(self) -> bool:
        return self.scale == "fixed"

    @property
    def learned_scale(self) -> bool:
        """A scale fitted to the data (per pixel or one shared): the family has a predictive std."""
        return self.scale in ("shared", "per_pixel")

    @property
    def linestyle(self) -> str:
        return "--" if self.fixed_scale else "-"


CATALOG: tuple[FamilyEntry, ...] = (
    FamilyEntry(
        "bernoulli",
        "bernoulli (read as CB)",
        "#6baed6",
        "o",
        "none",
        has_cdf=True,
        real_line=False,
        scored_as="continuous_bernoulli",
        everyday_loss="binary cross-entropy",
    ),
    FamilyEntry(
        "continuous_bernoulli", "continuous Bernoulli", "#08519c", "s", "none", has_cdf=True, real_line=False
    ),
    FamilyEntry(
        "squared_error",
        "squared error (gaussian, sigma^2 = 1/2)",
        "#fdd0a2",
        "d",
        "fixed",
        has_cdf=True,
        real_line=True,
        everyday_loss="squared error",
        distribution="gaussian",
    ),
    FamilyEntry(
        "gaussian_fixed",
        "gaussian, tuned fixed sigma",
        "#f4a04e",
        "D",
        "fixed",
        has_cdf=True,
        real_line=True,
        distribution="gaussian",
        scale_setting="sigma",
    ),
    FamilyEntry(
        "gaussian",
        "gaussian, per-pixel sigma",
        "#e6550d",
        "^",
        "per_pixel",
        has_cdf=True,
        real_line=True,
        distribution="gaussian",
    ),
    FamilyEntry(
        "gaussian_shared",
        "gaussian, shared sigma (sigma-VAE)",
        "#8c2d04",
        "v",
        "shared",
        has_cdf=True,
        real_line=True,
        distribution="gaussian",
    ),
    FamilyEntry(
        "absolute_error",
        "absolute error (laplace, b = 1)",
        "#c7e9c0",
        "d",
        "fixed",
        has_cdf=True,
        real_line=True,
        everyday_loss="absolute error",
        distribution="laplace",
    ),
    FamilyEntry(
        "laplace_fixed",
        "laplace, tuned fixed b",
        "#7cc47f",
        "<",
        "fixed",
        has_cdf=True,
        real_line=True,
        distribution="laplace",
        scale_setting="laplace_b",
    ),
    FamilyEntry(
        "laplace",
        "laplace, per-pixel b",
        "#238b45",
        ">",
        "per_pixel",
        has_cdf=True,
        real_line=True,
        distribution="laplace",
    ),
    FamilyEntry("logit_normal", "logit-normal", "#9e9ac8", "P", "per_pixel", has_cdf=True, real_line=False),
    FamilyEntry("logit_laplace", "logit-Laplace", "#54278f", "X", "per_pixel", has_cdf=True, real_line=False),
    FamilyEntry("beta", "beta", "#e7298a", "h", "none", has_cdf=True, real_line=False),
    FamilyEntry(
        "discretized_logistic",
        "discretized logistic",
        "#252525",
        "p",
        "per_pixel",
        has_cdf=True,
        real_line=True,
        discrete=True,
    ),
)
FAMILY_IDS: tuple[str, ...] = tuple(entry.id for entry in CATALOG)
BY_ID: dict[str, FamilyEntry] = {entry.id: entry for entry in CATALOG}


def family_order(families) -> list[str]:
    """Catalog families in catalog order, then any others alphabetically."""
    families = set(families)
    return [f for f in FAMILY_IDS if f in families] + sorted(families - set(FAMILY_IDS))


def label(family: str) -> str:
    """The display label of a family; its id where the catalog does not know it."""
    return BY_ID[family].label if family in BY_ID else family


def with_everyday_loss(loss: str) -> str | None:
    """The catalog family whose negative log-likelihood is `loss` ('squared error', ...), if any."""
    return next((e.id for e in CATALOG if e.everyday_loss == loss), None)
