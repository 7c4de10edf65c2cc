"""A folder of images: torchvision's ImageFolder layout (one subfolder per class gives the labels)
or a flat folder (unlabelled: super-resolution, e.g. CelebA aligned crops).

Images are converted to `data.channels` (1: grayscale, 3: RGB) and resized to `data.image_size`
(center crop to a square, then area/bicubic resize). An unreadable file is an error naming it, or
with `data.on_corrupt: skip` is skipped and counted. Ids are paths relative to the root, so the
hash split keeps every image's split when files are added. Class folders whose names are all
numbers are ordered as numbers ("2" before "10"), so folders 0..K-1 get labels 0..K-1. Hidden files
and folders (names starting with a dot, such as macOS's `._name.png`) are ignored, as file browsers do.

`census` lists the same files and reads only their headers (size, mode) and, for PNG, checks their
chunks: the up-front check (`lsdm check`) sees every file `load` would refuse for its header or
structure, without decoding pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from lsdm.data.pixels import ScratchImages
from lsdm.data.schemas import UNLABELLED, Census, RawImages
from lsdm.errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}  # 16-bit grayscale: scaled to 8 bits, not clipped
# 32-bit integer and float pixels have no range a file states: converting them would clip or guess
REFUSED_MODES = {"I": "32-bit integer", "F": "32-bit float"}
# what `Image.open`, `verify` and decoding raise for a file that is not a usable image (PIL's format
# plugins raise SyntaxError and EOFError for broken structure; a decompression bomb has its own)
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def _usable(im: Image.Image) -> None:
    """Refuse, from the header alone, a pixel format that cannot become 8-bit gray or RGB faithfully."""
    if im.mode in REFUSED_MODES:
        raise ValueError(
            f"{REFUSED_MODES[im.mode]} pixels (mode {im.mode}) have no fixed range; "
            "save the image with 8 or 16 bits per channel"
        )


def _read(path: Path, size: int, channels: int) -> np.ndarray:
    with Image.open(path) as im:
        _usable(im)
        im.load()  # decode now, so a truncated file fails here, with its name
        if im.mode in SIXTEEN_BIT:  # PIL's convert would clip 0..65535 at 255 (a white image)
            im = Image.fromarray(np.round(np.asarray(im, dtype=np.float64) / 257).astype(np.uint8), mode="L")
        im = im.convert("L" if channels == 1 else "RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC if size > s else Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).reshape(size, size, channels)


def _header(path: Path) -> None:
    """Check `path` is a usable image before any stage runs: PIL reads the header, and `verify` checks
    a PNG's chunks and checksums without decoding. Other formats' `verify` checks little (a truncated
    JPEG passes it), so they are decoded, at reduced scale where the format allows (`draft`: a
    JPEG's DCT scaling), which still reads every byte of the compressed data."""
    with Image.open(path) as im:
        _usable(im)
        png = im.format == "PNG"
        im.verify()
    if not png:
        with Image.open(path) as im:
            im.draft(im.mode, (16, 16))
            im.load()


def _hidden(path: Path, folder: Path) -> bool:
    """A name, or a folder's name below `folder`, that starts with a dot: hidden, as every file browser
    hides it (the `._name.png` files macOS leaves on shared drives, `.ipynb_checkpoints/`)."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    """Image files in `folder`, hidden ones left out; a link with an image's name that leads nowhere is
    listed (and then reported as unreadable), not dropped without a word."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in found
        if p.suffix.lower() in EXTENSIONS and (p.is_file() or p.is_symlink()) and not _hidden(p, folder)
    )


def _check_links(root: Path) -> None:
    """A folder link that points at a folder containing it makes the tree infinite (rglob stops at
    links, but a class folder that is such a link, or DVC hashing the root, would not): refused."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            link = Path(dirpath) / name
            if not link.is_symlink():
                continue
            try:
                target = link.resolve(strict=True)
            except (OSError, RuntimeError):  # a loop of links, or a link to nothing
                if name in dirnames or link.suffix.lower() not in EXTENSIONS:
                    raise DataError(
                        f"{link}: a symbolic link that loops or leads nowhere ({os.readlink(link)!r}); "
                        "remove it or point it at a real folder"
                    ) from None
                continue  # an image's name: reported as an unreadable file
            if target.is_dir() and (target == link.parent.resolve() or target in link.parent.resolve().parents):
                raise DataError(
                    f"{link}: a symbolic link to {target}, a folder that contains it (a loop); "
                    "remove it, or link to a folder outside data.root"
                )


def _class_order(names: list[str]) -> list[str]:
    """Names in label order: numerically when every name is a number, else alphabetically."""
    if names and all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def list_images(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """(files, labels, class names): the subfolders that hold images are the classes; else the flat
    folder, unlabelled. Images both at the top and in subfolders are ambiguous: an error, not a guess."""
    _check_links(root)
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
    classes = _class_order(list(by_class))
    for k, name in enumerate(classes):
        files += by_class[name]
        labels += [k] * len(by_class[name])
    return files, labels, classes


def _root(params) -> Path:
    if not params.root:
        raise DataError("data.source = 'image_folder' needs data.root: the folder of images (or of class folders)")
    root = Path(params.root)
    if not root.is_dir():
        raise DataError(f"data.root = {str(root)!r}: not a directory")
    return root


def _each_readable(
    params, read: Callable[[Path], object], collect: Callable[[], Any] = list
) -> tuple[Any, list[str], list[int], list[str], list[str]]:
    """`read` every image file under data.root: (results, ids, labels, skipped ids, class names); the
    results are appended to `collect()` (a list by default). An unreadable file is a
    DataError naming it, or with data.on_corrupt: skip is skipped."""
    root = _root(params)
    files, labels, classes = list_images(root)
    if not files:
        raise DataError(f"data.root = {str(root)!r}: no images ({', '.join(sorted(EXTENSIONS))}) found")
    out, ids, keep_labels, skipped = collect(), [], [], []
    # a CelebA-sized folder takes minutes to decode: a bar on stderr, as the training stages show
    for path, label in tqdm(
        zip(files, labels),
        total=len(files),
        desc=f"image_folder: {root.name}",
        unit="file",
        mininterval=2.0,
        disable=len(files) < 10_000,
    ):
        rel = path.relative_to(root).as_posix()
        try:
            out.append(read(path))
        except UNREADABLE as e:
            if params.on_corrupt == "skip":
                skipped.append(rel)
                continue
            raise DataError(
                f"{path}: cannot read image ({e.__class__.__name__}: {e}); fix or remove it, "
                "or set data.on_corrupt: skip to skip unreadable files"
            ) from None
        ids.append(rel)
        keep_labels.append(label)
    if not ids:
        raise DataError(f"data.root = {str(root)!r}: none of the {len(files)} images could be read")
    return out, ids, keep_labels, skipped, classes


def load(params) -> RawImages:
    images, ids, labels, skipped, classes = _each_readable(
        params, lambda p: _read(p, params.image_size, params.channels), ScratchImages
    )
    if classes:
        print(f"image_folder: {len(ids)} images in {len(classes)} classes: {classes}")
    return RawImages(
        ids=ids,
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        split_by="hash",
        skipped=skipped,
        class_names=classes or None,
    )


def census(params) -> Census:
    _, ids, labels, skipped, classes = _each_readable(params, _header)
    return Census(
        ids=ids,
        labels=np.asarray(labels, dtype=np.int64),
        split_by="hash",
        skipped=skipped,
        class_names=classes or None,
    )
