"""Family fingerprints: an edit changes exactly the fingerprints of the families whose code it touches.

The edits are made in a copy of the package source, so the repository is never touched. The usage
sets asserted here are read off families.py: which families name which helper of numerics.py.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vaebench.catalog import FAMILY_IDS
from vaebench.fingerprint import family_dependencies, family_fingerprint

SRC = Path(__file__).resolve().parents[1] / "src" / "vaebench"

NORMAL_CDF = {
    "squared_error",
    "gaussian_fixed",
    "gaussian",
    "gaussian_shared",
    "logit_normal",
}  # noise = NORMAL
LAPLACE_CDF = {"absolute_error", "laplace_fixed", "laplace", "logit_laplace"}  # noise = LAPLACE
LOCATION_SCALE = NORMAL_CDF | LAPLACE_CDF  # LocationScale: log_bin_mass, logit_moments
CB = {"continuous_bernoulli", "bernoulli"}  # Bernoulli subclasses ContinuousBernoulli
BINNED_BY_CDF = LOCATION_SCALE | {"beta", "discretized_logistic"}  # bin masses from CDF differences


@pytest.fixture
def src(tmp_path) -> Path:
    """A copy of the package source."""
    copy = tmp_path / "src" / "vaebench"
    return Path(shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__")))


def fingerprints(src: Path) -> dict[str, str]:
    return {family: family_fingerprint(src, family) for family in FAMILY_IDS}


def changed_by(src: Path, edit) -> set[str]:
    """The families whose fingerprint `edit(src)` changes."""
    before = fingerprints(src)
    edit(src)
    after = fingerprints(src)
    return {family for family in FAMILY_IDS if after[family] != before[family]}


def definition(path: Path, name: str) -> ast.AST:
    """The top-level def, class or assignment of `name` in a file."""

    def names(node):
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        return [getattr(node, "name", None)] + [getattr(t, "id", None) for t in targets]

    return next(node for node in ast.parse(path.read_text()).body if name in names(node))


def insert_statement(module: str, function: str, statement: str = "_edited = 1"):
    """An edit: a statement at the top of `function`'s body (after its docstring)."""

    def edit(src: Path):
        path = src / module
        node = definition(path, function)
        first = node.body[1] if ast.get_docstring(node) else node.body[0]
        lines = path.read_text().splitlines(keepends=True)
        lines.insert(first.lineno - 1, " " * first.col_offset + statement + "\n")
        path.write_text("".join(lines))

    return edit


def replace_once(module: str, old: str, new: str):
    def edit(src: Path):
        path = src / module
        text = path.read_text()
        assert text.count(old) == 1, old
        path.write_text(text.replace(old, new))

    return edit


def move_to_end(module: str, name: str):
    """An edit that changes no code: one definition moves to the end of its file."""

    def edit(src: Path):
        path = src / module
        node = definition(path, name)
        lines = path.read_text().splitlines(keepends=True)
        start = node.lineno - 1 - len(getattr(node, "decorator_list", []))
        block = lines[start : node.end_lineno]
        path.write_text("".join(lines[:start] + lines[node.end_lineno :] + ["\n\n"] + block))

    return edit


def recolour(family: str):
    """An edit of one catalog entry's colour (a display property: the family's code does not read it)."""

    def edit(src: Path):
        path = src / "catalog.py"
        entries = definition(path, "CATALOG").value
        call = next(
            c
            for c in ast.walk(entries)
            if isinstance(c, ast.Call) and c.args and getattr(c.args[0], "value", None) == family
        )
        colour = next((k.value for k in call.keywords if k.arg == "color"), None) or call.args[2]
        lines = path.read_text().splitlines(keepends=True)
        line = lines[colour.lineno - 1]
        lines[colour.lineno - 1] = line[: colour.col_offset] + '"#123456"' + line[colour.end_col_offset :]
        path.write_text("".join(lines))

    return edit


