"""tools/sweep.py: jobs run two tiny notebooks under two seeds; the report shows verdicts and recorded numbers."""

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]


def _load_sweep():
    """tools/ is not a package: load tools/sweep.py as a module."""
    spec = importlib.util.spec_from_file_location("sweep", ROOT / "tools" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep"] = module
    spec.loader.exec_module(module)
    return module


sweep = _load_sweep()

RECORD = """\
import json, os
with open(os.environ["GMLIB_RECORD"], "a") as f:
    f.write(json.dumps({"name": "x", "value": -1.0}) + "\\n")  # overwritten below: the last value wins
    f.write(json.dumps({"name": "x", "value": 10.0 + int(os.environ["GMLIB_SEED"])}) + "\\n")
"""


def _cells(table: str) -> list[list[str]]:
    """The rows of a Markdown table, each a list of stripped cells."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("|")
    ]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A sweep of a passing and a failing notebook under seeds 0 and 1 (four kernels, two at a time)."""
    folder = tmp_path_factory.mktemp("notebooks")
    good = new_notebook(cells=[new_markdown_cell("# good"), new_code_cell(RECORD)])
    bad = new_notebook(
        cells=[new_markdown_cell("# bad"), new_code_cell("y = 1"), new_code_cell('assert False, "planted"')]
    )
    nbformat.write(good, folder / "good.ipynb")
    nbformat.write(bad, folder / "bad.ipynb")
    settings = sweep.Settings(notebooks=folder, threads=1, capability=None, timeout=60)
    chapters, seeds = sweep.choose_chapters(["good", "bad"], folder), [0, 1]
    results = sweep.run_sweep(chapters, seeds, settings, jobs=2, progress=lambda line: None)
    return results, sweep.report(results, chapters, seeds, settings)


def test_verdicts_and_the_failure_message(swept):
    results, text = swept
    rows = _cells(sweep.outcome_section(results, ["good", "bad"], [0, 1]))
    assert rows[0][:3] == ["chapter", "seed 0", "seed 1"]
    assert rows[2][:3] == ["good", "pass", "pass"]
    assert rows[3][:3] == ["bad", "FAIL cell 2", "FAIL cell 2"]
    assert all(float(wall) > 0 for wall in rows[2][3:] + rows[3][3:])
    assert '- bad, seed 0, cell 2 `assert False, "planted"`: AssertionError: planted' in text
    assert [r.outcome.passed for r in results] == [True, True, False, False]


def test_recorded_numbers_are_summarised_over_seeds(swept):
    results, text = swept
    assert [r.records for r in results] == [{"x": 10.0}, {"x": 11.0}, {}, {}]
    assert ["x", "10", "10.5", "11", "2"] in _cells(sweep.records_section(results, "good"))
    assert "### bad\n\nNo numbers recorded." in text


def test_read_records_keeps_the_last_value_and_allows_a_missing_file(tmp_path):
    path = tmp_path / "r.jsonl"
    assert sweep.read_records(path) == {}
    path.write_text('{"name": "a", "value": 1}\n\n{"name": "a", "value": 2.5}\n{"name": "b", "value": 3}\n')
    assert sweep.read_records(path) == {"a": 2.5, "b": 3.0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--chapters", "mle", "nope"],
            "--chapters: unknown chapter 'nope'; valid: autoregressive, comparison, diffusion, energy, ",
        ),
        (["--seeds", "0"], "--seeds must be an int >= 1, got 0"),
        (["--jobs", "0"], "--jobs must be an int >= 1, got 0"),
    ],
)
def test_bad_options_exit_with_status_2_and_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        sweep.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_default_chapters_are_the_books_with_notebooks():
    assert sweep.choose_chapters(None, ROOT / "notebooks")[:2] == ["prerequisites", "mle"]
    with pytest.raises(ValueError, match="--chapters: unknown chapter 'x'"):
        sweep.choose_chapters(["x"], ROOT / "notebooks")


def test_per_seed_json_keeps_every_job_and_its_records(swept):
    results, _ = swept
    settings = sweep.Settings(notebooks=Path("."), threads=2, capability="default", timeout=60)
    data = json.loads(sweep.per_seed_json(results, settings))
    assert (data["threads"], data["capability"]) == (2, "default")
    jobs = [(job["chapter"], job["seed"], job["outcome"]["passed"], job["records"]) for job in data["jobs"]]
    assert jobs == [
        ("good", 0, True, {"x": 10.0}),
        ("good", 1, True, {"x": 11.0}),
        ("bad", 0, False, {}),
        ("bad", 1, False, {}),
    ]
    assert data["jobs"][2]["outcome"]["cell"] == 2 and all(job["wall_s"] > 0 for job in data["jobs"])
