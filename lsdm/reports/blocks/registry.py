"""Every generated block, registered by the module that renders it: `@block(name, *sources)` on a
renderer (the repository root -> Markdown lines) puts it in `BLOCKS` under the name its page's markers
use. The engine (lsdm.reports.readme) checks that each source exists before it calls the renderer, so a
renderer reads them without checking."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Render = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Block:
    """One generated part of a page: the files it is rendered from, and how."""

    sources: tuple[str, ...]  # from the repository root, as the block's last line names them
    render: Render  # the repository root -> Markdown lines (without the source line)


BLOCKS: dict[str, Block] = {}


def block(name: str, *sources: str | Path) -> Callable[[Render], Render]:
    """Register the decorated renderer as block `name`, rendered from `sources`; a name taken twice is an
    error (two modules would fight over one page's text)."""

    def register(render: Render) -> Render:
        if name in BLOCKS:
            raise ValueError(f"generated block `{name}` is registered twice")
        BLOCKS[name] = Block(tuple(Path(s).as_posix() for s in sources), render)
        return render

    return register


def read(root: Path, rel: str | Path) -> Any:
    """A block's JSON source."""
    return json.loads((root / rel).read_text())
