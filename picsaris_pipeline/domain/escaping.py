"""The one way guest-supplied text (names, file names, reasons quoting them) goes into the markdown
and HTML the project writes: shown literally, never as markup."""

from __future__ import annotations

import html

# The characters markdown (CommonMark + GFM tables) gives a meaning to inside a line; "-", "+" and
# "." only mean something at the start of a line (lists), so only a leading one is escaped.
_MARKDOWN_SPECIALS = frozenset("\\`*_[]()<>#!|~")
_LINE_START_SPECIALS = frozenset("-+=")


def one_line(value: object) -> str:
    """All whitespace runs (newlines, tabs) collapsed to one space: a name cannot add lines."""
    return " ".join(str(value).split())


def html_text(value: object) -> str:
    """Text for an HTML element or an attribute value in double or single quotes."""
    return html.escape(one_line(value), quote=True)


def markdown_text(value: object) -> str:
    """Text for markdown, table cells included: one line, HTML escaped (the Dagster UI renders raw
    HTML in markdown), every markdown special character backslash-escaped."""
    text = html.escape(one_line(value), quote=True)
    escaped = "".join("\\" + char if char in _MARKDOWN_SPECIALS else char for char in text)
    return "\\" + escaped if escaped[:1] in _LINE_START_SPECIALS else escaped
