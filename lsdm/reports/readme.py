"""The figures of the README and the docs site, rendered from the committed files that hold them.

A part of README.md or of a page under docs/ between `<!-- generated: NAME -->` and
`<!-- /generated: NAME -->` belongs to this module: `BLOCKS[NAME]` (registered by its renderer in
lsdm.reports.blocks) names its source files and renders its Markdown from them, ending with a line that
names those files. Each block lives in exactly one of those pages. A figure in such a block therefore
always says where it comes from, and cannot drift from it unnoticed: `python -m lsdm.reports.readme
--check` (run by tests/test_readme.py) exits 1 listing every block whose text is not what its files
give. Without `--check` the blocks are rewritten in place (`make readme`); text outside them is never
touched. An image a block shows is linked relative to its page (`reports/...` from README.md,
`../reports/...` from docs/), so GitHub and the MkDocs site (docs/hooks.py) both find it.

Numbers are formatted in the blocks' modules, never typed into a page: to change a figure, change
(rerun) what writes its file, then `make readme`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lsdm.io import atomic_path
from lsdm.reports.blocks import BLOCKS

# names the tests reach through this module, defined where the blocks use them
from lsdm.reports.blocks.benchmarks import BENCH_FANOUT_SHIPPED, BENCH_PIPELINE
from lsdm.reports.blocks.sweep import SWEEP_TABLE, sweep_samplers
from lsdm.reports.blocks.tuning import TUNING_ROWS

__all__ = [
    "BENCH_FANOUT_SHIPPED",
    "BENCH_PIPELINE",
    "BLOCKS",
    "SWEEP_TABLE",
    "TUNING_ROWS",
    "main",
    "names_in",
    "pages",
    "placed",
    "refresh",
    "render",
    "sweep_samplers",
]

README = Path("README.md")
DOCS = Path("docs")
OPEN, CLOSE = "<!-- generated: {} -->", "<!-- /generated: {} -->"
_BLOCK = re.compile(r"<!-- generated: (?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /generated: (?P=name) -->", re.S)
_MARKER = re.compile(r"<!-- /?generated: ([\w.-]+) -->")
_RELATIVE_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|/|#)")  # a Markdown link target relative to the page


def render(name: str, root: Path = Path("."), up: int = 0) -> str:
    """A block's text between its markers: a blank line, its Markdown, the line naming its sources.
    `up`: how many folders below the repository root its page lies (1 for docs/*.md): the block's
    links, written from the root, are made relative to the page."""
    block = BLOCKS[name]
    for s in block.sources:  # checked here, once, so that no renderer need
        if not (root / s).exists():
            raise FileNotFoundError(f"{s}: a generated block's source file is missing")
    src = ", ".join(f"`{s}`" for s in block.sources)
    lines = [*block.render(root), "", f"<sub>Generated from {src} by `make readme`.</sub>"]
    if up:
        lines = [_RELATIVE_LINK.sub("](" + "../" * up, line) for line in lines]
    return "\n" + "\n".join(lines) + "\n\n"


def names_in(text: str) -> list[str]:
    """The blocks a page holds, in order; an unknown name or an unmatched marker is an error."""
    found = [m.group("name") for m in _BLOCK.finditer(text)]
    markers = _MARKER.findall(text)
    if len(markers) != 2 * len(found):
        raise ValueError(f"unmatched generated-block markers: {sorted(set(markers) - set(found)) or markers}")
    unknown = [n for n in found if n not in BLOCKS]
    if unknown:
        raise ValueError(f"unknown generated blocks {unknown}; known: {sorted(BLOCKS)}")
    return found


def refresh(text: str, root: Path = Path("."), up: int = 0) -> tuple[str, list[str]]:
    """`text` with every block rendered afresh, and the names of those whose text changed."""
    names_in(text)
    stale: list[str] = []

    def sub(m: re.Match) -> str:
        name, body = m.group("name"), render(m.group("name"), root, up)
        if body != m.group("body"):
            stale.append(name)
        return OPEN.format(name) + "\n" + body + CLOSE.format(name)

    return _BLOCK.sub(sub, text), stale


def pages(checkout: Path) -> list[Path]:
    """The Markdown pages that may hold blocks: README.md and every page of the docs site."""
    return [p for p in [checkout / README, *sorted((checkout / DOCS).rglob("*.md"))] if p.is_file()]


def placed(checkout: Path) -> dict[str, Path]:
    """Each block's page; a block in two places, or in the same page twice, is an error."""
    where: dict[str, Path] = {}
    for page in pages(checkout):
        for name in names_in(page.read_text()):
            if name in where:
                raise ValueError(f"block `{name}` is in both {where[name]} and {page}: each block lives in one page")
            where[name] = page
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 listing the stale blocks")
    ap.add_argument(
        "--checkout",
        type=Path,
        default=Path("."),
        help="the folder holding README.md and docs/, whose pages' blocks are checked or rewritten",
    )
    ap.add_argument(
        "--root", type=Path, default=None, help="the repository root the sources are read from (default: --checkout)"
    )
    args = ap.parse_args(argv)
    root = args.root or args.checkout
    try:
        placed(args.checkout)
        results = []
        for page in pages(args.checkout):
            text = page.read_text()
            up = len(page.relative_to(args.checkout).parts) - 1
            results.append((page, text, *refresh(text, root, up)))
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"{args.checkout}: {e}", file=sys.stderr)
        return 2
    n = sum(len(names_in(text)) for _, text, _, _ in results)
    stale = [(page, name) for page, _, _, names in results for name in names]
    if args.check:
        for page, name in stale:
            print(f"{page}: block `{name}` is stale (sources: {', '.join(BLOCKS[name].sources)})")
        if not stale:
            print(f"{args.checkout}: {n} generated blocks in {len(results)} pages match their files")
        return 1 if stale else 0
    for page, text, new, _ in results:
        if new != text:
            with atomic_path(page) as tmp:
                tmp.write_text(new)
    names = [name for _, name in stale]
    print(
        f"{args.checkout}: {n} generated blocks, {len(names)} rewritten" + (f" ({', '.join(names)})" if names else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
