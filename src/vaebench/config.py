"""Study configuration: coerce values that arrive as strings, then validate with one-line errors.

Snakemake parses nested `--config` values with YAML's BaseLoader, so `latent_dims=[2,16]`
arrives as ['2', '16']; `coerce` converts every string to the type the schema asks for
before validation. `check` reports the first problem as one line naming the key and, for
enumerations, the allowed values with a did-you-mean suggestion; `with_defaults` fills in what
the config leaves out. Importing this module does not import torch: the Snakefile uses it on every
invocation.
"""

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from vaebench.catalog import FAMILY_IDS
from vaebench.errors import VaebenchError, unknown_name
from vaebench.layout import STUDY_NAME
from vaebench.settings import (
    ARCHITECTURES,
    COMPILE_MODES,
    DATASETS,
    DEFAULT_DATA_DIR,
    FIXED_SCALES,
    MAX_EXTENSIONS,
    EvalConfig,
    TrainConfig,
)
from vaebench.stopping import StopRule


class ConfigError(VaebenchError):
    """The study configuration does not match the schema."""


def load_schema(path: str | Path) -> dict:
    """The config schema, with its enums and defaults filled in from their one home: the catalog's family
    ids, a study's name (vaebench.layout), the datasets, architectures and compile modes, every optional
    setting's default from TrainConfig and EvalConfig, and the fixed scales' defaults. The schema file
    itself names none of them, so the CLI and the workflow cannot disagree on one."""
    schema = yaml.safe_load(Path(path).read_text())
    top = schema["properties"]
    top["losses"]["items"]["enum"] = list(FAMILY_IDS)
    top["study"]["pattern"] = f"^{STUDY_NAME}$"
    top["dataset"]["enum"] = list(DATASETS)
    top["arch"]["enum"] = list(ARCHITECTURES)
    top["data_dir"]["default"] = str(DEFAULT_DATA_DIR)
    train, evaluate = TrainConfig(), EvalConfig()
    for key in ("hidden", "device"):
        top[key]["default"] = getattr(train, key)
    for block, defaults in (("train", train), ("evaluate", evaluate)):
        for key, prop in top[block]["properties"].items():
            if key not in top[block]["required"]:
                prop["default"] = getattr(defaults, key)
    compile_switch = top["evaluate"]["properties"]["compile"]
    as_yaml = {"true": True, "false": False}  # YAML writes the compile switch's true and false as booleans
    compile_switch["enum"] = [as_yaml.get(mode, mode) for mode in COMPILE_MODES]
    compile_switch["default"] = as_yaml.get(compile_switch["default"], compile_switch["default"])
    for setting, value in FIXED_SCALES.items():
        top["selection"]["properties"][setting]["default"] = [value]
    top["selection"]["properties"]["max_extensions"]["default"] = MAX_EXTENSIONS
    return schema


def _types(schema: dict) -> list[str]:
    kind = schema.get("type", [])
    kinds = [kind] if isinstance(kind, str) else list(kind)
    if "enum" in schema and not kinds:
        kinds = ["string"]
    return kinds


def _coerce_scalar(value: str, kinds: list[str]) -> Any:
    """Convert one string to the first schema type it parses as; leave it unchanged otherwise."""
    text = value.strip()
    for kind in kinds:
        if kind == "null" and text.lower() in ("", "null", "none", "~"):
            return None
        if kind == "boolean" and text.lower() in ("true", "false", "yes", "no", "1", "0"):
            return text.lower() in ("true", "yes", "1")
        if kind == "integer":
            try:
                number = float(text)
            except ValueError:
                continue
            if number.is_integer():
                return int(number)
        if kind == "number":
            try:
                return float(text)
            except ValueError:
                continue
    return value


def coerce(value: Any, schema: dict) -> Any:
    """Return `value` with strings converted to the types `schema` declares, recursively."""
    kinds = _types(schema)
    if isinstance(value, str) and ("array" in kinds or "object" in kinds):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, (list, dict)):
            value = parsed
    if isinstance(value, list) and "items" in schema:
        return [coerce(item, schema["items"]) for item in value]
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: coerce(v, props[k]) if k in props else v for k, v in value.items()}
    if isinstance(value, str):
        return _coerce_scalar(value, [k for k in kinds if k != "string"] or [])
    return value


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "(top level)"


def _one_line(error: jsonschema.ValidationError) -> str:
    key = _key_path(error)
    if error.validator == "enum":
        return f"config key '{key}': {unknown_name('value', error.instance, map(str, error.validator_value))}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config key '{key}': {unknown_name('key', extra[0], allowed)}"
    return f"config key '{key}': {error.message}"


def check(config: dict, schema: dict) -> dict:
    """Coerce and validate `config`; raise ConfigError with one line for the first problem."""
    config = coerce(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(e.absolute_path), e.validator))
    if errors:
        message = _one_line(jsonschema.exceptions.best_match(errors))
        raise ConfigError("\\n".join(message.splitlines()))  # a key or value may itself hold a line break
    _check_stopping_rule(with_defaults(config, schema))
    return config


def _check_stopping_rule(config: dict) -> None:
    """What the schema cannot say: the rule's epoch caps (train.epochs, and selection.epochs for the grid
    runs) must reach its patience, or no run could converge."""
    caps = {"train.epochs": config["train"]["epochs"]}
    if "selection" in config:
        caps["selection.epochs"] = config["selection"]["epochs"]
    try:
        for key, cap in caps.items():
            StopRule.of(config["train"], cap).check(key)
    except VaebenchError as err:
        raise ConfigError(str(err)) from None


def with_defaults(config: dict, schema: dict) -> dict:
    """`config` with every key it leaves out that has a default in `schema` set to that default (in the
    objects it has): load_schema's defaults are in no schema file for Snakemake's validate to fill in."""
    config = copy.deepcopy(config)

    def fill(instance: dict, properties: dict) -> None:
        for key, prop in properties.items():
            if "default" in prop:
                instance.setdefault(key, copy.deepcopy(prop["default"]))
            if isinstance(instance.get(key), dict) and "properties" in prop:
                fill(instance[key], prop["properties"])

    fill(config, schema["properties"])
    return config
