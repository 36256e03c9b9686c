"""tools/mutate.py on a tiny planted package: it finds the mutants, kills what tests see, never edits the tree."""

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("mutate_tool", ROOT / "tools" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate_tool"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path):
    """A package ``toy`` with one tested function, one untested line, a default argument and a docstring."""
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "__init__.py").write_text("")
    (tmp_path / "toy" / "calc.py").write_text(
        textwrap.dedent(
            '''
            """Docstring 1 + 1 is never mutated."""


            def area(width: float, height: float = 2.0) -> float:
                """Width times height."""
                return width * height


            def untested(x):
                return x - 1
            '''
        )
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_calc.py").write_text(
        "from toy.calc import area\n\n\ndef test_area():\n    assert area(3.0, 4.0) == 12.0\n"
    )
    return tmp_path


def test_mutants_are_found_where_formulas_are(mutate, project):
    found = mutate.find_mutants(project, "toy/calc.py")
    assert [(m.line, m.original, m.mutated) for m in found] == [
        (7, "width * height", "width / height"),
        (11, "x - 1", "x + 1"),
        (11, "1", "2"),
    ]  # the docstring's 1 + 1 and the default 2.0 are left alone
    with_defaults = mutate.find_mutants(project, "toy/calc.py", defaults=True)
    assert ("2.0", "3.0") in {(m.original, m.mutated) for m in with_defaults}
    source = (project / "toy" / "calc.py").read_text()
    assert "return width / height" in mutate.mutated_source(source, found[0])


def test_kills_are_counted_and_survivors_listed_without_touching_the_tree(mutate, project, tmp_path, capsys):
    before = (project / "toy" / "calc.py").read_text()
    out = tmp_path / "result.json"
    options = ["--root", str(project), "--package", "toy", "--modules", "toy/calc.py", "--preload", "pytest"]
    code = mutate.main([*options, "--json", str(out), "--fail-under", "50"])
    printed = capsys.readouterr().out
    assert code == 1  # the kill rate is below --fail-under
    assert "killed 1 of 3 mutants (33.3%)" in printed
    assert "toy/calc.py:11:12: x - 1 -> x + 1  (no test executes this line)" in printed
    results = {(r["mutant"]["line"], r["mutant"]["mutated"]): r["status"] for r in json.loads(out.read_text())}
    assert results == {(7, "width / height"): "killed", (11, "x + 1"): "uncovered", (11, "2"): "uncovered"}
    assert (project / "toy" / "calc.py").read_text() == before, "the live tree was edited"
    assert not list(project.rglob("__pycache__")), "bytecode of a mutant was left behind"


def test_a_module_of_a_subpackage_is_tested_by_the_package_test_file(mutate):
    root = Path(__file__).resolve().parents[1]
    assert mutate.default_tests(root, "gmlib/models/flows/coupling.py") == [
        "tests/test_flows.py",
        "tests/test_models.py",
    ]
    assert mutate.default_tests(root, "gmlib/models/flow_vae.py") == ["tests/test_flow_vae.py", "tests/test_models.py"]
    assert mutate.default_tests(root, "gmlib/metrics.py") == ["tests/test_metrics.py"]
