"""Numbers and names in words, as every finding and table of the report writes them.

One home for the formats, so a value reads the same in a sentence, a table cell and a caption.
"""

from vaebench import catalog, stats
from vaebench.results import Study
from vaebench.utils import finite

SETTING_NAMES = {"lr": "learning rate", "sigma": "sigma", "laplace_b": "b"}  # a chosen setting, in words


def fmt(x, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if finite(x) else "n/a"


def fmt_range(low, high, digits: int = 0) -> str:
    """'31–34', or '31' where both ends are the same; 'n/a' without values."""
    if not finite(low):
        return "n/a"
    low_text, high_text = fmt(low, digits), fmt(high, digits)
    return low_text if low_text == high_text else f"{low_text}–{high_text}"


def fmt_p(p) -> str:
    if not finite(p):
        return "not tested"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def holm_p(p) -> str:
    """'Holm p = 0.024' or 'Holm p < 0.001'."""
    text = fmt_p(p)
    return f"Holm p {text}" if text.startswith("<") else f"Holm p = {text}"


def fmt_value(metric: str, x) -> str:
    """A measure's value as the tables show it: bits/dim, accuracies and coverages (fractions) to 3 decimals,
    epochs as a whole number where it is one, other numbers to 3 significant digits."""
    if not finite(x):
        return "n/a"
    if metric.startswith(("bpd_", "coverage")) or "acc" in metric:
        return f"{x:.3f}"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def label(study: Study, family: str) -> str:
    return study.labels.get(family, catalog.label(family))


def labels(study: Study, families, sep: str = ", ") -> str:
    return sep.join(label(study, f) for f in families)


def seeds(n: int) -> str:
    return stats.count(n, "seed")


def families(n: int) -> str:
    return f"{n} {'family' if n == 1 else 'families'}"


def setting(key: str, value: float) -> str:
    """'learning rate 0.001': a chosen training setting."""
    return f"{SETTING_NAMES.get(key, key)} {value:g}"
