"""The code part of a node's fingerprint: the node function and the project code it reaches.

How far it is followed, and why:

* In the module that defines the function, statement by statement: the function's own
  definition and every top-level definition of that module it names (helpers, constants,
  decorators), transitively. Node modules hold several nodes each (the training template's nodes
  share one file), so editing one node's function leaves its neighbours fresh.
* Into other project modules (``fednuclei.*``), whole modules: a module the function names by
  import, every project module that one imports (at any depth, imports inside functions
  included) and their parent packages, which run on import. Below a node, which functions a call
  reaches cannot be told from the source (the method table, attribute access), so an edit
  anywhere in a reachable module counts. The table in :mod:`fednuclei.methods` imports every
  method, so an edit of one method's module makes every method's training stale.
* Not into third-party packages: hashing site-packages would cost seconds on every run, and their
  files change only when the environment is reinstalled. After upgrading a library that changes
  results, run ``kedro run --all``.

Code is compared as its syntax tree, so formatting, comments and docstrings do not count. This
module reads source files only; it knows nothing of Kedro.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

from fednuclei.freshness.files import digest

PROJECT = __name__.partition(".")[0]
_PACKAGE_ROOT = Path(sys.modules[PROJECT].__file__).parent  # where the running package was imported from


@dataclass(frozen=True)
class _Module:
    digest: str  # of the whole module
    definitions: dict[str, list[ast.stmt]]  # top-level name -> the statements that bind it
    imported: dict[str, list[str]]  # top-level name bound by an import -> project modules it comes from
    imports: frozenset[str]  # every project module imported anywhere in the module


class CodeIndex:
    """Parses project modules on demand, each once, and says which code a callable reaches."""

    def __init__(self, package_root: Path = _PACKAGE_ROOT, package: str = PROJECT):
        self._root = package_root
        self._package = package
        self._modules: dict[str, _Module] = {}
        self._closures: dict[str, dict[str, str]] = {}

    def parts_of(self, target: object) -> dict[str, str]:
        """``{part: digest}`` for a function, class or ``functools.partial``: parts are
        ``module:name`` for definitions followed statement by statement, ``module`` for whole
        modules, ``module:qualname`` marked ``external`` for code outside the project."""
        while isinstance(target, functools.partial):
            target = target.func
        target = inspect.unwrap(target)
        if not (inspect.isroutine(target) or inspect.isclass(target)):
            target = type(target)  # a callable instance: its class's code
        module, qualname = target.__module__, target.__qualname__
        if self._file_of(module) is None:
            return {f"{module}:{qualname}": "external"}
        top = qualname.split(".")[0]
        if top not in self._parse(module).definitions:  # a lambda or nested function: its whole module
            return dict(self.module_closure(module))
        return self._definition_closure(module, top)

    def module_closure(self, module: str) -> dict[str, str]:
        """``{module: digest}`` for ``module``, its parent packages and every project module it
        imports, transitively."""
        if module not in self._closures:
            parts: dict[str, str] = {}
            pending = [module]
            while pending:
                name = pending.pop()
                if name in parts:
                    continue
                parsed = self._parse(name)
                parts[name] = parsed.digest
                pending.extend(parsed.imports)
                pending.extend(self._parents(name))
            self._closures[module] = parts
        return self._closures[module]

    def _definition_closure(self, module: str, name: str) -> dict[str, str]:
        parts: dict[str, str] = {}
        pending, seen = [(module, name)], set()
        while pending:
            module, name = pending.pop()
            if (module, name) in seen:
                continue
            seen.add((module, name))
            parsed = self._parse(module)
            statements = parsed.definitions.get(name, [])
            if statements:
                parts[f"{module}:{name}"] = digest("".join(ast.dump(statement) for statement in statements))
            pending.extend((module, used) for statement in statements for used in _names_used(statement))
            for source in parsed.imported.get(name, ()):
                parts.update(self.module_closure(source))
        return parts

    def _file_of(self, module: str) -> Path | None:
        first, _, rest = module.partition(".")
        if first != self._package:
            return None
        folder = self._root.joinpath(*rest.split(".")) if rest else self._root
        for candidate in (folder.with_suffix(".py"), folder / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    def _parents(self, module: str) -> list[str]:
        pieces = module.split(".")
        return [".".join(pieces[:i]) for i in range(1, len(pieces))]

    def _parse(self, module: str) -> _Module:
        if module not in self._modules:
            file = self._file_of(module)
            if file is None:
                raise ModuleNotFoundError(f"project module {module} has no source file under {self._root}")
            tree = ast.parse(file.read_text(), filename=str(file))
            is_package = file.name == "__init__.py"
            imports = set()
            for node in ast.walk(tree):  # one pass: every import, and docstrings dropped
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    imports.update(source for _, source in self._imports_of(node, module, is_package))
                _drop_docstring(node)
            definitions: dict[str, list[ast.stmt]] = {}
            imported: dict[str, list[str]] = {}
            for statement in _top_level(tree.body):
                if isinstance(statement, (ast.Import, ast.ImportFrom)):
                    for bound, source in self._imports_of(statement, module, is_package):
                        imported.setdefault(bound, []).append(source)
                for bound in _bound_names(statement):
                    definitions.setdefault(bound, []).append(statement)
            self._modules[module] = _Module(digest(ast.dump(tree)), definitions, imported, frozenset(imports))
        return self._modules[module]

    def _imports_of(self, node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[tuple[str, str]]:
        """``(bound name, project module)`` pairs of one import statement; others are left out."""
        pairs = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                # `import a.b` binds `a` but brings a.b: attribute access on `a` reaches it
                pairs.append((alias.asname or alias.name.split(".")[0], alias.name))
        else:
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                pairs.append((alias.asname or alias.name, submodule if self._file_of(submodule) else base))
        return [(bound, source) for bound, source in pairs if self._file_of(source) is not None]


def _top_level(body: list[ast.stmt]):
    """Top-level statements, looking inside ``if``/``try`` blocks (guarded imports, fallbacks)."""
    for statement in body:
        yield statement
        if isinstance(statement, (ast.If, ast.Try)):
            for block in (statement.body, statement.orelse, getattr(statement, "finalbody", []),
                          *(handler.body for handler in getattr(statement, "handlers", []))):
                yield from _top_level(block)


def _bound_names(statement: ast.stmt) -> list[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, (ast.AnnAssign, ast.AugAssign)):
        targets = [statement.target]
    else:
        return []
    return [node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)]


def _names_used(statement: ast.stmt) -> set[str]:
    return {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)}


def _drop_docstring(node: ast.AST) -> None:
    if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
