"""The figures from synthetic runs: every figure written, placeholders that say why, stable styles, bytes."""

import contextlib
import io
import subprocess
import sys
import xml.etree.ElementTree as ET

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from synthetic_runs import study_of, write_synthetic_results

from vaebench import captions, figures, results
from vaebench.catalog import FAMILY_IDS
from vaebench.cli import main
from vaebench.figures import DRAW, NoData, family_styles
from vaebench.results import Study


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
    study = write_synthetic_results(
        tmp_path_factory.mktemp("sparse") / "results" / "mnist5k",
        families=("bernoulli", "gaussian_fixed", "beta"),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    return study, build(study.results, study.expected)


def test_every_figure_is_written_as_png_and_svg(full):
    for name in captions.FIGURES:
        image = matplotlib.image.imread(full.results / "figures" / f"{name}.png")
        assert image.shape[0] > 50 and image.shape[1] > 300
        assert ET.parse(full.results / "figures" / f"{name}.svg").getroot().tag.endswith("svg")


def test_figures_without_data_say_why(sparse, tmp_path):
    study, printed = sparse
    for name in ("latent_scatter", "std_maps"):
        assert f"{name}: not drawn" in printed
        assert (study.results / "figures" / f"{name}.png").exists()
    assert "calibration: not drawn" not in printed  # every family with a CDF: fixed scales and none included
    assert "significance: not drawn" not in printed  # one seed: the test images alone are resampled
    older = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("bernoulli", "gaussian"),
        latent_dims=(8,),
        seeds=(0,),
        per_image=False,
    )
    with pytest.raises(NoData, match="no pair of families could be tested"):
        DRAW["significance"](study_of(older))


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
    code = (
        "import sys, vaebench.captions; print(sorted({'torch', 'matplotlib', 'pandas'} & sys.modules.keys()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_damaged_artifacts_file_is_a_one_line_error(tmp_path, capsys):
    study = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("gaussian",),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    (study.run_dir("gaussian", 8, 0) / "artifacts.npz").write_bytes(b"PK\x03\x04 truncated")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["aggregate", "--results", str(study.results)]) == 0
        assert main(["figures", "--results", str(study.results)]) == 2
    err = capsys.readouterr().err
    assert "artifacts.npz is unreadable" in err and err.count("\n") == 1


def test_figures_need_the_tables_first(tmp_path, capsys):
    assert main(["figures", "--results", str(tmp_path)]) == 2
    assert "run `vaebench aggregate" in capsys.readouterr().err


@pytest.fixture
def drawn():
    """Draw one figure of a study and close it afterwards: figure(name, study) -> the matplotlib figure."""
    made = []

    def draw(name: str, study: Study):
        made.append(DRAW[name](study))
        return made[-1]

    yield draw
    for fig in made:
        plt.close(fig)


def test_figure_1_has_the_baselines_and_the_uniform_density_as_reference_lines(full, drawn):
    study = Study.load(full.results)
    fig = drawn("bpd_vs_latent", study)
    levels = [
        {round(line.get_ydata()[0], 6) for line in ax.get_lines() if len(set(line.get_ydata())) == 1}
        for ax in fig.axes[:2]
    ]
    expected = {round(row["bpd_disc"], 6) for row in study.baseline_rows if row["id"] != "uniform"}
    assert expected <= levels[0] and results.UNIFORM_BPD not in levels[0]
    assert expected | {results.UNIFORM_BPD} <= levels[1]  # the dequantized panel: 8 bits/dim is uniform noise


def test_each_latent_panel_has_its_own_scale(full, drawn):
    study = Study.load(full.results)
    arrays = study.artifacts("bernoulli", 2)[1]
    arrays["latent_mu"] = arrays["latent_mu"] * 20  # one family spread 20 times wider than the others
    fig = drawn("latent_scatter", study)
    widths = {ax.get_title().split("\n")[0]: np.ptp(ax.get_xlim()) for ax in fig.axes if ax.get_visible()}
    wide, narrow = widths[study.labels["bernoulli"]], widths[study.labels["gaussian"]]
    assert wide / narrow == pytest.approx(20, rel=0.3)


def test_reconstructions_and_samples_show_the_median_image_where_it_differs(tmp_path, drawn):
    synthetic = write_synthetic_results(
        tmp_path / "mnist5k",
        families=("gaussian", "logit_normal"),
        latent_dims=(8,),
        seeds=(0,),
        diverged=None,
        missing=None,
    )
    build(synthetic.results, synthetic.expected)
    study = Study.load(synthetic.results)
    for name in ("reconstructions", "samples"):
        rows = [t.get_text() for t in drawn(name, study).axes[0].get_yticklabels()]
        assert f"{study.labels['logit_normal']}: median" in rows
        assert f"{study.labels['gaussian']}: median" not in rows


def test_picture_quality_figures_say_why_without_quality_numbers(full, drawn):
    study = Study.load(full.results)
    assert drawn("quality_vs_likelihood", study).axes and drawn("picture_quality", study).axes
    study.ok = study.ok.drop(columns=list(results.QUALITY))
    for name in ("quality_vs_likelihood", "picture_quality"):
        with pytest.raises(NoData, match="picture quality was not measured"):
            DRAW[name](study)


def test_the_cost_figure_is_compact_and_has_no_whiskers_with_one_seed(sparse, full, drawn):
    one_seed = drawn("cost", Study.load(sparse[0].results))
    assert one_seed.get_size_inches()[1] * figures.DPI < 400  # 3 bars
    assert "one seed: no whiskers" in one_seed.texts[0].get_text()
    assert not any(line for ax in one_seed.axes[:2] for line in ax.get_lines())  # error bars are lines
    three = drawn("cost", Study.load(full.results))
    assert "whiskers: fastest to slowest seed" in three.texts[0].get_text()
    assert any(ax.get_lines() for ax in three.axes[:2])
