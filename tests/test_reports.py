"""The committed Markdown shows what it says: every image a report or the README links exists, and
every table row has its header's number of cells (a label's own pipe, unescaped, shifts a row).
The reports are read as committed (support.docs.committed): a user's own run rewrites reports/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.docs import committed

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


def test_the_estimator_table_applies_the_shipping_rule(tmp_path):
    """An estimator passes at a count only when no headline metric is worse beyond its paired interval:
    the same FID but one seed's noise passes; FID worse by 10 on every split seed fails, and says why."""
    import pandas as pd

    from lsdm.reports.blocks import ladder

    def rows(variant: str, fid: float, jitter: float) -> list[dict]:
        return [
            {
                "variant": variant,
                "n_per_class": n,
                "seed": s,
                "label_accuracy": 0.95,
                "fid_evalnet": fid + jitter * s,
                "recall": 0.7,
                "density": 1.2,
                "density_real": 1.0,
                "train_seconds": 10.0,
            }
            for n in (3, 10)
            for s in (0, 1, 2)
        ]

    shipped = pd.DataFrame(rows(ladder.FAIR, 20.0, 1.0))
    for source in ladder.SOURCES:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shipped.to_csv(tmp_path / source, index=False)
        shipped = shipped.iloc[0:0]  # the shipped rows once
    (good, _), (bad, _) = ladder.ESTIMATORS
    pd.DataFrame(rows(good, 20.0, -0.5) + rows(bad, 30.0, 1.0)).to_csv(tmp_path / ladder.ESTIMATOR, index=False)
    lines = ladder.estimators(tmp_path)
    assert len(lines) == 2 + 4
    assert all(line.endswith("| passes |") for line in lines[2:4]), lines
    assert all(line.endswith("| fails: FID (evalnet) worse |") for line in lines[4:6]), lines
