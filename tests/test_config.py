"""The study config: strings from `--config` are coerced, bad values stop with one clear line."""

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vaebench.config import ConfigError, check, load_schema, with_defaults
from vaebench.settings import DEFAULT_DATA_DIR, FIXED_SCALES, EvalConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = load_schema(SCHEMA_FILE)


def study(**changes):
    cfg = yaml.safe_load((ROOT / "config" / "quick.yaml").read_text())
    cfg.update(changes)
    return cfg


@pytest.mark.parametrize(
    "name", ["config/config.yaml", "config/quick.yaml", "config/fashion.yaml", ".test/config/config.yaml"]
)
def test_shipped_configs_are_valid(name):
    cfg = yaml.safe_load((ROOT / name).read_text())
    assert check(cfg, SCHEMA) == cfg


def test_strings_from_the_command_line_are_coerced():
    # what `snakemake --config latent_dims=[2,16] evaluate={k: 100}` hands over
    cfg = study(
        latent_dims=["2", "16"],
        seeds="[0, 1]",
        evaluate={"k": "100", "n_test": "null", "batch": "50"},
        train={"epochs": "3", "lr": "1e-3", "dequantize": "false", "patience": "2", "min_gain_bpd": "0.01"},
    )
    out = check(cfg, SCHEMA)
    assert out["latent_dims"] == [2, 16] and out["seeds"] == [0, 1]
    assert out["evaluate"] == {"k": 100, "n_test": None, "batch": 50}
    assert out["train"] == {
        "epochs": 3,
        "lr": 0.001,
        "dequantize": False,
        "patience": 2,
        "min_gain_bpd": 0.01,
    }


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"losses": ["contnuous_bernoulli"]},
            "config key 'losses[0]': unknown value 'contnuous_bernoulli'; "
            "did you mean 'continuous_bernoulli'?",
        ),
        ({"dataset": "mnst"}, "did you mean 'mnist'?"),
        ({"losses": []}, "config key 'losses'"),
        ({"latent_dims": ["two"]}, "config key 'latent_dims[0]'"),
        ({"evaluate": {"k": -5}}, "config key 'evaluate.k'"),
        ({"evaluate": {"k": 0}}, "config key 'evaluate.k'"),
        ({"epochs": 3}, "unknown key 'epochs'"),
        ({"seeds": [0, 0]}, "config key 'seeds'"),
        ({"budget": ""}, "config key 'budget'"),
        ({"budget": ["6 epochs"]}, "config key 'budget'"),
        # choosing settings on a validation split needs one
        (
            {"selection": {"epochs": 2, "lr": [1e-3]}, "train": {"epochs": 3}},
            "config key 'train': 'validation' is a required property",
        ),
        (
            {"selection": {"epochs": 2, "lr": [1e-3]}, "train": {"epochs": 3, "validation": 0}},
            "config key 'train.validation': 0 is less than the minimum of 1",
        ),
        (
            {"selection": {"epochs": 2, "lr": []}, "train": {"epochs": 3, "validation": 100}},
            "config key 'selection.lr'",
        ),
        # a stopping rule that cannot work
        ({"train": {"epochs": 10, "patience": 0}}, "config key 'train.patience'"),
        ({"train": {"epochs": 10, "lr_decay": 0}}, "config key 'train.lr_decay'"),
        ({"train": {"epochs": 10, "max_decays": -1}}, "config key 'train.max_decays'"),
        ({"train": {"epochs": 4, "patience": 5}}, "config key 'train.epochs': the epoch cap (4) is below"),
        (
            {
                "selection": {"epochs": 2, "lr": [1e-3]},
                "train": {"epochs": 9, "validation": 100, "patience": 3},
            },
            "config key 'selection.epochs': the epoch cap (2) is below train.patience (3)",
        ),
        (
            {
                "selection": {"epochs": 2, "lr": [1e-3], "sigma": []},
                "train": {"epochs": 3, "validation": 100},
            },
            "config key 'selection.sigma'",
        ),
        (
            {
                "selection": {"epochs": 2, "lr": [1e-3], "max_extensions": -1},
                "train": {"epochs": 3, "validation": 1},
            },
            "config key 'selection.max_extensions': -1 is less than the minimum of 0",
        ),
    ],
)
def test_bad_values_give_one_line_naming_the_key(changes, expected):
    with pytest.raises(ConfigError) as err:
        check(study(**changes), SCHEMA)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_what_a_config_leaves_out_takes_the_cli_defaults():
    minimal = {
        "dataset": "mnist5k",
        "arch": "mlp",
        "latent_dims": [2],
        "seeds": [0],
        "train": {"epochs": 9, "validation": 10},
        "evaluate": {"k": 4},
        "selection": {"epochs": 6, "lr": [1e-3]},
    }
    cfg = with_defaults(check(minimal, SCHEMA), SCHEMA)
    train, evaluate = TrainConfig(), EvalConfig()
    assert cfg["data_dir"] == str(DEFAULT_DATA_DIR) and cfg["hidden"] == train.hidden
    assert (cfg["train"]["lr"], cfg["train"]["batch_size"]) == (train.lr, train.batch_size)
    assert (cfg["train"]["patience"], cfg["train"]["max_decays"]) == (train.patience, train.max_decays)
    assert cfg["evaluate"]["compile_cache"] == evaluate.compile_cache and cfg["evaluate"]["compile"] is False
    assert cfg["selection"]["sigma"] == [FIXED_SCALES["sigma"]]
    assert cfg["selection"]["laplace_b"] == [FIXED_SCALES["laplace_b"]]
    assert "default: 0.001" not in SCHEMA_FILE.read_text()  # the schema file is not a second home


@pytest.mark.parametrize("given, expected", [("auto", "auto"), ("true", True), ("false", False)])
def test_the_compile_switch_takes_the_cli_words(given, expected):
    assert check(study(evaluate={"k": 4, "compile": given}), SCHEMA)["evaluate"]["compile"] == expected


def test_another_compile_word_is_refused():
    with pytest.raises(ConfigError, match="config key 'evaluate.compile'"):
        check(study(evaluate={"k": 4, "compile": "on"}), SCHEMA)


def test_unknown_family_lists_the_allowed_values():
    with pytest.raises(ConfigError, match="allowed: absolute_error, bernoulli, beta, continuous_bernoulli"):
        check(study(losses=["gauss"]), SCHEMA)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True), st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(SCHEMA["properties"]) + ["bogus"]), value=values)
def test_random_values_give_a_clean_error_or_a_valid_config(key, value):
    cfg = study()
    cfg[key] = copy.deepcopy(value)
    try:
        out = check(cfg, SCHEMA)
    except ConfigError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(out, dict)
