"""Choosing the training settings on a validation split: the split, the grid, the choice, the epoch kept,
gaussian_shared's sigma over the whole training split, and the one-line errors."""

import csv
import json
import math
import re

import pytest
import torch

from vaebench import layout
from vaebench import train as training
from vaebench.catalog import FAMILY_IDS
from vaebench.cli import main
from vaebench.data import load_dataset, split_validation, to_unit_interval
from vaebench.errors import DatasetError, VaebenchError
from vaebench.models import load_model
from vaebench.seeding import STREAM_TRAIN_SCALE, stream_generator
from vaebench.select import choose, decide, grid
from vaebench.train import EVAL_BATCH, TrainConfig, fit_shared_scale, train
from vaebench.utils import read_json, write_json

SELECTION = {"lr": [1e-3, 3e-3], "sigma": [0.05, 0.1, 0.2], "laplace_b": [0.02, 0.05]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def test_the_validation_split_is_fixed_disjoint_and_complete():
    images = torch.arange(50, dtype=torch.uint8).reshape(50, 1, 1, 1)
    rest, held_out = split_validation(images, 10)
    again_rest, again_held_out = split_validation(images, 10)
    assert torch.equal(held_out, again_held_out) and torch.equal(rest, again_rest)
    assert len(held_out) == 10 and len(rest) == 40
    assert sorted(rest.flatten().tolist() + held_out.flatten().tolist()) == list(range(50))
    assert held_out.flatten().tolist() != list(range(10))  # a permutation, not the first images
    assert len(split_validation(images, 0)[1]) == 0
    with pytest.raises(DatasetError, match="below the 50 training images"):
        split_validation(images, 50)


def test_the_grid_adds_a_fixed_scale_only_to_the_families_that_have_one():
    grids = {family: grid(family, SELECTION) for family in FAMILY_IDS}
    assert grids["gaussian_fixed"] == [
        {"lr": lr, "sigma": s} for lr in SELECTION["lr"] for s in SELECTION["sigma"]
    ]
    assert len(grids["laplace_fixed"]) == 4 and all(
        set(p) == {"lr", "laplace_b"} for p in grids["laplace_fixed"]
    )
    for family in set(FAMILY_IDS) - {"gaussian_fixed", "laplace_fixed"}:
        assert grids[family] == [{"lr": 1e-3}, {"lr": 3e-3}], family


def record(lr, sigma, val, status="ok"):
    return {"loss": "gaussian_fixed", "lr": lr, "sigma": sigma, "val_elbo_nats": val, "status": status}


def test_the_choice_is_the_best_finished_validation_elbo():
    records = [
        record(1e-3, 0.1, 50.0),
        record(3e-3, 0.1, 80.0),
        record(3e-3, 0.05, 900.0, status="diverged"),  # not finished: never chosen however it scored
        record(1e-3, 0.05, None),
    ]
    chosen = choose(records, "gaussian_fixed")
    assert chosen["settings"] == {"lr": 3e-3, "sigma": 0.1} and chosen["val_elbo_nats"] == 80.0
    assert len(chosen["tried"]) == 4
    with pytest.raises(VaebenchError, match="no selection run finished"):
        choose([records[2], records[3]], "gaussian_fixed")


def scored(loss, elbo_of, **scale):
    """Finished selection runs of `loss` at each learning rate of `elbo_of`, scoring its value."""
    return [
        {"loss": loss, "lr": lr, **scale, "val_elbo_nats": v, "status": "ok"} for lr, v in elbo_of.items()
    ]


def test_a_choice_inside_the_values_tried_is_final():
    decision = decide(scored("gaussian", {1e-3: 1.0, 3e-3: 2.0, 9e-3: 1.5}), "gaussian", 0, 2)
    assert decision["settings"] == {"lr": 3e-3} and decision["done"]
    assert decision["at_edge"] == [] and decision["next"] == []


def test_a_choice_at_an_edge_adds_the_next_value_of_its_progression_on_that_side():
    above = decide(scored("gaussian", {1e-4: 1.0, 1e-3: 2.0}), "gaussian", 0, 2)
    assert above["at_edge"] == ["lr"] and not above["done"] and above["next"] == [{"lr": 1e-2}]
    below = decide(scored("gaussian", {1e-3: 3.0, 3e-3: 2.0, 9e-3: 1.0}), "gaussian", 1, 2)
    assert not below["done"] and below["next"] == [{"lr": pytest.approx(1e-3 / 3)}]
    assert below["next"][0]["lr"] == float(f"{1e-3 / 3:.12g}")  # rounded, so its name stays short


def test_a_fixed_scale_at_its_edge_steps_outward_at_the_chosen_learning_rate():
    records = scored("gaussian_fixed", {1e-3: 2.0}, sigma=0.1) + scored(
        "gaussian_fixed", {1e-3: 1.0}, sigma=0.2
    )
    records += scored("gaussian_fixed", {3e-3: 0.5}, sigma=0.1)
    decision = decide(records, "gaussian_fixed", 0, 1)
    assert decision["settings"] == {"lr": 1e-3, "sigma": 0.1} and decision["at_edge"] == ["lr", "sigma"]
    assert decision["next"] == [{"lr": pytest.approx(1e-3 / 3), "sigma": 0.1}, {"lr": 1e-3, "sigma": 0.05}]


def test_the_next_points_read_back_from_the_round_name_directories_the_workflow_can_make(tmp_path):
    """The round's JSON sorts the settings (laplace_b before lr); the names must not follow that order."""
    records = scored("laplace_fixed", {1e-3: 2.0, 3e-3: 1.0}, laplace_b=0.05)
    records += scored("laplace_fixed", {1e-3: 1.0}, laplace_b=0.025)
    records += scored("laplace_fixed", {1e-3: 1.5}, laplace_b=0.1)
    round_json = write_json(tmp_path / "round0.json", decide(records, "laplace_fixed", 0, 2))
    (point,) = read_json(round_json, "not written")["next"]
    assert list(point) == ["laplace_b", "lr"]
    name = layout.point_name(point)
    assert re.fullmatch(layout.WILDCARDS["point"], name), name
    assert name == layout.point_name({"lr": point["lr"], "laplace_b": 0.05})
    assert layout.point_name(grid("laplace_fixed", SELECTION)[0]) == "lr0.001-laplace_b0.02"


def test_at_the_limit_a_choice_at_an_edge_is_final_and_says_so():
    decision = decide(scored("gaussian", {1e-3: 1.0, 1e-2: 2.0, 1e-1: 3.0}), "gaussian", 1, 1)
    assert decision["done"] and decision["next"] == []
    assert decision["at_edge"] == ["lr"] and decision["extensions"] == decision["max_extensions"] == 1
    assert decide(scored("gaussian", {1e-3: 1.0, 1e-2: 2.0}), "gaussian", 0, 0)["done"]


def test_a_run_keeps_its_epoch_with_the_best_validation_elbo(tmp_path, data_dir):
    cfg = TrainConfig(
        loss="bernoulli", latent_dim=2, epochs=4, hidden=32, lr=0.03, validation=300, data_dir=data_dir
    )
    rec = train(cfg, tmp_path, max_batches=3)  # a large learning rate: the validation ELBO does not just rise
    vals = [float(r["val_elbo_nats"]) for r in _history(tmp_path)]
    assert rec["best_epoch"] == 1 + vals.index(max(vals)) and rec["epoch_chosen_by"] == "validation ELBO"
    # the saved model is that epoch's: its validation ELBO, recomputed on the held-out images, matches
    images = split_validation(load_dataset("mnist5k", data_dir).train_images, 300)[1]
    kept = training.test_elbo(load_model(tmp_path / "model.pt"), images, cfg)["test_elbo_nats"]
    assert kept == pytest.approx(max(vals), abs=1e-5)


def _history(run):
    with open(run / "history.csv") as f:
        return list(csv.DictReader(f))


def test_without_validation_the_last_epoch_is_kept(tmp_path, data_dir):
    rec = train(
        TrainConfig(loss="gaussian", latent_dim=2, epochs=2, hidden=32, data_dir=data_dir), tmp_path, 2
    )
    assert rec["best_epoch"] == 2 and rec["epoch_chosen_by"] == "last epoch"
    assert all(r["val_elbo_nats"] == "" for r in _history(tmp_path))


def test_the_shared_sigma_is_the_maximum_likelihood_one_over_the_training_split(tmp_path, data_dir):
    cfg = TrainConfig(loss="gaussian_shared", latent_dim=2, epochs=1, hidden=32, data_dir=data_dir)
    train(cfg, tmp_path, max_batches=2)
    model = load_model(tmp_path / "model.pt")
    images = load_dataset("mnist5k", data_dir).train_images[:1500]

    def log_likelihood(model):
        """Summed density of the images with the model's sigma, at the draws fit_shared_scale makes."""
        gen = stream_generator(cfg.seed, STREAM_TRAIN_SCALE)
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(images), EVAL_BATCH):
                v = images[start : start + EVAL_BATCH]
                x = to_unit_interval(v, True, gen)
                params, _, _ = model(x, torch.randn(len(v), 2, generator=gen))
                total += model.family.log_density(params, x).double().sum().item()
        return total

    fit_shared_scale(model, images, cfg)
    sigma = model.family.loc_scale(torch.zeros(1, 1))[1].item()
    best = log_likelihood(model)
    for factor in (0.97, 1.03):  # sigma moved either way scores the same images lower
        model.family.set_sigma(torch.tensor((sigma * factor) ** 2))
        assert log_likelihood(model) < best - 1.0, factor
    assert 0.02 < sigma < 0.5 and math.isfinite(best)


