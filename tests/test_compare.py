"""`vaebench compare` on two synthetic studies: the values and changes, the rankings' tau, the claims."""

import pytest
import yaml
from synthetic_runs import aggregate_cli, set_likelihood, study_of, write_synthetic_results

from vaebench import compare
from vaebench.cli import main
from vaebench.words import label

FAMILIES = ("bernoulli", "gaussian", "logit_normal")


def test_compare_gives_each_familys_change_the_rankings_tau_and_the_claims(tmp_path, capsys):
    before = write_synthetic_results(
        tmp_path / "before", families=FAMILIES, latent_dims=(8,), diverged=None, missing=None
    )
    after = write_synthetic_results(
        tmp_path / "after",
        families=(*FAMILIES, "squared_error"),
        latent_dims=(8,),
        diverged=None,
        missing=None,
    )
    for seed in after.seeds:  # the worst family before is the best after: the ranking's order turns
        set_likelihood(after.run_dir("bernoulli", 8, seed), bpd_disc=0.5)
    design = {"losses": list(FAMILIES), "train": {"epochs": 6, "batch_size": 128}, "evaluate": {"k": 100}}
    (before.results / "study.yaml").write_text(yaml.safe_dump({**design, "budget": "an hour"}))
    later = {**design, "losses": [*FAMILIES, "squared_error"], "train": {"epochs": 150, "batch_size": 128}}
    later["selection"] = {"epochs": 30}
    (after.results / "study.yaml").write_text(yaml.safe_dump({**later, "budget": "a day"}))
    found = compare.changes(study_of(before), study_of(after))
    # the settings the designs differ in, and nothing the machine chose (the budget)
    assert found.setup == [
        ("losses", "3 families", "4 families (added squared_error)"),
        ("selection.epochs", "–", "30"),
        ("train.epochs", "6", "150"),
    ]
    values = found.values.set_index("family")
    old = study_of(before).stat("bernoulli", 8, "bpd_disc")["mean"]
    assert values.loc["bernoulli", "before"] == pytest.approx(old)
    assert values.loc["bernoulli", "change"] == pytest.approx(0.5 - old)
    assert values.loc["squared_error", "after"] > 0 and values["before"].isna().sum() == 1  # new in after
    # bernoulli moved from last to first, the other two kept their order: 1 concordant pair of 3
    assert set(found.taus) == {8} and found.taus[8] == pytest.approx(-1 / 3)
    verdicts = found.verdicts.set_index("claim")
    # the literal squared error was not run before: its claims were not testable, and now they are
    assert verdicts.loc["BCE gives a nicer latent space", "before"] == "not testable here"
    assert verdicts.loc["BCE gives a nicer latent space", "after"] != "not testable here"
    why = f"the study has no ok runs of {label(study_of(after), 'squared_error')}"  # said beside the verdict
    assert verdicts.loc["BCE gives a nicer latent space", "evidence_before"] == why
    aggregate_cli(before), aggregate_cli(after)
    assert main(["compare", "--before", str(before.results), "--after", str(after.results)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| setting | before | after |\n|---|---|---|\n| losses | 3 families |")
    assert "| family | z = 8: before → after (change) |" in printed
    assert f"| {label(study_of(after), 'bernoulli')} | {old:.3f} → 0.500 ({0.5 - old:+.3f}) |" in printed
    assert "Kendall's tau of the two rankings" in printed and "| BCE converges quicker |" in printed
    assert f"| BCE gives a nicer latent space | not testable here: {why} |" in printed


def test_a_study_without_its_config_is_said_not_compared(tmp_path):
    before = write_synthetic_results(tmp_path / "before", families=FAMILIES, latent_dims=(8,))
    after = write_synthetic_results(tmp_path / "after", families=FAMILIES, latent_dims=(8,))
    config = {"losses": list(FAMILIES), "train": {"epochs": 9}}
    (after.results / "study.yaml").write_text(yaml.safe_dump(config))
    found = compare.changes(study_of(before), study_of(after))
    assert found.setup == [] and found.unsaved == [str(before.results)]  # not every key "changed from –"
    printed = compare.markdown(study_of(before), study_of(after), found)
    assert printed.startswith(f"Not compared: the settings of {before.results}, which has no study.yaml.")
