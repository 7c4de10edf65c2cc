"""The front door and the docs site: the README stays a five-minute read, the site builds with
`mkdocs build --strict` (no broken link, anchor or image), and the prose around the generated blocks
cannot drift from the files: a decimal number in prose is one a generated block shows, rows are
named rather than counted, the stage table lists every stage, no issue numbers. Pages and results are
read as committed (support.docs.committed): a user's own run rewrites results/ and reports/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from support.checkout import BIN, ROOT
from support.docs import committed
from support.processes import run

from lsdm.reports import readme

SHIPPED = committed()
PAGES = readme.pages(SHIPPED)
README_MAX_LINES = 200


def rel(page: Path) -> str:
    return page.relative_to(SHIPPED).as_posix()


def prose(text: str) -> str:
    """A page without what is not prose: generated blocks, HTML comments, code (fenced and inline),
    link targets."""
    text = readme._BLOCK.sub("", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def test_the_site_builds_strict(tmp_path):
    """Every page is in the nav, every link and anchor resolves, every image a page shows exists
    (docs/hooks.py serves those under reports/; a missing one fails the build)."""
    site = tmp_path / "site"
    p = run(
        [str(BIN / "mkdocs"), "build", "--strict", "-f", str(SHIPPED / "mkdocs.yml"), "-d", str(site)],
        SHIPPED,
        check=False,
        timeout=300,
        extra_env={"NO_MKDOCS_2_WARNING": "1"},
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    nav = yaml.safe_load((SHIPPED / "mkdocs.yml").read_text())["nav"]
    listed = {next(iter(item.values())) for item in nav}
    assert listed == {rel(p).removeprefix("docs/") for p in PAGES if p.parent != SHIPPED}, "a page missing from the nav"
    shown = re.findall(r'<img[^>]+src="([^"]+\.png)"', (site / "claims/index.html").read_text())
    assert shown and all((site / "claims" / s).resolve().is_file() for s in shown), shown


def test_a_missing_figure_fails_the_strict_build(tmp_path):
    """The hook adds only images that exist: a link to a missing one stays broken, and strict fails."""
    tree = tmp_path / "tree"
    shutil.copytree(SHIPPED / "docs", tree / "docs")
    shutil.copy(SHIPPED / "mkdocs.yml", tree / "mkdocs.yml")
    (tree / "reports").mkdir()
    page = tree / "docs/claims.md"
    page.write_text(page.read_text() + "\n![gone](../reports/comparison/no_such_figure.png)\n")
    p = run(
        [str(BIN / "mkdocs"), "build", "--strict", "-d", str(tmp_path / "site")],
        tree,
        check=False,
        timeout=300,
        extra_env={"NO_MKDOCS_2_WARNING": "1"},
    )
    assert p.returncode != 0
    assert "no_such_figure.png" in p.stdout + p.stderr


def test_the_readme_is_a_front_door():
    text = (SHIPPED / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    heads = re.findall(r"^## (.+)$", text, re.M)
    assert heads[:3] == ["Two commands", "Use it", "Results"] and heads[-1] == "Read on", heads
    assert "make repro" in text and "make test" in text
    # the four ways lsdm is used, each as its command (tests/test_pipeline.py and test_prefect_server.py run them)
    use = text.split("## Use it", 1)[1].split("\n## ", 1)[0]
    for way in (
        "dvc repro",
        "reports/report.md",
        "dvc exp show",
        "prefect deployment run lsdm/full",
        "prefect server start",
        "prefect work-pool create",
        "prefect worker start",
    ):
        assert way in use, way
    assert {"default-run", "sweep-verdicts"} <= set(readme.names_in(text))
    assert re.search(r"^!\[[^\]]+\]\(reports/[^)]+\.png\)$", readme._BLOCK.sub("", text), re.M), "a figure"


def slug(heading: str) -> str:
    """MkDocs' (Python-Markdown toc's) anchor of a heading."""
    s = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[-\s]+", "-", s).strip("-")


def test_the_readme_links_resolve():
    """The README is not part of the site, so strict does not check it: its relative links and their
    anchors are checked here."""
    text = (SHIPPED / "README.md").read_text()
    links = re.findall(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        target = SHIPPED / path
        assert target.is_file(), f"README links {link}: no such file"
        if anchor:
            heads = [slug(h) for h in re.findall(r"^#+ (.+)$", target.read_text(), re.M)]
            assert anchor in heads, f"README links {link}: no such heading in {path}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_no_issue_numbers(page):
    """Headings and prose say what, not which ticket."""
    found = re.findall(r"\(?\bissues? #?\d+\)?|(?<![\w&/])#\d+\b", prose(page.read_text()), re.I)
    assert not found, f"{rel(page)}: {found}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_rows_are_named_not_counted(page):
    """A table's rows are referred to by their first cell: 'the last row' points elsewhere once a row
    is appended."""
    counted = re.compile(
        r"\b(?:first|second|third|last|next|previous|penultimate|second-to-last|top|bottom)"
        r"(?: two| three)? rows?\b|\brow (?:above|below)\b|\b(?:the )?rows? \d+\b",
        re.I,
    )
    assert not counted.findall(prose(page.read_text())), rel(page)


def test_named_rows_exist():
    """Prose names tuning rows by their label in quotes: each named row is one the table has."""
    labels = {label for label, _ in readme.TUNING_ROWS}
    text = " ".join(prose((SHIPPED / "docs/matcher-tuning.md").read_text()).split())
    named = re.findall(r'rows? "([^"]+)"', text)
    assert named
    assert all(n in labels for n in named), [n for n in named if n not in labels]


# A decimal in prose that no generated block shows: each with where it comes from. Anything else must
# be a figure a block renders from its file (tests/test_readme.py holds the blocks to the files).
NOT_FROM_A_BLOCK = {
    "3.10": "a Python version",
    "3.8": "a Prefect version",
    "0.151": "a fastapi version",
    "0.970": "the default run rerun on another machine (getting-started: reproducibility); no file holds it",
    "22.5": "the default run rerun on another machine (getting-started: reproducibility); no file holds it",
    "0.473": "the default run rerun on another machine (getting-started: reproducibility); no file holds it",
    "24.7": "the default run as committed before its rerun with the class-aware-ready matcher (getting-started)",
    "0.427": "the default run as committed before its rerun with the class-aware-ready matcher (getting-started)",
    "8.5": "one run of benchmarks/fault_injection.py (reliability); it writes no file",
    "21.2": "the sweep bench-w2, committed in 98d7665 and since replaced (matcher-tuning)",
    "23.7": "the sweep bench-w2, committed in 98d7665 and since replaced (matcher-tuning)",
    "1.1": "the sweep bench-w2, committed in 98d7665 and since replaced (matcher-tuning)",
    "2.7": "the sweep bench-w2, committed in 98d7665 and since replaced (matcher-tuning)",
    "1.18": "a scipy version (pipeline-and-parameters: On a GPU)",
    "4.7": "the graphed-vs-eager weight gap on an H200 (On a GPU): results/benchmarks/gpu-2026-12-04/run2-9173a11-gpu_tests_quick.log",
    "10.8": "seconds fit_matcher spent in Python's compile on an H200 (On a GPU): results/benchmarks/gpu-2026-12-04/run4-f9a553e-fit_matcher-profile.txt",
    "9.4": "seconds evaluate spent in Python's compile on an H200 (On a GPU): results/benchmarks/gpu-2026-12-04/run4-f9a553e-evaluate-profile.txt",
    "5.6": "fit_latent's peak in the first measurement at 200,000 images, before streaming (your-data); no file holds it",
}
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")


def shown_numbers() -> list[float]:
    """Every number the pages' generated blocks show (tests/test_readme.py holds each block to what its
    committed files render)."""
    text = "\n".join(m.group("body") for page in PAGES for m in readme._BLOCK.finditer(page.read_text()))
    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


def test_prose_numbers_are_ones_the_blocks_show():
    """A decimal typed in prose (at any rounding) is a figure some generated block shows, or is listed
    above with its source: when a results file changes, a number copied from it fails here."""
    shown = shown_numbers()
    stray = {}
    for page in PAGES:
        for x in DECIMAL.findall(prose(page.read_text())):
            if x in NOT_FROM_A_BLOCK:
                continue
            d = len(x.split(".")[1])
            if not any(abs(round(y, d) - float(x)) < 10 ** -(d + 3) for y in shown):
                stray.setdefault(rel(page), []).append(x)
    assert not stray, f"numbers in prose that no generated block shows (quote the block, or generate them): {stray}"


def test_the_stage_table_lists_every_stage():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    names = {f"{n}@<method>" if "foreach" in s else n for n, s in stages.items()}
    text = (SHIPPED / "docs/pipeline-and-parameters.md").read_text()
    table = text.split("| stage | reads | writes |\n", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    assert listed == names, (
        f"stages without a row: {sorted(names - listed)}; rows without a stage: {sorted(listed - names)}"
    )


def test_claim_3_quotes_the_sweep_it_names():
    """The claims page's reading of the shipped sweep, figure by figure, against the sweep's table: the
    ranges are over exactly the samplers the sweep block shows (the flow on the pairs alone at NFE 1, 10
    and 100), and the fair baseline's figures are those of `latent_flow_pseudo` at NFE 10 and 100."""
    import pandas as pd

    from lsdm.reports.comparison import mean_std
    from lsdm.reports.stats import count_column, summarise

    df = pd.read_parquet(SHIPPED / readme.SWEEP_TABLE)
    summary, count = summarise(df), count_column(df)
    shown = readme.sweep_samplers(df)
    flows = [s for s in shown if s.startswith("latent_flow_nfe")]
    fair10, fair100 = "latent_flow_pseudo_nfe10", "latent_flow_pseudo_nfe100"

    def cell(sampler: str, metric: str, n: int) -> str:
        r = summary[(summary["sampler"] == sampler) & (summary[count] == n)]
        col = f"eval.{metric}"
        return mean_std(r[f"{col}|mean"].iloc[0], r[f"{col}|std"].iloc[0], int(r[f"{col}|count"].iloc[0])).split(" ± ")[
            0
        ]

    def span(samplers: list[str], metric: str, n: int) -> str:
        values = sorted((float(cell(s, metric, n)), cell(s, metric, n)) for s in samplers)
        return f"{values[0][1]}–{values[-1][1]}"

    fid, acc, density, recall = "fid_evalnet", "label_accuracy", "density", "recall"
    expected = [
        f"{cell('lsdm', fid, 3)} against the flow's {span(flows, fid, 3)} at 3, "
        f"{cell('lsdm', fid, 10)} against {span(flows, fid, 10)} at 10, "
        f"{cell('lsdm', fid, 30)} against {span(flows, fid, 30)} at 30",
        f"({cell('lsdm', fid, 10)} against {cell(fair10, fid, 10)}, {cell('lsdm', fid, 30)} against "
        f"{cell(fair10, fid, 30)}) and a tie at 3 ({cell('lsdm', fid, 3)} against {cell(fair10, fid, 3)})",
        f"worse at 3 ({cell('lsdm', fid, 3)} against {cell(fair100, fid, 3)}",
        f"({cell('lsdm', recall, 3)}, {cell('lsdm', recall, 10)}, {cell('lsdm', recall, 30)} against a real",
        f"that flow {cell(fair100, recall, 3)}, {cell(fair100, recall, 10)}, {cell(fair100, recall, 30)}",
        f"{cell('lsdm', acc, 3)} at 3, below the paper's LSDM ({cell('lsdm_paper', acc, 3)}), pixel_wgan "
        f"({cell('pixel_wgan', acc, 3)}), the flow ({span(flows, acc, 3)}) and the fair flow at 10 steps "
        f"({cell(fair10, acc, 3)})",
        f"pixel_wgan ({cell('lsdm', acc, 30)} against {cell('pixel_wgan', acc, 30)})",
        f"({cell('pixel_wgan', density, 3)} and {cell('pixel_wgan', density, 10)} against LSDM's "
        f"{cell('lsdm', density, 3)} and {cell('lsdm', density, 10)},",
    ]
    text = " ".join(prose((SHIPPED / "docs/claims.md").read_text()).split())
    missing = [e for e in expected if e not in text]
    assert not missing, f"docs/claims.md no longer says what the sweep holds: {missing}"
