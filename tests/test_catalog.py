"""The family catalog is the one list of families: the registry, the schema and the styles follow it."""

import pytest
import yaml
from workflow_copy import ROOT

from vaebench import catalog
from vaebench.config import load_schema
from vaebench.families import FAMILIES, OutputFamily, register

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def test_the_schema_enum_lists_exactly_the_catalog_families_in_its_order():
    assert load_schema(SCHEMA)["properties"]["losses"]["items"]["enum"] == list(catalog.FAMILY_IDS)


def test_the_schema_file_names_no_family_so_adding_one_is_two_steps():
    text = SCHEMA.read_text()
    assert not [f for f in catalog.FAMILY_IDS if f"{f}," in text or f"{f}]" in text]
    assert yaml.safe_load(text)["properties"]["losses"]["items"] == {"type": "string"}


def test_every_registered_family_takes_its_properties_from_its_entry():
    assert set(FAMILIES) == set(catalog.FAMILY_IDS)
    for name, cls in FAMILIES.items():
        entry = catalog.BY_ID[name]
        assert cls.entry is entry and cls.label == entry.label
        assert (cls.learned_scale, cls.has_cdf) == (entry.learned_scale, entry.has_cdf)


def test_a_family_without_a_catalog_entry_is_refused_at_registration():
    class Unlisted(OutputFamily):
        name = "unlisted"
        n_params = 1

    with pytest.raises(ValueError, match="no entry in vaebench/catalog.py"):
        register(Unlisted)
    assert "unlisted" not in FAMILIES


def test_entries_are_distinct_and_their_references_exist():
    assert len(set(catalog.FAMILY_IDS)) == len(catalog.CATALOG)
    assert len({(e.color, e.marker) for e in catalog.CATALOG}) == len(catalog.CATALOG)
    assert len({e.label for e in catalog.CATALOG}) == len(catalog.CATALOG)
    for entry in catalog.CATALOG:
        assert entry.scored_as is None or entry.scored_as in catalog.BY_ID
        assert not (entry.fixed_scale and entry.learned_scale)


def test_family_order_puts_catalog_families_first_in_catalog_order():
    assert catalog.family_order(["zeta", "gaussian", "bernoulli", "alpha"]) == [
        "bernoulli",
        "gaussian",
        "alpha",
        "zeta",
    ]
    assert catalog.family_order(reversed(catalog.FAMILY_IDS)) == list(catalog.FAMILY_IDS)


def test_labels_and_everyday_losses():
    assert (
        catalog.label("bernoulli") == "bernoulli (read as CB)" and catalog.label("new_family") == "new_family"
    )
    assert catalog.with_everyday_loss("squared error") == "squared_error"
    assert catalog.with_everyday_loss("absolute error") == "absolute_error"
    assert catalog.with_everyday_loss("no such loss") is None


def test_importing_the_catalog_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, vaebench.catalog; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
