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


def list_images(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """(files, labels, class names): class subfolders if any hold images, else the flat folder."""
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes:
        files, labels = [], []
        for k, c in enumerate(classes):
            found = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
            files += found
            labels += [k] * len(found)
        return files, labels, classes
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
    return files, [UNLABELLED] * len(files), []


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
