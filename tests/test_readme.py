"""Every figure in the generated blocks of the README and the docs pages comes from a committed file,
and says which: the blocks match what `lsdm.reports.readme` renders from those files as committed
(HEAD's, not the workspace's: a user's own `make repro` rewrites them), each block lives in exactly
one page, the files are tracked by git, and a changed file makes `--check` fail on exactly the blocks
that read it."""

from __future__ import annotations

import json
import shutil

import pytest
from support.checkout import BIN, ROOT
from support.docs import PIPELINE_WRITES, committed
from support.processes import run

from lsdm.orchestration.git import git
from lsdm.reports import readme

SHIPPED = committed()  # HEAD's results/ and reports/, the workspace's README.md and docs/
SOURCES = sorted({s for b in readme.BLOCKS.values() for s in b.sources})


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """Each block as the committed files give it."""
    return {name: readme.render(name, SHIPPED) for name in readme.BLOCKS}


def test_the_readme_blocks_match_their_files(capsys):
    rc = readme.main(["--check", "--checkout", str(SHIPPED)])
    assert rc == 0, f"stale generated blocks; run `make readme`:\n{capsys.readouterr().out}"


def test_every_block_is_in_one_page_and_names_its_committed_sources(rendered):
    placed = readme.placed(SHIPPED)
    assert sorted(placed) == sorted(readme.BLOCKS), f"blocks in no page: {sorted(set(readme.BLOCKS) - set(placed))}"
    assert {p.relative_to(SHIPPED).parts[0] for p in placed.values()} == {"README.md", "docs"}
    tracked = set(git(["ls-files", "--", *SOURCES], ROOT).stdout.split())
    assert tracked == set(SOURCES), f"source files not committed: {sorted(set(SOURCES) - tracked)}"
    for name, block in readme.BLOCKS.items():
        body = rendered[name]
        assert all(f"`{s}`" in body.splitlines()[-2] for s in block.sources), f"{name} does not name its sources"


def test_benchmark_files_are_measured_or_marked_transcribed(rendered):
    """A figure file either records where it was measured or says plainly that it was not, and the
    README repeats that warning wherever it shows a transcribed file."""
    files = sorted((SHIPPED / "results/benchmarks").glob("*.json")) + sorted(
        (SHIPPED / "results/superres").glob("*.json")
    )
    assert files
    text = "\n".join(rendered.values())
    for f in files:
        doc = json.loads(f.read_text())
        if doc.get("transcribed_from"):
            assert "Transcribed, not re-measured" in text and doc["command"] in text, f
        else:
            assert doc["commit"] and doc["date"] and doc["machine"]["cores"] >= 1, f
            assert doc["command"].startswith("python benchmarks/"), f


def test_a_docs_page_links_the_images_of_its_blocks_from_docs():
    """A block's image links are written from the repository root and rewritten relative to its page."""
    page = readme.placed(SHIPPED)["unpaired-pool"]
    assert page.parent.name == "docs"
    assert "](reports/comparison-unpaired_pool/" in readme.render("unpaired-pool", SHIPPED)
    assert "](../reports/comparison-unpaired_pool/fidelity_vs_unpaired.png)" in page.read_text()


@pytest.fixture
def copy(tmp_path):
    """The README, the docs pages and every block's sources in a throwaway root."""
    for rel in ["README.md", *SOURCES]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIPPED / rel, tmp_path / rel)
    shutil.copytree(SHIPPED / "docs", tmp_path / "docs")
    return tmp_path


def check(root, capsys) -> tuple[int, str]:
    rc = readme.main(["--check", "--checkout", str(root)])
    return rc, capsys.readouterr().out


def test_a_changed_source_makes_its_blocks_stale_and_a_rewrite_fixes_them(copy, capsys):
    metrics = copy / "results/evaluate/metrics.json"
    doc = json.loads(metrics.read_text())
    doc["eval"]["label_accuracy"] = 0.5
    metrics.write_text(json.dumps(doc))
    before = (copy / "README.md").read_text()
    docs_before = (copy / "docs/claims.md").read_text()

    rc, out = check(copy, capsys)
    assert rc == 1
    assert "`default-run` is stale" in out
    assert [n for n in readme.BLOCKS if f"`{n}` is stale" in out] == ["default-run"], (
        out
    )  # the bound's text is unchanged
    assert (copy / "README.md").read_text() == before  # --check writes nothing

    assert readme.main(["--checkout", str(copy)]) == 0
    assert (copy / "docs/claims.md").read_text() == docs_before  # the bound reads the same files: not stale
    after = (copy / "README.md").read_text()
    assert "| label accuracy | 0.500 |" in after and "| label accuracy | 0.500 |" not in before
    outside = lambda t: readme._BLOCK.sub("", t)  # noqa: E731
    assert outside(after) == outside(before)  # text outside the blocks untouched
    assert check(copy, capsys)[0] == 0


