"""The study's findings as plain text: sentences built by fixed rules over the analysis of one study.

Three lists, in the order of the page: `verdict` (what to use, right after the question; `use`),
`limits` (what not to trust in this run, each line only when it applies; `trust`) and `findings` (the
details; `details`, with the seed post's claims in `seed_claims`). The decisions (how sure a difference
is, who leads, what still rose, what falls short of the protocol) are `vaebench.analysis`'s; these rules
put them into words. A finding is plain text without markup: the HTML report escapes it and prints its
title in bold; a README or a terminal can print `str(finding)`.
"""

from vaebench.findings.details import findings
from vaebench.findings.finding import Finding
from vaebench.findings.trust import limits
from vaebench.findings.use import verdict

__all__ = ["Finding", "findings", "limits", "verdict"]
