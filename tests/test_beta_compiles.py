"""Beta's family math compiles and gives the numbers of eager evaluation. Alone in its file: its kernel takes
minutes to compile, so the test runner (pytest-xdist, --dist loadfile) starts it early, beside the rest."""

import pytest
from eval_models import compiled_matches_eager

from vaebench.families import FAMILIES


@pytest.mark.slow
def test_beta_compiles_and_matches_eager(tmp_path):
    """Beta's fixed-depth continued fraction compiles (static shapes, no host sync): one shape, compiled for
    minutes as its kernel is long, the numbers of eager evaluation."""
    assert FAMILIES["beta"].not_compilable is None
    compiled_matches_eager("beta", tmp_path, [(16, (16,))])
