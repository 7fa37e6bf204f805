"""pyproject.toml declares what the code imports, and .ci/floors.py pins exactly its floors."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_levels(*folders: str) -> set[str]:
    """The top-level names of every absolute import under ``folders``, function-level imports included."""
    names = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"bridge", "recipes", "__future__"}


def distributions(names: set[str]) -> set[str]:
    """The installed distributions that provide these import names (``PIL`` is pillow, ``yaml`` is pyyaml)."""
    provided = packages_distributions()
    missing = sorted(name for name in names if name not in provided)
    assert not missing, f"imported but not installed: {missing}"
    return {normalized(dist) for name in names for dist in provided[name]}


def declared(requirements: list[str]) -> set[str]:
    return {normalized(Requirement(line).name) for line in requirements}


def test_every_third_party_import_of_the_code_and_benchmarks_is_a_declared_dependency():
    names = imported_top_levels("bridge", "recipes", "benchmarks") - {
        path.stem for path in ROOT.glob("benchmarks/*.py")
    }
    undeclared = distributions(names) - declared(PROJECT["dependencies"])
    assert not undeclared, f"imported by the project's code but not in pyproject's dependencies: {sorted(undeclared)}"


def test_every_third_party_import_of_the_tests_is_declared_for_development():
    benchmarks = {path.stem for path in (ROOT / "benchmarks").glob("*.py")}  # imported from beside the tests
    names = imported_top_levels("tests") - {"wandb_records", "slow_callback", "conftest"} - benchmarks
    extras = PROJECT["optional-dependencies"]
    deps = declared(PROJECT["dependencies"]) | declared(extras["dev"]) | declared(extras["cloud"])
    # requests comes with lightning-sdk (the cloud extra): tests/test_docs.py keeps its import offline
    undeclared = distributions(names) - deps - {"requests"}
    assert not undeclared, f"imported by tests/ but not declared (dev or cloud extra): {sorted(undeclared)}"


def test_the_floor_check_pins_every_dependency_to_its_floor():
    pins = subprocess.run([sys.executable, ".ci/floors.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    pinned = dict(line.split("==") for line in pins.stdout.split())
    for line in PROJECT["dependencies"]:
        requirement = Requirement(line)
        floor = next(s.version for s in requirement.specifier if s.operator in (">=", "=="))
        assert pinned[normalized(requirement.name)] == floor, line
    assert len(pinned) == len(PROJECT["dependencies"])
