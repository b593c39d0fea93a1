"""The command line's value types: each parses one argument or refuses it in one line ("must be ..., got X",
or a did-you-mean for a name), so `vaebench STAGE` never starts on a bad value."""

import argparse
import math
from collections.abc import Callable

from vaebench.errors import VaebenchError, unknown_name
from vaebench.settings import MAX_SEED
from vaebench.utils import check_device


def checked(convert: Callable[[str], float], ok: Callable[[float], bool], requirement: str):
    """An argparse type: `convert`, then refuse a value that is not `ok` ("must be REQUIREMENT, got X")."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return value

    return parse


POSITIVE = checked(int, lambda v: v >= 1, "a positive integer")
THREAD_COUNT = checked(int, lambda v: v >= 0, "0 (torch's own default) or a positive integer")
NON_NEGATIVE = checked(int, lambda v: v >= 0, "0 or a positive integer")
SEED = checked(int, lambda v: 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED}")
POSITIVE_NUMBER = checked(float, lambda v: math.isfinite(v) and v > 0, "a finite positive number")
NON_NEGATIVE_NUMBER = checked(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
UNIT_FACTOR = checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def named(kind: str, allowed: tuple[str, ...]):
    """An argparse type for a name from `allowed`, refused with a did-you-mean."""

    def parse(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(str(unknown_name(kind, text, allowed)))
        return text

    return parse


def device(text: str) -> str:
    try:
        return check_device(text)
    except VaebenchError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
