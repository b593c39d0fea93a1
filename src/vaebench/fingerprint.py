"""A hash of the code one output family runs: the rerun trigger of its training jobs.

Snakemake does not see edits inside imported modules, so each train job carries this hash as a
param: editing a family's class, or anything it uses, retrains exactly the families that run it.

What counts: the family's class in families.py and, transitively, every top-level class, function
and constant it names, in its own module or in another vaebench module reached by
`from vaebench.X import name`, or by `from vaebench import X` / `import vaebench.X as X` and then
`X.name`. Other imports (torch, math) are not followed. The catalog's CATALOG tuple counts only as the
family's own entry: restyling one family must not retrain the others. Syntax trees without
docstrings are hashed, so comments, docstrings, formatting, the order of definitions and where the
source tree lies do not count.

Parses, never imports: torch-free and fast, since the Snakefile computes it on every invocation.
"""

import ast
import functools
import hashlib
from pathlib import Path

from vaebench.errors import unknown_name

PACKAGE = "vaebench"
FAMILIES_MODULE = "families"  # where the family classes are (each declares `name = "<family id>"`)
CATALOG_MODULE, CATALOG_NAME = "catalog", "CATALOG"  # one entry per family: only the family's own counts

Module = str  # dotted name inside the package ("numerics"); "" is the package's __init__.py
Target = tuple[Module, str | None]  # a module (name None), or a name in a module
Chain = tuple[str, ...]  # a name and the attributes read from it: catalog.BY_ID -> ("catalog", "BY_ID")
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


class _Source:
    """What one module's text defines and imports, and what each definition uses (memoised)."""

    def __init__(self, name: Module, is_package: bool, text: str):
        self.name, self.is_package = name, is_package
        self.tree = _without_docstrings(ast.parse(text))
        self.definitions: dict[str, list[ast.stmt]] = {}
        for node in self.tree.body:
            for defined in _defined_names(node):
                self.definitions.setdefault(defined, []).append(node)
        self.imports = self._imports(n for n in self.tree.body if not isinstance(n, _DEFINITIONS))
        self._uses: dict[int, tuple[str, dict[str, Target], set[Chain]]] = {}

    def _imports(self, nodes) -> dict[str, Target]:
        """Local name -> (module, child) for each vaebench import in `nodes`: child None binds the module
        itself, else `module.child`, which is a module or a name in it (the package decides)."""
        bound: dict[str, Target] = {}
        for node in (n for top in nodes for n in ast.walk(top)):
            if isinstance(node, ast.ImportFrom) and (source := self._from_module(node)) is not None:
                bound.update({a.asname or a.name: (source, a.name) for a in node.names if a.name != "*"})
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    head, _, rest = alias.name.partition(".")
                    if head == PACKAGE:  # import vaebench.X as Y binds X; without `as`, vaebench itself
                        bound[alias.asname or PACKAGE] = (rest if alias.asname else "", None)
        return bound

    def _from_module(self, node: ast.ImportFrom) -> Module | None:
        """The package module a `from ... import` reads from; None outside vaebench."""
        if node.level == 0:
            head, _, rest = (node.module or "").partition(".")
            return rest if head == PACKAGE else None
        parts = self.name.split(".") if self.name else []
        parts = parts if self.is_package else parts[:-1]
        up = node.level - 1
        if up > len(parts):
            return None
        return ".".join(parts[: len(parts) - up] + (node.module.split(".") if node.module else []))

    def uses(self, node: ast.AST) -> tuple[str, dict[str, Target], set[Chain]]:
        """(syntax tree dump, imports inside the node, the name chains it reads) of a definition."""
        if id(node) not in self._uses:
            chains = {chain for expr in ast.walk(node) if (chain := _chain(expr))}
            self._uses[id(node)] = (ast.dump(node), self._imports([node]), chains)
        return self._uses[id(node)]


@functools.lru_cache(maxsize=256)
def _source(name: Module, is_package: bool, text: str) -> _Source:
    """Keyed by the text: a module is parsed once per process and an edited one is parsed again."""
    return _Source(name, is_package, text)


