"""One self-contained HTML report page: sections of text, tables and embedded PNG figures."""
from __future__ import annotations

import base64
import html
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from reports.cells import format_cell, is_numeric_column
from wavebench_base.errors import InputError
from wavebench_base.files import atomic_write_text

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Forbids every fetch: the page must work offline, from a file or an e-mail attachment.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
:root { color-scheme: light; --ink: #1d232b; --muted: #5b6673; --rule: #d9dee4;
        --band: #f4f6f8; --accent: #2a5d9f; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--ink); line-height: 1.5;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 2rem 1.5rem 4rem; }
h1 { font-size: 1.7rem; margin: 0 0 1rem; }
h2 { font-size: 1.25rem; margin: 2.5rem 0 0.75rem; padding-bottom: 0.3rem;
     border-bottom: 2px solid var(--rule); }
nav ol { margin: 0; padding-left: 1.3rem; color: var(--muted); }
nav a, nav a:visited { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
p { margin: 0.5rem 0; max-width: 75ch; }
.table-wrap { overflow-x: auto; margin: 0.75rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; font-variant-numeric: tabular-nums; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid var(--rule); text-align: left;
         white-space: nowrap; }
th { background: var(--band); font-weight: 600; border-bottom: 2px solid var(--rule); }
td.num, th.num { text-align: right; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tbody tr:hover td { background: #eef3f9; }
figure { margin: 1rem 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--rule); }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.3rem; }
footer { margin-top: 3rem; color: var(--muted); font-size: 0.8rem; }
"""


@dataclass(frozen=True)
class Image:
    """A PNG figure for a report section.

    Parameters
    ----------
    png : bytes
        The PNG file's bytes (e.g. from :mod:`reports.plots`).
    caption : str
        Shown under the figure and used as its alt text.
    """

    png: bytes
    caption: str = ""


@dataclass(frozen=True, eq=False)
class Section:
    """One titled part of the report: optional text, then an optional table, then figures.

    Parameters
    ----------
    title : str
        Heading, also listed in the page's contents.
    text : str, optional
        Plain text (not HTML); blank lines separate paragraphs.
    table : pd.DataFrame, optional
        Shown without its index; numbers right-aligned with 4 significant digits.
    images : sequence of Image or bytes
        Figures in order; bare bytes are a PNG without caption.
    """

    title: str
    text: str | None = None
    table: pd.DataFrame | None = None
    images: Sequence[Image | bytes] = field(default_factory=tuple)


def render_html(sections: Sequence[Section], title: str) -> str:
    """Render a report as one HTML page that needs nothing else to display.

    Every figure is embedded as a base64 ``data:`` URI, the stylesheet is inline, and a
    Content-Security-Policy forbids the page from fetching anything, so it reads the same
    offline, from ``file://`` or as a mail attachment.

    Parameters
    ----------
    sections : sequence of Section
        The report's parts, in order.
    title : str
        Page title and top heading.

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    InputError
        No sections, a section that is not a :class:`Section`, a table that is not a
        DataFrame, or an image that is not PNG data.

    Examples
    --------
    >>> summary = pd.DataFrame({"system": ["a", "b"], "mcd": [4.75, 3.25]})
    >>> page = render_html([Section("Summary", table=summary)], "Run 42")
    >>> page.startswith("<!DOCTYPE html>"), "<h1>Run 42</h1>" in page
    (True, True)
    >>> print(page[page.index("<table>"):page.index("</table>") + len("</table>")])
    <table>
    <thead><tr><th scope="col">system</th><th scope="col" class="num">mcd</th></tr></thead>
    <tbody>
    <tr><td>a</td><td class="num">4.750</td></tr>
    <tr><td>b</td><td class="num">3.250</td></tr>
    </tbody>
    </table>
    """
    if not sections:
        raise InputError("render_html needs at least one section")
    ids = _section_ids(sections)
    toc = "".join(f'<li><a href="#{i}">{html.escape(s.title)}</a></li>'
                  for i, s in zip(ids, sections))
    body = "\n".join(_section(s, i) for s, i in zip(sections, ids))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(title)}</h1>\n<nav aria-label=\"contents\"><ol>{toc}</ol></nav>\n"
        f"{body}\n<footer>Generated by wavebench.</footer>\n</main>\n</body>\n</html>\n")


def write_html(path, page: str):
    """Write an HTML page atomically (temporary file, then :func:`os.replace`).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write_text(path, page)


def _section_ids(sections: Sequence[Section]) -> list[str]:
    ids, seen = [], set()
    for k, section in enumerate(sections):
        if not isinstance(section, Section):
            raise InputError(f"section {k} is a {type(section).__name__}, not a reports Section")
        base = re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-") or "section"
        slug, n = base, 2
        while slug in seen:  # repeated titles still need distinct anchors
            slug, n = f"{base}-{n}", n + 1
        seen.add(slug)
        ids.append(slug)
    return ids


def _section(section: Section, anchor: str) -> str:
    parts = [f'<section id="{anchor}">', f"<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        for paragraph in re.split(r"\n\s*\n", section.text.strip()):
            parts.append(f"<p>{html.escape(' '.join(paragraph.split()))}</p>")
    if section.table is not None:
        parts.append(_table(section.table, section.title))
    for k, image in enumerate(section.images):
        parts.append(_figure(image if isinstance(image, Image) else Image(image),
                             f"{section.title}, figure {k + 1}"))
    parts.append("</section>")
    return "\n".join(parts)


def _table(df, where: str) -> str:
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"section {where!r}: table must be a pandas DataFrame, "
                         f"got {type(df).__name__}")
    numeric = [is_numeric_column(df.iloc[:, j]) for j in range(df.shape[1])]
    cls = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th scope=\"col\"{c}>{html.escape(str(name))}</th>"
                   for name, c in zip(df.columns, cls))
    rows = "".join("<tr>" + "".join(f"<td{c}>{html.escape(format_cell(v))}</td>"
                                    for v, c in zip(row, cls)) + "</tr>\n"
                   for row in df.itertuples(index=False, name=None))
    return (f'<div class="table-wrap"><table>\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{rows}</tbody>\n</table></div>")


def _figure(image: Image, where: str) -> str:
    png = image.png
    if not isinstance(png, (bytes, bytearray)) or not png.startswith(_PNG_SIGNATURE) \
            or len(png) < 24:
        raise InputError(f"{where}: image is not PNG data")
    # Width and height from the IHDR chunk let the browser lay out before decoding.
    width, height = struct.unpack(">II", png[16:24])
    alt = html.escape(image.caption or where, quote=True)
    data = base64.b64encode(bytes(png)).decode("ascii")
    caption = f"<figcaption>{html.escape(image.caption)}</figcaption>" if image.caption else ""
    return (f'<figure><img src="data:image/png;base64,{data}" width="{width}" '
            f'height="{height}" alt="{alt}">{caption}</figure>')
