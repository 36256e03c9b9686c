"""The chapters' two forms stay in sync, and every erratum is listed in book/errata.md."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.md") if p.read_text().startswith("---\njupytext:"))


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_there_are_chapters():
    assert {p.stem for p in CHAPTERS} >= {"prerequisites", "mle"}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_pair_is_in_sync(chapter):
    paired = ROOT / "notebooks" / f"{chapter.stem}.ipynb"
    assert paired.exists(), f"{paired} is missing: run `make notebooks`"
    committed = nbformat.read(paired, as_version=4)
    assert _cells(jupytext.read(chapter)) == _cells(committed), f"{paired.name} is out of sync: run `make notebooks`"
    assert all(not cell.get("outputs") for cell in committed.cells), f"{paired.name} carries outputs"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_in_the_table_of_contents(chapter):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert f"book/{chapter.stem}" in [entry["file"] for entry in toc["chapters"]]


def test_every_erratum_is_listed_with_a_link():
    names = []
    for chapter in CHAPTERS:
        for block in re.findall(r":::\{admonition\} Erratum.*?\n:::", chapter.read_text(), flags=re.S):
            assert ":class: erratum" in block, f"an erratum in {chapter.name} lacks the erratum class"
            name = re.search(r":name: (\S+)", block)
            assert name, f"an erratum in {chapter.name} has no :name: to link to"
            names.append(name.group(1))
    listed = set(re.findall(r"<(erratum-[\w-]+)>", (ROOT / "book" / "errata.md").read_text()))
    assert names, "no errata found: the pattern no longer matches the chapters"
    assert set(names) == listed, f"unlisted: {set(names) - listed}; listed but gone: {listed - set(names)}"
