import json

import pytest

from gmlib.report import measured


def test_measured_records_numbers_for_the_sweep(tmp_path, monkeypatch):
    path = tmp_path / "record.jsonl"
    monkeypatch.setenv("GMLIB_RECORD", str(path))
    assert measured("near_fraction", 0.91) == 0.91
    measured("modes", 8)
    measured("label", "not a number")  # glued only
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"name": "near_fraction", "value": 0.91}, {"name": "modes", "value": 8.0}]


def test_measured_records_nothing_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("GMLIB_RECORD", raising=False)
    monkeypatch.chdir(tmp_path)
    measured("x", 1.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "value", "match"), [("a b", 1.0, "name"), ("x", float("nan"), "finite")])
def test_measured_rejects_bad_input(name, value, match):
    with pytest.raises(ValueError, match=match):
        measured(name, value)


def test_table_is_markdown_with_one_row_per_result():
    from gmlib.report import table

    rendered = table(["model", "near"], [["GAN", "0.91"], ["a | b", "0.5"]]).data
    assert rendered.splitlines() == ["| model | near |", "|---|---|", "| GAN | 0.91 |", "| a \\| b | 0.5 |"]
    with pytest.raises(ValueError, match=r"rows\[0\]"):
        table(["a", "b"], [["only one"]])


def test_numpy_numbers_are_glued_as_plain_python_numbers(monkeypatch):
    import numpy as np

    glued = {}
    monkeypatch.setattr("gmlib.report._glue", lambda name, value: glued.__setitem__(name, value))
    measured("a", np.float64(0.25))
    measured("b", np.int64(3))
    assert repr(glued["a"]) == "0.25" and repr(glued["b"]) == "3"


def test_measured_glues_inside_a_kernel_and_not_outside(monkeypatch):
    import IPython
    import myst_nb

    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.append((name, value, display)))
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # plain Python: nothing to glue into
    measured("outside", 1.5)
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())  # a kernel
    measured("inside", 2.5)
    assert glued == [("inside", 2.5, False)]