EDITS = [  # (id, edit, the families whose fingerprint it changes)
    ("log_ndtr", insert_statement("numerics.py", "log_ndtr"), NORMAL_CDF),
    (
        "LOG_NDTR_TAIL",
        replace_once("numerics.py", "LOG_NDTR_TAIL = -12.0", "LOG_NDTR_TAIL = -11.0"),
        NORMAL_CDF,
    ),
    ("laplace_log_cdf", insert_statement("numerics.py", "laplace_log_cdf"), LAPLACE_CDF),
    ("_betacf", insert_statement("numerics.py", "_betacf"), {"beta"}),
    ("beta_log_tail", insert_statement("numerics.py", "beta_log_tail"), {"beta"}),
    ("log_beta_function", insert_statement("numerics.py", "log_beta_function"), {"beta"}),
    ("log_sinhc", insert_statement("numerics.py", "log_sinhc"), CB),
    ("log_expm1", insert_statement("numerics.py", "log_expm1"), {"discretized_logistic"}),
    ("log_bin_mass", insert_statement("numerics.py", "log_bin_mass"), LOCATION_SCALE),
    ("logit_moments", insert_statement("numerics.py", "logit_moments"), LOCATION_SCALE),
    (
        "_NODES_PER_PANEL",
        replace_once("numerics.py", "_NODES_PER_PANEL = 5", "_NODES_PER_PANEL = 6"),
        LOCATION_SCALE,
    ),
    ("log1mexp", insert_statement("numerics.py", "log1mexp"), BINNED_BY_CDF),
    ("_cb_mean", insert_statement("families.py", "_cb_mean"), CB),
    ("bin_edges", insert_statement("families.py", "bin_edges"), BINNED_BY_CDF),
    ("register", insert_statement("families.py", "register"), set(FAMILY_IDS)),
    ("colour-cb", recolour("continuous_bernoulli"), {"continuous_bernoulli"}),
    ("colour-beta", recolour("beta"), {"beta"}),
    (
        "label-gaussian",
        replace_once("catalog.py", '"gaussian, per-pixel sigma"', '"gaussian, per pixel"'),
        {"gaussian"},
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [pytest.param(e, x, id=i) for i, e, x in EDITS])
def test_an_edit_changes_exactly_the_fingerprints_of_the_families_that_use_it(src, edit, expected):
    assert changed_by(src, edit) == expected


@pytest.mark.parametrize(
    "edit",
    [
        replace_once("numerics.py", "    r = 1 / (t * t)\n", "    r = 1 / (t * t)  # a comment\n"),
        replace_once("numerics.py", "    r = 1 / (t * t)\n", "    r = 1/(t*t)\n"),
        replace_once("numerics.py", "standard Laplace, closed form", "standard Laplace: closed form"),
        replace_once("families.py", "\nclass LocationScale(", "\n# a comment\nclass LocationScale("),
        move_to_end("numerics.py", "laplace_log_cdf"),
        move_to_end("families.py", "Beta"),
    ],
    ids=["comment", "formatting", "docstring", "comment-between-definitions", "move-helper", "move-family"],
)
def test_comments_docstrings_formatting_and_order_change_nothing(src, edit):
    assert changed_by(src, edit) == set()


def test_the_fingerprint_does_not_depend_on_where_the_source_lies_or_the_hash_seed(src):
    here = fingerprints(src)
    assert here == fingerprints(SRC)
    code = (
        "import json, sys; from vaebench.fingerprint import family_fingerprint; "
        f"print(json.dumps({{f: family_fingerprint({str(src)!r}, f) for f in {list(FAMILY_IDS)!r}}})); "
        "print('torch' in sys.modules)"
    )
    for seed in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        fingerprints_line, torch_line = proc.stdout.splitlines()
        assert json.loads(fingerprints_line) == here
        assert torch_line == "False"  # the Snakefile computes it on every invocation: no torch import


def test_dependencies_follow_imports_across_modules_and_only_the_familys_catalog_entry(src):
    deps = family_dependencies(src, "gaussian")
    assert {
        "families.Gaussian",
        "families.LearnedScale",
        "families.LocationScale",
        "numerics.log_ndtr",
        "numerics.logit_moments",
        "catalog.CATALOG",
        "catalog.FamilyEntry",
    } <= set(deps)
    assert "numerics.laplace_log_cdf" not in deps and "numerics._betacf" not in deps
    assert "catalog.label" not in deps and "catalog.FAMILY_IDS" not in deps


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# every way of naming another vaebench module's definitions, and one that is not vaebench's
IMPORT_FORMS = {
    "__init__.py": "",
    "families.py": (
        "import math\n"
        "import vaebench.c\n"
        "import vaebench.b as bee\n"
        "from os.path import join\n"
        "from vaebench import a\n"
        "from vaebench.reexport import f_re\n\n"
        "class One:\n    name = 'one'\n"
        "    def f(self):\n        return a.A + bee.g() + vaebench.c.h() + len(join('x'))\n\n"
        "class Two:\n    name = 'two'\n"
        "    def f(self):\n        from vaebench.d import lazy\n        return lazy() + f_re()\n\n"
        "class Three:\n    name = 'three'\n"
        "    def f(self):\n        from . import e\n        return e.f_e() + math.pi\n"
    ),
    "a.py": "A = 1\n",
    "b.py": "G = 2\n\ndef g():\n    return G\n",
    "c.py": "def h():\n    return 3\n",
    "d.py": "def lazy():\n    return 4\n",
    "e.py": "def f_e():\n    return 5\n",
    "reexport.py": "from vaebench.e import f_e as f_re\n",
    "path.py": "def join(x):\n    return x\n",  # named like os.path.join, which the family imports
}


@pytest.mark.parametrize(
    ("module", "old", "new", "expected"),
    [
        ("a.py", "A = 1", "A = 10", {"one"}),  # from vaebench import a; a.A
        ("b.py", "G = 2", "G = 20", {"one"}),  # import vaebench.b as bee; bee.g() -> G
        ("c.py", "return 3", "return 30", {"one"}),  # import vaebench.c; vaebench.c.h()
        ("d.py", "return 4", "return 40", {"two"}),  # an import inside a method
        ("e.py", "return 5", "return 50", {"two", "three"}),  # a re-export, and a relative import
        ("path.py", "return x", "return x * 2", set()),  # from os.path import join: not followed
    ],
)
def test_every_import_form_is_followed(tmp_path, module, old, new, expected):
    src = write_package(tmp_path / "vaebench", IMPORT_FORMS)
    families = ("one", "two", "three")
    before = {f: family_fingerprint(src, f) for f in families}
    path = src / module
    path.write_text(path.read_text().replace(old, new))
    assert {f for f in families if family_fingerprint(src, f) != before[f]} == expected


def test_a_family_tracks_its_class_base_classes_helpers_and_constants(tmp_path):
    src = write_package(
        tmp_path,
        {
            "families.py": (
                "SCALE = 2.0\n\ndef helper(x):\n    return x * SCALE\n\n"
                "class Base:\n    def g(self):\n        return 0\n\n"
                'class A:\n    name = "a"\n    def f(self):\n        return 1\n\n'
                'class B(Base):\n    name: str = "b"\n    def f(self):\n        return helper(2)\n'
            )
        },
    )
    source = src / "families.py"
    a, b = family_fingerprint(src, "a"), family_fingerprint(src, "b")
    source.write_text(source.read_text().replace("helper(2)", "helper(3)") + "# comment\n")
    assert family_fingerprint(src, "a") == a
    assert family_fingerprint(src, "b") != b
    b = family_fingerprint(src, "b")
    source.write_text(source.read_text().replace("return 0", "return -1"))  # the base class changes
    assert family_fingerprint(src, "a") == a
    assert family_fingerprint(src, "b") != b
    b = family_fingerprint(src, "b")
    source.write_text(source.read_text().replace("SCALE = 2.0", "SCALE = 3.0"))  # a constant a helper uses
    assert family_fingerprint(src, "a") == a
    assert family_fingerprint(src, "b") != b
    with pytest.raises(ValueError, match="did you mean 'a'"):
        family_fingerprint(src, "aa")
