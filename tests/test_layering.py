"""pzlib's floors hold: no import runs up a floor, Airflow stays in pzlib.cluster.airflow, pzlib never imports the
DAGs or the plugin, and no private name is used across modules.

The floors and the Airflow rule are import-linter contracts in pyproject.toml (``lint-imports``); the open
exceptions are listed there, each with what removes it. Imports inside functions count: the contracts
see every import statement of a module, which the last test shows on a copy of pzlib with one added.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

CHECKOUT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the contracts of ``root``/pyproject.toml, for the pzlib found in ``root``."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, env=environment, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_are_kept():
    result = lint_imports(CHECKOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_every_pzlib_module_is_on_a_floor():
    with open(CHECKOUT / "pyproject.toml", "rb") as pyproject:
        contracts = tomllib.load(pyproject)["tool"]["importlinter"]["contracts"]
    layers = next(contract["layers"] for contract in contracts if contract["id"] == "floors")
    on_a_floor = {name.strip() for layer in layers for name in re.split(r"[:|]", layer)}
    top_level = {f"pzlib.{path.stem}" for path in (CHECKOUT / "pzlib").iterdir()
                 if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()}
    assert top_level - on_a_floor == set(), "put the module on its floor in pyproject.toml's floors contract"


def test_pzlib_never_imports_the_dags_or_the_plugin():
    graph = grimp.build_graph("pzlib", include_external_packages=True, cache_dir=None)
    faces = {"dags", "plugins"} | {path.stem for folder in ("dags", "plugins") for path in (CHECKOUT / folder).iterdir()
                                   if path.suffix == ".py" or (path / "__init__.py").is_file()}
    imports = sorted(f"{importer} -> {imported}" for importer in graph.modules if importer.startswith("pzlib")
                     for imported in graph.find_modules_directly_imported_by(importer)
                     if imported.split(".")[0] in faces)
    assert not imports


def private_names_used_across_modules(package: Path) -> set[tuple[str, str, str]]:
    """(module, other module, name) for every ``from pzlib.other import _name`` and ``other._name`` in ``package``."""
    found = set()
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), filename=str(path))
        imported_modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pzlib"):
                for alias in node.names:
                    if alias.name.startswith("_") and node.module != module:
                        found.add((module, node.module, alias.name))
                    imported_modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("pzlib.") and alias.asname:
                        imported_modules[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.add((module, imported_modules[node.value.id], node.attr))
    return found


def test_no_new_private_name_is_used_across_modules():
    assert private_names_used_across_modules(CHECKOUT / "pzlib") == set(), "use a public name, or make it one"


def test_an_upward_import_inside_a_function_breaks_the_floors(tmp_path):
    shutil.copytree(CHECKOUT / "pzlib", tmp_path / "pzlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(CHECKOUT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "pzlib" / "catalog.py", "a") as catalog:
        catalog.write("\n\ndef _progress_bar():\n    from pzlib.cli import _progress\n\n    return _progress()\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "pzlib.catalog is not allowed to import pzlib.cli" in result.stdout
    assert "pzlib.catalog -> pzlib.cli" in result.stdout
    assert ("pzlib.catalog", "pzlib.cli", "_progress") in private_names_used_across_modules(tmp_path / "pzlib")