def test_a_changed_file_makes_stale_exactly_the_blocks_that_read_it(copy, capsys):
    for rel, stale in (
        ("results/sweep/sweep.json", ["sweep", "sweep-verdicts"]),
        (readme.BENCH_FANOUT_SHIPPED, ["fanout", "sweep", "sweep-verdicts"]),
        ("results/sweep-fair_v3/sweep.json", ["fanout", "image-filter-test", "sweep", "sweep-verdicts"]),
    ):
        meta = copy / rel
        doc = json.loads(meta.read_text())
        doc["tag"] = "changed"
        meta.write_text(json.dumps(doc))
        rc, out = check(copy, capsys)
        assert rc == 1
        assert sorted(n for n in readme.BLOCKS if f"`{n}` is stale" in out) == stale


def test_a_missing_source_or_a_bad_marker_is_an_error(copy, capsys, tmp_path):
    (copy / readme.BENCH_PIPELINE).unlink()
    assert readme.main(["--check", "--checkout", str(copy)]) == 2
    assert readme.BENCH_PIPELINE in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    for text in (
        "<!-- generated: nope -->\nx\n<!-- /generated: nope -->\n",
        "<!-- generated: superres -->\nno end marker\n",
    ):
        (bad / "README.md").write_text(text)
        assert readme.main(["--check", "--checkout", str(bad), "--root", str(SHIPPED)]) == 2


def test_a_block_in_two_pages_is_an_error(copy, capsys):
    """Each block lives in one page: a copy elsewhere would be a second place for the same figures."""
    page = copy / "docs/extra.md"
    page.write_text("# Extra\n\n<!-- generated: superres -->\n<!-- /generated: superres -->\n")
    assert readme.main(["--checkout", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "`superres`" in err and "extra.md" in err
    assert page.read_text().count("\n") == 4  # nothing rewritten


@pytest.mark.slow
def test_the_readme_and_report_tests_pass_after_the_user_reruns_the_pipeline(tmp_path):
    """`make repro` then `make test`: the default run, rerun on another CPU, rewrites results/ and
    reports/ with figures that differ in the last digits. A checkout whose workspace results differ
    from its commit (here: changed by hand, as a rerun or a `dvc exp run` leaves them) still passes
    the tests that read the shipped results, because they read the committed ones."""
    tracked = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT).stdout.split("\0")
    for rel in filter(None, tracked):
        if (ROOT / rel).is_file() and rel.split("/")[0] not in PIPELINE_WRITES:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, tmp_path / rel)
    for rel in PIPELINE_WRITES:  # as shipped (HEAD's): this checkout's own `make repro` may have rewritten them
        if (committed() / rel).is_dir():
            shutil.copytree(committed() / rel, tmp_path / rel)
        elif (committed() / rel).exists():
            shutil.copy2(committed() / rel, tmp_path / rel)
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "-c", "user.email=t@lsdm.invalid", "-c", "user.name=t", "commit", "-qm", "shipped"], tmp_path)
    metrics = tmp_path / "results/evaluate/metrics.json"
    doc = json.loads(metrics.read_text())
    doc["eval"]["label_accuracy"] = 0.123  # as a rerun elsewhere leaves it: not the committed figure
    metrics.write_text(json.dumps(doc))
    (tmp_path / "reports/report.md").write_text("| a | b |\n|---|---|\n| half a row |\n![gone](nowhere.png)\n")
    assert {"results", "reports"} <= set(PIPELINE_WRITES)
    assert readme.main(["--check", "--checkout", str(tmp_path)]) == 1  # the workspace is stale
    p = run(
        [
            str(BIN / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "not after_the_user_reruns",
            "tests/test_readme.py",
            "tests/test_reports.py",
        ],
        tmp_path,
        check=False,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
