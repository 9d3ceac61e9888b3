"""Tests of the HTML report page: structure, escaping, self-containment, embedded figures."""
import base64
import io
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from reports.cells import format_cell
from reports.html import Image, Section, render_html, write_html
from wavebench_base.errors import InputError


def _png(colour: str = "C0") -> bytes:
    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([0, 1], [0, 1], color=colour)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class _Page(HTMLParser):
    """Collects what the checks need: tags, URL attributes, table cells, text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags, self.urls, self.images, self.ids = [], [], [], []
        self.rows: list[list[str]] = []
        self.meta: list[dict] = []
        self._cell = None
        self.text = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "srcset", "action")]
        if tag == "img":
            self.images.append(attrs)
        if tag == "meta":
            self.meta.append(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        self.text.append(data)


def _sections():
    summary = pd.DataFrame({"system": ["base", "new <b>"], "mean": [4.9876, np.nan],
                            "n": [30, 29]})
    return [
        Section("Summary & notes", text="First <script>alert(1)</script> paragraph.\n\n"
                                        "Second\nparagraph.", table=summary),
        Section("Figures", images=[Image(_png(), caption="MCD per utterance"), _png("C1")]),
        Section("Summary & notes", text="A repeated title."),
    ]


def test_page_is_self_contained_and_escapes_text():
    page = render_html(_sections(), "Run <1>")
    parsed = _Page(page)
    # Nothing to fetch: every URL is an embedded image or an in-page anchor.
    assert parsed.urls and all(u.startswith(("data:image/png;base64,", "#"))
                               for u in parsed.urls)
    for tag in ("script", "link", "iframe", "object", "embed"):
        assert tag not in parsed.tags
    csp = [m["content"] for m in parsed.meta if m.get("http-equiv") ==
           "Content-Security-Policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    # User text is shown as text, never interpreted.
    assert "First <script>alert(1)</script> paragraph." in parsed.text
    assert "Second paragraph." in parsed.text
    assert "Run <1>" in parsed.text


def test_table_cells_are_the_formatted_values():
    page = render_html(_sections(), "t")
    rows = _Page(page).rows
    summary = _sections()[0].table
    assert rows[0] == ["system", "mean", "n"]
    assert rows[1:] == [[format_cell(v) for v in r] for r in summary.itertuples(index=False)]
    assert '<td class="num">4.988</td>' in page and "<td>new &lt;b&gt;</td>" in page


def test_images_are_embedded_byte_for_byte_with_their_size():
    sections = _sections()
    parsed = _Page(render_html(sections, "t"))
    expected = [sections[1].images[0].png, sections[1].images[1]]
    assert len(parsed.images) == 2
    for attrs, png in zip(parsed.images, expected):
        data = base64.b64decode(attrs["src"].split(",", 1)[1], validate=True)
        assert data == png
        assert (attrs["width"], attrs["height"]) == ("100", "50")  # 2 x 1 in at 50 dpi
    assert parsed.images[0]["alt"] == "MCD per utterance"
    assert parsed.images[1]["alt"] == "Figures, figure 2"


def test_contents_links_reach_unique_section_ids():
    parsed = _Page(render_html(_sections(), "t"))
    assert parsed.ids == ["summary-notes", "figures", "summary-notes-2"]
    links = [u[1:] for u in parsed.urls if u.startswith("#")]
    assert links == parsed.ids


def test_write_html_writes_the_page(tmp_path):
    page = render_html(_sections(), "t")
    path = write_html(tmp_path / "report.html", page)
    assert path.read_text(encoding="utf-8") == page
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


@pytest.mark.parametrize("sections, match", [
    ([], r"render_html needs at least one section"),
    (["Summary"], r"section 0 is a str, not a reports Section"),
    ([Section("S", table={"a": [1]})], r"section 'S': table must be a pandas DataFrame, got dict"),
    ([Section("S", images=[b"GIF89a..."])], r"S, figure 1: image is not PNG data"),
    ([Section("S", images=[Image("not bytes")])], r"S, figure 1: image is not PNG data"),
])
def test_bad_sections_are_refused(sections, match):
    with pytest.raises(InputError, match=match):
        render_html(sections, "t")
