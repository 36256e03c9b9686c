"""book/_ext/toc_order.py: Sphinx reads (and myst-nb executes) the chapters in _toc.yml order."""

import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import toc_order  # noqa: E402


def test_the_chapters_are_read_in_toc_order_and_the_comparison_after_the_families():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    expected = [toc["root"]] + [entry["file"] for entry in toc["chapters"]]
    docnames = sorted(expected) + ["zz_outside_the_toc"]  # how Sphinx hands them over: by name
    toc_order._read_in_toc_order(SimpleNamespace(srcdir=str(ROOT)), None, docnames)
    assert docnames == expected + ["zz_outside_the_toc"]
    families = ["book/gan", "book/vae", "book/flows", "book/diffusion", "book/autoregressive"]
    assert all(docnames.index(name) < docnames.index("book/comparison") for name in families)


def test_the_extension_is_loaded_by_the_book():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "toc_order" in config["sphinx"]["config"]["extensions"]
    assert config["sphinx"]["local_extensions"]["toc_order"] == "book/_ext"
