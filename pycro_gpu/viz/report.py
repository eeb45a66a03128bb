"""A self-contained HTML report: sections with status, timings, tables of numbers and PNG figures.

The report links the figures by paths relative to the report file, so the output folder can be moved
or zipped as a whole. No template engine: the page is built with :mod:`html` escaping.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ReportFigure", "Section", "format_value", "write_report"]

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 2px solid #446; padding-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: .6em 0; }
td, th { border: 1px solid #ccd; padding: .25em .7em; text-align: left; vertical-align: top; }
th { background: #eef; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: bold; padding: .05em .5em; border-radius: .3em; color: white; }
.ok { background: #2a7a2a; } .skipped { background: #a07000; } .failed { background: #b02020; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: .92em; }
.meta td:first-child { font-weight: bold; }
"""


@dataclass
class ReportFigure:
    """A PNG figure of a section: ``path`` (absolute or relative to the report) and a caption."""

    path: str | os.PathLike
    caption: str = ""


@dataclass
class Section:
    """One step of a job.

    Attributes
    ----------
    title : str
        Heading.
    status : {'ok', 'skipped', 'failed'}
        Outcome of the step.
    seconds : float or None
        Wall time of the step.
    text : str
        A paragraph (plain text, escaped).
    rows : sequence of (name, value)
        A two-column table of results (numbers are formatted with :func:`format_value`).
    figures : sequence of ReportFigure
        Figures, in order.
    """

    title: str
    status: str = "ok"
    seconds: float | None = None
    text: str = ""
    rows: Sequence[tuple[str, Any]] = field(default_factory=list)
    figures: Sequence[ReportFigure] = field(default_factory=list)


def format_value(value: Any) -> str:
    """Format a value for a table: floats with 4 significant digits, booleans as yes/no.

    Examples
    --------
    >>> format_value(0.012345), format_value(123456.0), format_value(3), format_value("x")
    ('0.01235', '1.235e+05', '3', 'x')
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rel(path: str | os.PathLike, base: Path) -> str:
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.relative_to(base)
        except ValueError:
            return p.as_uri()
    return p.as_posix()


def _badge(status: str) -> str:
    """The coloured status label of a step (its CSS class is the status)."""
    status = html.escape(status)
    return f'<span class="status {status}">{status}</span>'


def _table(rows: Sequence[tuple[str, Any]], cls: str = "") -> str:
    cells = []
    for name, value in rows:
        text = format_value(value)
        num = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        cells.append(f"<tr><td>{html.escape(str(name))}</td><td{num}>{html.escape(text)}</td></tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}>" + "".join(cells) + "</table>"


def write_report(
    path,
    *,
    title: str,
    sections: Sequence[Section],
    meta: Sequence[tuple[str, Any]] = (),
    intro: str = "",
    highlights: Sequence[tuple[str, Any]] = (),
) -> Path:
    """Write the HTML report and return its path.

    Parameters
    ----------
    path : str or pathlib.Path
        Output ``.html`` file; figures are linked relative to its folder.
    title : str
        Page title.
    sections : sequence of Section
        The steps, in order.
    meta : sequence of (name, value)
        Run information (backend, versions, sizes, total time) shown at the top.
    intro : str
        A first paragraph.
    highlights : sequence of (name, value)
        Key results (e.g. accuracy against a ground truth) in a table under the run information.
    """
    path = Path(path)
    base = path.parent.resolve()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if intro:
        parts.append(f"<p>{html.escape(intro)}</p>")
    if meta:
        parts.append(_table(meta, "meta"))
    if highlights:
        parts.append("<h2>Key results</h2>")
        parts.append(_table(highlights))
    # overview of all steps
    parts.append("<h2>Steps</h2><table><tr><th>step</th><th>status</th><th>time (s)</th></tr>")
    for i, s in enumerate(sections):
        sec = "" if s.seconds is None else f"{s.seconds:.3f}"
        parts.append(
            f'<tr><td><a href="#step{i}">{html.escape(s.title)}</a></td>'
            f'<td>{_badge(s.status)}</td><td class="num">{sec}</td></tr>'
        )
    parts.append("</table>")
    for i, s in enumerate(sections):
        timing = "" if s.seconds is None else f" &middot; {s.seconds:.3f} s"
        parts.append(f'<h2 id="step{i}">{html.escape(s.title)} {_badge(s.status)}{timing}</h2>')
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.rows:
            parts.append(_table(s.rows))
        for fig in s.figures:
            src = html.escape(_rel(fig.path, base), quote=True)
            cap = html.escape(fig.caption)
            parts.append(f'<figure><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>')
    parts.append("</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
