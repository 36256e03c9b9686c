"""Read, and so execute, the chapters in the order of ``_toc.yml`` rather than by name.

Sphinx reads the documents it must (re)build sorted by name, and myst-nb executes each notebook as it
is read, so ``book/comparison`` would run before the family chapters whose trained models it loads
from gmlib's cache (``gmlib.trained``). In the table of contents' order it runs after them, and a
cold build trains each model once, in its own chapter.
"""

from pathlib import Path

import yaml


def toc_rank(srcdir: str | Path) -> dict[str, int]:
    """Each document of ``_toc.yml`` and its position: the root first, then the chapters in order."""
    toc = yaml.safe_load((Path(srcdir) / "_toc.yml").read_text())
    order = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    return {name: position for position, name in enumerate(order)}


def _read_in_toc_order(app, env, docnames: list[str]) -> None:
    """Sphinx's ``env-before-read-docs``: reorder ``docnames`` in place (documents outside the toc last)."""
    rank = toc_rank(app.srcdir)
    docnames.sort(key=lambda name: (rank.get(name, len(rank)), name))


def setup(app):
    app.connect("env-before-read-docs", _read_in_toc_order)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
