"""Data sources: name -> loader. A loader turns wherever the images live into `RawImages`.

To add a source, write a module with a `load(params: DataParams) -> RawImages` function and
register it below; `data.source` in params.yaml then accepts its name.
"""

from __future__ import annotations

from typing import Callable

from lsdm.sources.base import RawImages
from lsdm.sources import mnist5k

SOURCES: dict[str, Callable[..., RawImages]] = {
    "mnist5k": mnist5k.load,
}

__all__ = ["SOURCES", "RawImages"]
