"""The committed Markdown shows what it says: every image a report or the README links exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT

IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img[^>]+src=\"([^\"]+)\"")
DOCS = sorted([ROOT / "README.md", *(ROOT / "reports").rglob("*.md")])


def image_links(md: Path) -> list[str]:
    return [a or b for a, b in IMAGE.findall(md.read_text())]


@pytest.mark.parametrize("md", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_image_link_resolves(md):
    links = [link for link in image_links(md) if not re.match(r"[a-z]+://", link)]
    broken = [link for link in links if not (md.parent / link).is_file()]
    assert not broken, f"{md.relative_to(ROOT)} links images that do not exist: {broken}"


def test_the_reports_show_figures():
    """The default run's report and the sweep's comparison each embed their figures."""
    assert len(image_links(ROOT / "reports/report.md")) >= 3
    assert len(image_links(ROOT / "reports/comparison.md")) >= 3
