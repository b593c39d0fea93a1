"""User-facing errors: the CLI prints their message as one line and exits with the error's status."""

import difflib
from collections.abc import Iterable


class VaebenchError(Exception):
    """Base class for errors a user can cause (bad input, missing data, corrupt files)."""

    exit_status = 2


class WriteError(VaebenchError):
    """An output could not be written (disk full, no permission); what was written before is intact."""

    exit_status = 1


class DatasetError(VaebenchError):
    """A dataset is missing, corrupt, or cannot be downloaded."""


class CheckpointError(VaebenchError):
    """A model or checkpoint file is missing, truncated, or does not match the run."""


class UnknownNameError(VaebenchError, ValueError):
    """A name (family, dataset, architecture) that is not in its registry."""


def unknown_name(kind: str, name: str, allowed: Iterable[str]) -> UnknownNameError:
    """Build the one-line error for an unknown name, with a did-you-mean suggestion."""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return UnknownNameError(f"unknown {kind} '{name}'{hint} (allowed: {', '.join(allowed)})")
