"""Study configuration: coerce values that arrive as strings, then validate with one-line errors.

Snakemake parses nested `--config` values with YAML's BaseLoader, so `latent_dims=[2,16]`
arrives as ['2', '16']; `coerce` converts every string to the type the schema asks for
before validation. `check` reports the first problem as one line naming the key and, for
enumerations, the allowed values with a did-you-mean suggestion. Importing this module does
not import torch: the Snakefile uses it on every invocation.
"""

import ast
import hashlib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from vaebench.errors import VaebenchError, unknown_name


class ConfigError(VaebenchError):
    """The study configuration does not match the schema."""


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


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
    return config


def _assign_targets(node: ast.stmt) -> list[ast.expr]:
    """The targets of an assignment (plain or annotated); [] for any other statement."""
    if isinstance(node, ast.Assign):
        return node.targets
    return [node.target] if isinstance(node, ast.AnnAssign) else []


def _declared_name(node: ast.ClassDef) -> str | None:
    """The string a class assigns to `name` in its body (a family's registry id), if any."""
    for stmt in node.body:
        targets = _assign_targets(stmt)
        value = getattr(stmt, "value", None)
        if any(getattr(t, "id", None) == "name" for t in targets) and isinstance(value, ast.Constant):
            return value.value
    return None


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        return [node.name]
    return [t.id for t in _assign_targets(node) if isinstance(t, ast.Name)]


def family_fingerprint(families_source: str | Path, family: str) -> str:
    """A short hash of the code one family runs: its class, and every class, function and constant
    of the module that it uses, directly or through them (its base classes, numerical helpers).

    Comments and formatting do not count (syntax trees are hashed). Rules pass it as a param, so
    Snakemake's params rerun-trigger retrains exactly the families whose code changed: Snakemake
    itself does not see changes inside imported modules.
    """
    body = ast.parse(Path(families_source).read_text()).body
    definitions = {name: node for node in body for name in _defined_names(node)}
    by_family = {_declared_name(n): n for n in body if isinstance(n, ast.ClassDef) and _declared_name(n)}
    if family not in by_family:
        raise unknown_name("family", family, by_family)
    digest, todo, seen = hashlib.sha256(), [by_family[family]], set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        digest.update(ast.dump(node).encode())
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        todo += [definitions[name] for name in sorted(used) if name in definitions]
    return digest.hexdigest()[:12]
