"""The figures from synthetic runs: every figure written, placeholders that say why, stable styles, bytes."""

import contextlib
import io
import subprocess
import sys
import xml.etree.ElementTree as ET

import matplotlib.image
import pytest
from synthetic_runs import write_synthetic_results

from vaebench import captions, figures
from vaebench.catalog import FAMILY_IDS
from vaebench.cli import main
from vaebench.figures import DRAW, family_styles


def build(results, expected, *figure_args: str) -> str:
    """aggregate, then figures through the CLI: what the figures stage printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["aggregate", "--results", str(results), "--expected", *map(str, expected)]) == 0
        assert main(["figures", "--results", str(results), *figure_args]) == 0
    return printed.getvalue()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """3 families x latent dims 2 and 8 x 3 seeds, one diverged and one missing run: data for every figure."""
    study = write_synthetic_results(tmp_path_factory.mktemp("full") / "results" / "mnist5k")
    printed = build(study.results, study.expected)
    assert "not drawn" not in printed
    return study


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """One seed, latent dimension 8, no family with a learned scale, beta without a discretized value."""
    study = write_synthetic_results(tmp_path_factory.mktemp("sparse") / "results" / "mnist5k",
                                    families=("bernoulli", "gaussian_fixed", "beta"), latent_dims=(8,),
                                    seeds=(0,), diverged=None, missing=None)
    return study, build(study.results, study.expected)


def test_every_figure_is_written_as_png_and_svg(full):
    for name in captions.FIGURES:
        image = matplotlib.image.imread(full.results / "figures" / f"{name}.png")
        assert image.shape[0] > 50 and image.shape[1] > 300
        assert ET.parse(full.results / "figures" / f"{name}.svg").getroot().tag.endswith("svg")


def test_figures_without_data_say_why(sparse):
    study, printed = sparse
    for name in ("latent_scatter", "std_maps", "calibration", "significance"):
        assert f"{name}: not drawn" in printed
        assert (study.results / "figures" / f"{name}.png").exists()


def test_the_same_results_give_byte_identical_figures(sparse, tmp_path):
    study, _ = sparse
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["figures", "--results", str(study.results), "--out-dir", str(tmp_path)]) == 0
    for name in captions.FIGURES:
        for ext in ("png", "svg"):
            again = (tmp_path / f"{name}.{ext}").read_bytes()
            assert again == (study.results / "figures" / f"{name}.{ext}").read_bytes(), f"{name}.{ext}"


def test_family_styles_are_distinct_and_independent_of_the_study():
    every = family_styles([*FAMILY_IDS, "something_new", "another"])
    assert len({(s.color, s.marker, s.linestyle) for s in every.values()}) == len(every)
    assert len({s.color for s in every.values()}) == len(every)
    assert family_styles(["beta", "gaussian"]) == {f: every[f] for f in ("beta", "gaussian")}


def test_the_figure_names_have_one_home_that_imports_no_plotting():
    assert set(DRAW) == set(captions.FIGURES) and len(set(captions.FIGURES)) == len(captions.FIGURES)
    assert figures.FIGURES is captions.FIGURES
    code = ("import sys, vaebench.captions; "
            "print(sorted({'torch', 'matplotlib', 'pandas'} & sys.modules.keys()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_damaged_artifacts_file_is_a_one_line_error(tmp_path, capsys):
    study = write_synthetic_results(tmp_path / "mnist5k", families=("gaussian",), latent_dims=(8,),
                                    seeds=(0,), diverged=None, missing=None)
    (study.run_dir("gaussian", 8, 0) / "artifacts.npz").write_bytes(b"PK\x03\x04 truncated")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["aggregate", "--results", str(study.results)]) == 0
        assert main(["figures", "--results", str(study.results)]) == 2
    err = capsys.readouterr().err
    assert "artifacts.npz is unreadable" in err and err.count("\n") == 1


def test_figures_need_the_tables_first(tmp_path, capsys):
    assert main(["figures", "--results", str(tmp_path)]) == 2
    assert "run `vaebench aggregate" in capsys.readouterr().err
