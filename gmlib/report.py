"""What a chapter measured, said once: glued into its prose and recorded for the seed sweep.

``measured("ring_near", 0.91)`` does two things. It *glues* the value under its
name (myst-nb), so the chapter's prose cites it as ``{glue:text}`ring_near:.2f```
and the text can never disagree with the run beside it. And when the
environment variable ``GMLIB_RECORD`` names a file, it appends one JSON line
``{"name": ..., "value": ...}`` to it, which is how the seed sweep
(``make sweep``) collects each key number's spread over seeds -- the evidence
behind every threshold a chapter asserts.
"""

import json
import math
import os
from numbers import Integral, Real
from typing import TypeVar

RECORD_VARIABLE = "GMLIB_RECORD"
T = TypeVar("T")


def measured(name: str, value: T) -> T:
    """Glue ``value`` under ``name`` for the prose and record it for the sweep; return ``value``.

    Args:
        name: an identifier (letters, digits, ``_``), unique within the chapter.
        value: a number (recorded and glued) or any other displayable object
            (glued only).
    """
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"name must be an identifier (letters, digits, _), got {name!r}")
    shown: object = value
    if isinstance(value, Real) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValueError(f"value of {name!r} must be finite, got {value!r}")
        _record(name, float(value))
        # glue plain Python numbers: NumPy's repr (np.float64(0.5)) is no number to {glue:text}
        shown = int(value) if isinstance(value, Integral) else float(value)
    _glue(name, shown)
    return value


def _record(name: str, value: float) -> None:
    path = os.environ.get(RECORD_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"name": name, "value": value}) + "\n")


def _glue(name: str, value: object) -> None:
    """Glue through myst-nb when running in a kernel; outside one (plain Python) there is nothing to glue into."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the book's requirements
        return
    if get_ipython() is None:
        return
    from myst_nb import glue

    glue(name, value, display=False)


def table(header: list[str], rows: list[list[object]]):
    """A results table the book renders as a table: Markdown (MyST, so ``$...$`` math works) for a cell's output.

    Numbers should be formatted by the caller (``f"{x:.3f}"``); every row must
    have as many entries as ``header``.
    """
    from IPython.display import Markdown

    if not header:
        raise ValueError("header must name at least one column")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"rows[{i}] has {len(row)} entries, header has {len(header)}")
    escape = lambda cell: str(cell).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return Markdown("\n".join(lines))
