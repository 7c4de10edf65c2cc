"""A folder of images: torchvision's ImageFolder layout (one subfolder per class gives the labels)
or a flat folder (unlabelled: super-resolution, e.g. CelebA aligned crops).

Images are converted to `data.channels` (1: grayscale, 3: RGB) and resized to `data.image_size`
(center crop to a square, then area/bicubic resize). An unreadable file is an error naming it, or
with `data.on_corrupt: skip` is skipped and counted. Ids are paths relative to the root, so the
hash split keeps every image's split when files are added.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lsdm.errors import DataError
from lsdm.data.schemas import UNLABELLED
from lsdm.data.schemas import RawImages

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _read(path: Path, size: int, channels: int) -> np.ndarray:
    with Image.open(path) as im:
        im.load()  # decode now, so a truncated file fails here, with its name
        im = im.convert("L" if channels == 1 else "RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC if size > s else Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).reshape(size, size, channels)


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in EXTENSIONS and p.is_file())


def list_images(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """(files, labels, class names): the subfolders that hold images are the classes; else the flat
    folder, unlabelled. Images both at the top and in subfolders are ambiguous: an error, not a guess."""
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    by_class = {d.name: found for d in folders if (found := _images_in(d, recursive=True))}
    top = _images_in(root, recursive=False)
    if by_class and top:
        raise DataError(
            f"data.root = {str(root)!r}: {len(top)} images at its top level and class folders {sorted(by_class)}: "
            "put every image in a class folder (labelled), or move the subfolders out (a flat, unlabelled folder)"
        )
    if not by_class:
        return top, [UNLABELLED] * len(top), []
    files, labels = [], []
    for k, (name, found) in enumerate(sorted(by_class.items())):
        files += found
        labels += [k] * len(found)
    return files, labels, sorted(by_class)


def load(params) -> RawImages:
    if not params.root:
        raise DataError("data.source = 'image_folder' needs data.root: the folder of images (or of class folders)")
    root = Path(params.root)
    if not root.is_dir():
        raise DataError(f"data.root = {str(root)!r}: not a directory")
    files, labels, classes = list_images(root)
    if not files:
        raise DataError(f"data.root = {str(root)!r}: no images ({', '.join(sorted(EXTENSIONS))}) found")
    images, ids, keep_labels, skipped = [], [], [], []
    for path, label in zip(files, labels):
        rel = path.relative_to(root).as_posix()
        try:
            images.append(_read(path, params.image_size, params.channels))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            if params.on_corrupt == "skip":
                skipped.append(rel)
                continue
            raise DataError(
                f"{path}: cannot read image ({e.__class__.__name__}: {e}); fix or remove it, "
                "or set data.on_corrupt: skip to skip unreadable files"
            ) from None
        ids.append(rel)
        keep_labels.append(label)
    if not images:
        raise DataError(f"data.root = {str(root)!r}: none of the {len(files)} images could be read")
    if classes:
        print(f"image_folder: {len(ids)} images in {len(classes)} classes: {classes}")
    return RawImages(
        ids=ids,
        images=np.stack(images),
        labels=np.asarray(keep_labels, dtype=np.int64),
        split_by="hash",
        skipped=skipped,
    )
