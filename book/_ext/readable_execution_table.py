"""myst-nb's execution table, readable without an emoji font: chapter titles and "passed"/"failed".

``{nb-exec-table}`` lists each notebook by its document name ("book/gan") and
its status as an emoji, which renders as a missing-glyph box on machines
without an emoji font. This links each row by the chapter's title and writes
the status as a word.
"""

from docutils import nodes
from sphinx import addnodes
from myst_nb.ext import execution_tables


def _readable_table(parent_docname, metadata):
    table = _original(parent_docname, metadata)
    for xref in table.findall(addnodes.pending_xref):
        xref["refexplicit"] = False  # Sphinx then writes the document's title
        xref.children = [nodes.inline(text="")]
    return table


_original = execution_tables.make_stat_table


def setup(app):
    execution_tables._key2transform["succeeded"] = lambda ok: "passed" if ok is True else "failed"
    execution_tables._key2header["runtime"] = "Run time (s)"
    execution_tables.make_stat_table = _readable_table
    return {"parallel_read_safe": True, "parallel_write_safe": True}
