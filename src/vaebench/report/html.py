"""The page's HTML pieces: escaping, tables in their scroll boxes, a finding, a caption, a family's label,
numbered footnotes."""

import html
import re

from vaebench.findings import Finding
from vaebench.results import Study

MARK = "<meta name='vaebench-report' content='{written}'>"  # lets the index of studies find and date a report


def esc(value) -> str:
    return html.escape(str(value))


def family_label(study: Study, family: str) -> str:
    return esc(study.labels.get(family, family))


def finding_html(finding: Finding) -> str:
    """A finding on the page: its text escaped, its title in bold."""
    text = html.escape(finding.text, quote=False)
    return f"<b>{html.escape(finding.title, quote=False)}</b> {text}" if finding.title else text


def findings_list(items: list[Finding], css: str = "") -> str:
    attrs = f" class='{css}'" if css else ""
    return f"<ul{attrs}>" + "".join(f"<li>{finding_html(f)}</li>" for f in items) + "</ul>"


def caption_html(text: str) -> str:
    """A caption's text escaped, its rst inline literals (``name``) as <code>."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", esc(text))


def table(header: list[str], rows: list[list[str]], attrs: str = "") -> str:
    """An HTML table from already-escaped cell HTML; a cell may be (html, css_class)."""

    def cell(c, tag="td"):
        text, css = c if isinstance(c, tuple) else (c, "")
        return f"<{tag}{f' class={css!r}' if css else ''}>{text}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "\n".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return scroll_box(f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>")


def scroll_box(table_html: str) -> str:
    """A table in a box of its own that scrolls sideways when the screen is narrower than the table, so the
    page itself never does."""
    return f"<div class='scroll'>{table_html}</div>"


class Footnotes:
    """The page's numbered notes (why a value is missing): one number per distinct note, in order of use."""

    def __init__(self):
        self.numbers: dict[str, int] = {}

    def mark(self, note: str) -> str:
        number = self.numbers.setdefault(note, len(self.numbers) + 1)
        return f"<sup>{number}</sup>"

    def listed(self) -> str:
        notes = "".join(f"<li value='{n}'>{esc(text)}</li>" for text, n in self.numbers.items())
        return f"<ol class='small'>{notes}</ol>" if notes else ""
