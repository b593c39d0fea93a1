"""`vaebench readme` on a synthetic study: the headline table from summary.csv, the report's own words for
What to use, the checks, the claims and the limits, and the job time per stage from benchmark files."""

import re

import pytest
import yaml
from synthetic_runs import DIVERGED, aggregate_cli, set_likelihood, study_of, write_synthetic_results

from vaebench import findings, readme
from vaebench.cli import main
from vaebench.findings.hold import hold
from vaebench.findings.seed_claims import claims
from vaebench.results import Study
from vaebench.words import label


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    synthetic = write_synthetic_results(tmp_path_factory.mktemp("readme") / "mnist5k")
    aggregate_cli(synthetic)
    return Study.load(synthetic.results)


def table_rows(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header starts with `first_header`, as cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_the_headline_gives_each_familys_mean_and_interval_and_bolds_the_best(study):
    text = readme.markdown(study, None)
    rows = {row[0]: row[1:] for row in table_rows(text, "family")}
    assert [label(study, f) for f in study.families] == list(rows)[: len(study.families)]
    for family in study.families:
        for dim, cell in zip(study.dims, rows[label(study, family)], strict=True):
            s = study.stat(family, dim, "bpd_disc")
            assert f"{s['mean']:.3f} ± {s['high'] - s['mean']:.3f}" in cell
    for i, dim in enumerate(study.dims):
        best = min(study.families, key=lambda f: study.stat(f, dim, "bpd_disc")["mean"])
        bold = [name for name, cells in rows.items() if cells[i].startswith("**")]
        assert bold == [label(study, best)]
    family, dim, _ = DIVERGED  # a run that is not ok is counted beside the value
    assert rows[label(study, family)][study.dims.index(dim)].endswith("(1 diverged)")
    references = [name for name in rows if name.startswith("*") and not name.startswith("**")]
    assert len(references) == len(study.baseline_rows) > 0  # the models without a latent, in italics
    uniform = next(cells for name, cells in rows.items() if "uniform" in name)
    assert uniform == ["8.000"] * len(study.dims)


def test_a_tie_with_the_best_is_marked_and_one_seed_shows_its_test_set_se(tmp_path):
    tied = write_synthetic_results(
        tmp_path / "tied", families=("logit_normal", "logit_laplace", "gaussian"), latent_dims=(8,)
    )
    for seed in tied.seeds:  # the two apart by a thousandth of a bit, far less than the seeds' spread
        set_likelihood(tied.run_dir("logit_normal", 8, seed), bpd_disc=1.5 + 0.02 * seed)
        set_likelihood(tied.run_dir("logit_laplace", 8, seed), bpd_disc=1.501 + 0.02 * (2 - seed))
        set_likelihood(tied.run_dir("gaussian", 8, seed), bpd_disc=3.0 + 0.01 * seed)
    both = study_of(tied)
    rows = {row[0]: row[1] for row in table_rows(readme.markdown(both, None), "family")}
    assert rows[label(both, "logit_normal")].startswith("**1.520 ± ")
    assert rows[label(both, "logit_laplace")].endswith(" =") and "**" not in rows[label(both, "gaussian")]
    one = write_synthetic_results(tmp_path / "one", families=("gaussian",), latent_dims=(8,), seeds=(0,))
    single = study_of(one)
    s = single.stat("gaussian", 8, "bpd_disc")
    rows = {row[0]: row[1] for row in table_rows(readme.markdown(single, None), "family")}
    assert rows[label(single, "gaussian")] == f"**{s['mean']:.3f} ± {s['se']:.3f}**"


def test_the_words_are_the_reports(study):
    """What to use, the checks, the claims and the limits are the findings the report prints, in order."""
    text = readme.markdown(study, {"budget": "two cores, one afternoon"})
    use = text[text.index("**What to use**") : text.index("**Does the verdict hold?**")]
    assert [line[2:] for line in use.splitlines() if line.startswith("- ")] == [
        f"**{f.title}** {f.text}" for f in findings.verdict(study)
    ]
    checked = re.findall(r"^- (.+?) \*\*(.+?)\*\*: ", text, re.M)
    assert checked == [(f.title, f.verdict) for f in hold(study)]
    claimed = table_rows(text, "claim")
    assert [(row[0], row[2]) for row in claimed] == [(f.title, f.verdict) for f in claims(study)]
    limits = text[text.index("**Limits**") :].splitlines()[2:]
    assert limits[0] == "- **What the budget forced:** two cores, one afternoon"  # first, as on the page
    assert len(limits) == 1 + len(findings.limits(study))


def test_how_the_runs_ended_only_where_the_runs_recorded_it(study, tmp_path):
    assert "How the runs ended" not in readme.markdown(study, None)  # written before the stopping rule
    ruled = write_synthetic_results(
        tmp_path / "mnist5k", latent_dims=(8,), diverged=None, missing=None, stop_reason="converged", epochs=4
    )
    text = readme.markdown(study_of(ruled), None)
    folded = text[text.index("<details><summary><b>How the runs ended</b>") : text.index("</details>")]
    rows = table_rows(folded, "family")
    assert rows == [[label(study, f), "8", "3 converged", "4", "4", "0", "n/a"] for f in ruled.families]


def test_a_cell_with_a_bar_stays_one_cell():
    table = readme.markdown_table(["a", "b"], [["x | y", "1"]])
    assert table.splitlines()[2] == "| x \\| y | 1 |"


def write_benchmark(path, seconds: float, max_rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
        f"{seconds}\t0:00:00\t{max_rss}\t1\t1\t1\t0\t0\t90\t{seconds}\n"
    )


def test_the_cli_adds_the_job_time_per_stage_from_the_benchmarks(study, tmp_path, capsys):
    bench = tmp_path / "benchmarks"
    name = study.results.name  # the study's name, here also its dataset's
    write_benchmark(bench / "train" / name / "bernoulli" / "z2" / "seed0.tsv", 1800, 900.5)
    write_benchmark(bench / "train" / name / "bernoulli" / "z2" / "seed1.tsv", 3600, 1000.0)
    write_benchmark(bench / "evaluate" / name / "bernoulli" / "z2" / "seed0.tsv", 720, 1500.0)
    write_benchmark(bench / "aggregate" / f"{name}.tsv", 36, 200.0)
    write_benchmark(bench / "data" / f"{name}.tsv", 3, 100.0)  # its dataset's (named as the study here)
    write_benchmark(bench / "train" / "another" / "bernoulli" / "z2" / "seed0.tsv", 7200, 5000.0)  # not ours
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({"budget": "a day"}))
    argv = ["readme", "--results", str(study.results), "--benchmarks", str(bench), "--config", str(config)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "- **What the budget forced:** a day" in printed
    times = {row[0]: row[1:] for row in table_rows(printed, "rule")}
    assert times["train"] == ["2", "1.50", "60.0", "1000"]
    assert times["evaluate"] == ["1", "0.20", "12.0", "1500"]
    assert times["aggregate"] == ["1", "0.01", "0.6", "200"]
    assert times["data"] == ["1", "0.00", "0.1", "100"]
    assert times["all of them"][:2] == ["5", "1.71"]


def test_the_job_times_are_the_studys_own_and_its_datasets_data(tmp_path):
    """A study named apart from its dataset: another study named after that dataset is not counted, the
    dataset's own jobs (data, classifier) are."""
    write_benchmark(tmp_path / "train" / "long" / "beta" / "z2" / "seed0.tsv", 60, 1.0)
    write_benchmark(tmp_path / "classifier" / "mnist5k.tsv", 120, 1.0)
    write_benchmark(tmp_path / "train" / "mnist5k" / "beta" / "z2" / "seed0.tsv", 7200, 1.0)
    write_benchmark(tmp_path / "aggregate" / "mnist5k.tsv", 7200, 1.0)
    table = readme.stage_times(tmp_path, "long", {"mnist5k"})
    times = {row[0]: row[1:3] for row in table_rows(table, "rule")}
    assert times == {"classifier": ["1", "0.03"], "train": ["1", "0.02"], "all of them": ["2", "0.05"]}


def test_benchmarks_that_are_not_there_or_not_benchmarks_are_one_line(study, tmp_path, capsys):
    argv = ["readme", "--results", str(study.results), "--benchmarks", str(tmp_path)]
    assert main(argv) != 0
    said, name = capsys.readouterr().err.strip(), study.results.name
    assert said == f"vaebench readme: error: no benchmark files (*.tsv) of study {name} under {tmp_path}"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / f"{name}.tsv").write_text("seconds\n1\n")
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is not a Snakemake benchmark" in err
