"""The committed Markdown shows what it says: every image a report or the README links exists, and
every table row has its header's number of cells (a label's own pipe, unescaped, shifts a row).
The reports are read as committed (conftest.committed): a user's own run rewrites reports/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import committed

IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img[^>]+src=\"([^\"]+)\"")
SHIPPED = committed()
DOCS = sorted([SHIPPED / "README.md", *(SHIPPED / "docs").rglob("*.md"), *(SHIPPED / "reports").rglob("*.md")])


def image_links(md: Path) -> list[str]:
    return [a or b for a, b in IMAGE.findall(md.read_text())]


@pytest.mark.parametrize("md", DOCS, ids=lambda p: p.relative_to(SHIPPED).as_posix())
def test_every_image_link_resolves(md):
    links = [link for link in image_links(md) if not re.match(r"[a-z]+://", link)]
    broken = [link for link in links if not (md.parent / link).is_file()]
    assert not broken, f"{md.relative_to(SHIPPED)} links images that do not exist: {broken}"


def test_the_reports_show_figures():
    """The default run's report and the sweep's comparison each embed their figures."""
    assert len(image_links(SHIPPED / "reports/report.md")) >= 3
    assert len(image_links(SHIPPED / "reports/comparison.md")) >= 3


CELL_SEP = re.compile(r"(?<!\\)\|")  # a pipe not escaped as \|


def table_rows(text: str) -> list[list[str]]:
    """Each Markdown table (consecutive lines starting with '|', outside code blocks) as its lines."""
    tables, current, fenced = [], [], False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("|") and not fenced:
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


@pytest.mark.parametrize("md", DOCS, ids=lambda p: p.relative_to(SHIPPED).as_posix())
def test_every_table_row_has_its_headers_cells(md):
    for rows in table_rows(md.read_text()):
        width = len(CELL_SEP.findall(rows[0]))
        bad = [r for r in rows if len(CELL_SEP.findall(r)) != width]
        assert not bad, f"{md.relative_to(SHIPPED)}: rows whose cells do not match the header {rows[0]!r}: {bad[:3]}"
