"""The run layout: run directories parse back to their identity, and the wildcards match what they name."""

import re
from pathlib import Path

import pytest

from vaebench import layout
from vaebench.catalog import FAMILY_IDS
from vaebench.settings import DATASETS


@pytest.mark.parametrize("loss, dim, seed", [("gaussian", 2, 0), ("logit_laplace", 32, 17)])
def test_a_run_directory_parses_back_to_its_identity(loss, dim, seed):
    path = Path("results") / "mnist" / layout.run_dir(loss, dim, seed)
    assert layout.parse_run_dir(path) == (loss, dim, seed)


@pytest.mark.parametrize(
    "path", ["gaussian/z2", "gaussian/2/seed0", "gaussian/z2/seedx", "gaus-sian/z2/seed0"]
)
def test_other_paths_are_no_run(path):
    assert layout.parse_run_dir(path) is None


def test_a_per_image_column_parses_back_to_its_run():
    column = layout.per_image_column("bpd_disc", "logit_laplace", 16, 2)
    assert column == "bpd_disc/logit_laplace/z16/seed2"
    assert layout.parse_per_image_column(column) == ("bpd_disc", "logit_laplace", 16, 2)
    for other in ("bpd_disc", "bpd_disc/gaussian/z2", "/gaussian/z2/seed0", "image", "a/b/gaussian/z2/seed0"):
        assert layout.parse_per_image_column(other) is None


def test_find_run_dirs_lists_only_runs(tmp_path):
    for name in ("gaussian/z2/seed0", "beta/z16/seed3", "gaussian/z2/notes", "selection/gaussian/lr0.001"):
        (tmp_path / name).mkdir(parents=True)
    assert [p.relative_to(tmp_path).as_posix() for p in layout.find_run_dirs(tmp_path)] == [
        "beta/z16/seed3",
        "gaussian/z2/seed0",
    ]


def test_the_wildcards_match_the_names_they_stand_for_and_no_other():
    full = {name: re.compile(f"(?:{pattern})") for name, pattern in layout.WILDCARDS.items()}
    assert all(full["loss"].fullmatch(family) for family in FAMILY_IDS)
    assert all(full["dataset"].fullmatch(dataset) for dataset in DATASETS)
    assert not full["loss"].fullmatch("gausian") and not full["dataset"].fullmatch("mnist6k")
    assert full["point"].fullmatch("lr0.001-sigma0.1") and not full["point"].fullmatch("round0.json")
    assert not full["point"].fullmatch("lr0.001/run.json")


@pytest.mark.parametrize(
    "settings", [{"lr": 0.001}, {"lr": 1e-05, "laplace_b": 0.025}, {"lr": 3, "sigma": 0.2}]
)
def test_a_grid_point_is_named_by_its_settings_and_read_back(settings):
    name = layout.point_name(settings)
    assert layout.parse_point(name) == settings and "/" not in name
    assert name == layout.point_name(layout.parse_point(name))


def test_a_name_that_is_no_grid_point_is_refused():
    with pytest.raises(ValueError, match="'lr0.001-sigma' is not a grid point's name"):
        layout.parse_point("lr0.001-sigma")
