"""Author-year labels in the reference list, to match the author-year citations in the text.

sphinxcontrib-bibtex cites as "Bishop (2006)" (``bibtex_reference_style:
author_year``) but labels the list with pybtex's ``alpha`` style ("[Bis06]").
This registers a pybtex style whose labels are "Bishop 2006", "Goodfellow et
al. 2014", and whose entries are sorted by author and year.
"""

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Last YEAR", "Last and Other YEAR", "Last et al. YEAR"; a, b, ... where two coincide."""

    def format_labels(self, sorted_entries):
        labels = [self._label(entry) for entry in sorted_entries]
        seen: dict[str, int] = {}
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
        suffix: dict[str, int] = {}
        for label in labels:
            if seen[label] > 1:
                suffix[label] = suffix.get(label, 0) + 1
                yield f"{label}{chr(ord('a') + suffix[label] - 1)}"
            else:
                yield label

    @staticmethod
    def _label(entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(person.last_names) for person in people]
        if not names:
            who = entry.fields.get("organization", entry.key)
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who} {entry.fields.get('year', 'n.d.')}".replace("{", "").replace("}", "")


class AuthorYearStyle(PlainStyle):
    default_label_style = "author_year_labels"


def setup(app):
    register_plugin("pybtex.style.labels", "author_year_labels", AuthorYearLabels)
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