def test_settings_chosen_for_another_family_are_refused_in_one_line(tmp_path, capsys):
    chosen = tmp_path / "beta.json"
    chosen.write_text(json.dumps({"loss": "beta", "settings": {"lr": 0.01}}))
    assert (
        main(["train", "--loss", "gaussian", "--selected", str(chosen), "--out", str(tmp_path / "run")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert "not for 'gaussian'" in err and "\n" not in err


def test_select_writes_the_choice_that_train_then_uses(tmp_path, data_dir, capsys):
    runs = []
    for i, lr in enumerate((1e-4, 3e-3)):
        runs.append(tmp_path / f"point{i}")
        args = [
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--validation",
            "300",
            "--lr",
            str(lr),
        ]
        assert main(["train", "--loss", "laplace_fixed", *args, "--laplace-b", "0.1", "--data-dir", data_dir,
                     "--dry-run", "--out", str(runs[-1])]) == 0  # fmt: skip
    assert main(["select", "--runs", *map(str, runs), "--out", str(tmp_path / "choice.json")]) == 0
    choice = json.loads((tmp_path / "choice.json").read_text())
    vals = [json.loads((r / "run.json").read_text())["val_elbo_nats"] for r in runs]
    assert choice["loss"] == "laplace_fixed" and choice["val_elbo_nats"] == max(vals)
    assert choice["settings"] == {"lr": (1e-4, 3e-3)[vals.index(max(vals))], "laplace_b": 0.1}
    main_run = tmp_path / "study_run"
    args = ["--latent-dim", "2", "--hidden", "32", "--data-dir", data_dir, "--dry-run"]
    assert main(["train", "--loss", "laplace_fixed", *args, "--selected", str(tmp_path / "choice.json"),
                 "--out", str(main_run)]) == 0  # fmt: skip
    trained = json.loads((main_run / "run.json").read_text())
    assert trained["lr"] == choice["settings"]["lr"] and trained["laplace_b"] == 0.1