class _Package:
    """The package source under `src_dir`, each file read at most once."""

    def __init__(self, src_dir: Path):
        self.src_dir = src_dir
        self._paths: dict[Module, Path | None] = {}
        self._sources: dict[Module, _Source | None] = {}

    def _path(self, name: Module) -> Path | None:
        if name not in self._paths:
            parts = name.split(".") if name else []
            candidates = [self.src_dir.joinpath(*parts, "__init__.py")]
            if parts:
                candidates.insert(0, self.src_dir.joinpath(*parts).with_suffix(".py"))
            self._paths[name] = next((path for path in candidates if path.is_file()), None)
        return self._paths[name]

    def source(self, name: Module) -> _Source | None:
        if name not in self._sources:
            path = self._path(name)
            is_package = path is not None and path.name == "__init__.py"
            self._sources[name] = _source(name, is_package, path.read_text()) if path else None
        return self._sources[name]

    def _attribute(self, module: Module, child: str) -> Target:
        """`module.child`: a module when it has a file, else a name defined in `module`."""
        submodule = f"{module}.{child}" if module else child
        return (submodule, None) if self._path(submodule) else (module, child)

    def _bound(self, binding: Target) -> Target:
        """What an import binding (module, child) names: the module, or `module.child`."""
        module, child = binding
        return (module, None) if child is None else self._attribute(module, child)

    def resolve(self, chain: Chain, source: _Source, local: dict[str, Target]) -> Target | None:
        """What a chain read in `source` refers to, if it is the package's; `local`: the imports inside
        the definition that reads it (they shadow the module's names)."""
        head, *attributes = chain
        if head in local or (head not in source.definitions and head in source.imports):
            target = self._bound(local.get(head) or source.imports[head])
        elif head in source.definitions:
            target = (source.name, head)
        else:
            return None
        for attribute in attributes:
            if target[1] is not None:  # an attribute of a class or a constant: part of its definition
                return target
            target = self._attribute(target[0], attribute)
        return target

    def definitions(self, target: Target, family: str) -> list[tuple[_Source, ast.AST]]:
        """The syntax trees that define `target`, following re-exports; CATALOG gives the family's entry."""
        (module, name), seen = target, set()
        source = self.source(module)
        while source is not None and name is not None and (source.name, name) not in seen:
            seen.add((source.name, name))
            if (source.name, name) == (CATALOG_MODULE, CATALOG_NAME):
                return [
                    (source, entry)
                    for node in source.definitions.get(name, [])
                    for entry in _catalog_entries(node, family)
                ]
            if name in source.definitions:
                return [(source, node) for node in source.definitions[name]]
            if name not in source.imports:
                return []  # a builtin, or a name bound by a non-vaebench import
            module, name = self._bound(source.imports[name])  # a re-export: follow it
            source = self.source(module)
        return []


def _chain(expr: ast.AST) -> Chain | None:
    """A name read, with the attributes read from it (`vaebench.numerics.log_ndtr`); None otherwise."""
    if isinstance(expr, ast.Name):
        return (expr.id,) if isinstance(expr.ctx, ast.Load) else None  # an assignment uses nothing
    if isinstance(expr, ast.Attribute):
        base = _chain(expr.value)
        return base + (expr.attr,) if base else None
    return None


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """Drop every docstring: like comments, it does not change what the code computes."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, *_DEFINITIONS))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            del body[0]
    return tree


def _assign_targets(node: ast.AST) -> list[ast.expr]:
    """The targets of an assignment (plain or annotated); [] for any other statement."""
    if isinstance(node, ast.Assign):
        return node.targets
    return [node.target] if isinstance(node, ast.AnnAssign) else []


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, _DEFINITIONS):
        return [node.name]
    return [n.id for t in _assign_targets(node) for n in ast.walk(t) if isinstance(n, ast.Name)]


def _declared_name(node: ast.ClassDef) -> str | None:
    """The string a class assigns to `name` in its body (a family's registry id), if any."""
    for stmt in node.body:
        value = getattr(stmt, "value", None)
        names = [getattr(target, "id", None) for target in _assign_targets(stmt)]
        if "name" in names and isinstance(value, ast.Constant):
            return value.value
    return None


def _catalog_entries(node: ast.AST, family: str) -> list[ast.Call]:
    """The calls in CATALOG's definition whose id (first argument or `id=`) is `family`."""

    def entry_id(call: ast.Call) -> object:
        first = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "id"), None)
        return first.value if isinstance(first, ast.Constant) else None

    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and entry_id(n) == family]


def _family_code(src_dir: str | Path, family: str) -> dict[tuple[Module, str], list[str]]:
    """(module, name) -> syntax tree dumps of everything `family`'s class uses, directly or transitively."""
    package = _Package(Path(src_dir))
    families = package.source(FAMILIES_MODULE)
    if families is None:
        raise FileNotFoundError(f"no {FAMILIES_MODULE}.py in {src_dir}")
    classes = {_declared_name(n): n.name for n in families.tree.body if isinstance(n, ast.ClassDef)}
    classes.pop(None, None)
    if family not in classes:
        raise unknown_name("family", family, classes)
    code: dict[tuple[Module, str], list[str]] = {}
    todo = [(FAMILIES_MODULE, classes[family])]
    while todo:
        target = todo.pop()
        if target in code:
            continue
        code[target] = []
        for source, node in package.definitions(target, family):
            dump, local, chains = source.uses(node)
            code[target].append(dump)
            for chain in sorted(chains):
                used = package.resolve(chain, source, local)
                if used is not None and used[1] is not None:
                    todo.append(used)
    return {target: dumps for target, dumps in code.items() if dumps}


def family_dependencies(src_dir: str | Path, family: str) -> list[str]:
    """What `family_fingerprint` hashes, as sorted 'module.name' (to see why a family retrains;
    catalog.CATALOG stands for the family's own entry)."""
    return sorted(f"{module}.{name}" if module else name for module, name in _family_code(src_dir, family))


def family_fingerprint(src_dir: str | Path, family: str) -> str:
    """12 hex digits of a hash of the syntax trees `family` runs (see the module docstring).

    `src_dir` is the package's source directory (src/vaebench). The trees are hashed in sorted order,
    so neither the traversal order nor the order of definitions in a file changes the result.
    """
    dumps = sorted(dump for dumps in _family_code(src_dir, family).values() for dump in dumps)
    return hashlib.sha256("\n".join(dumps).encode()).hexdigest()[:12]
