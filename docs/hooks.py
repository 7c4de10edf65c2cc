"""MkDocs hook: docs pages show the figures the pipeline writes, where it writes them.

A page links a figure by its path from the page, `../reports/comparison/fidelity_vs_pairs.png`, which
GitHub renders as it stands. MkDocs serves only files under docs/: this hook adds each image a page
links outside docs/ to the site at its repository path (site/reports/...), so the same link resolves in
the built site. An image that does not exist is not added, and `mkdocs build --strict` fails on the link.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

_IMAGE = re.compile(r"!\[[^\]]*\]\((\.\./[^)\s]+)")


def on_files(files: Files, config) -> Files:
    docs = Path(config["docs_dir"]).resolve()
    root = docs.parent
    added: set[str] = set()
    for page in sorted(docs.rglob("*.md")):
        for link in _IMAGE.findall(page.read_text()):
            target = (page.parent / link).resolve()
            if not target.is_file() or docs in target.parents or root not in target.parents:
                continue  # missing (strict fails on the link), inside docs/ already, or outside the repository
            rel = target.relative_to(root).as_posix()
            if rel not in added:
                added.add(rel)
                files.append(
                    File(
                        Path("..", rel).as_posix(),
                        src_dir=str(docs),
                        dest_dir=config["site_dir"],
                        use_directory_urls=config["use_directory_urls"],
                        dest_uri=rel,
                        inclusion=InclusionLevel.INCLUDED,
                    )
                )
    return files
