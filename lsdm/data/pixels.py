"""The image table's pixels in batches: a stage that sees every image holds one batch of them at a
time, never the whole set as float tensors.

Why: a CelebA-sized table (200,000 images of 64x64x3) is 2.5 GB of bytes and 10 GB as float32, more
than most workstations hold with the copies a stage makes. `image_batches` streams the IMAGES table
in chunks of rows (the table is written in row groups of ~64 MB, `lsdm.io.ROW_GROUP_BYTES`);
`PixelFile` keeps the rows a training loop draws from at random as uint8 in a scratch file and reads
each batch's rows from it with `os.pread`. Not a memory map: mapped pages count toward the process's
memory as the draws touch them, so its peak would grow with the data again.

Either way a batch holds the same floats as `lsdm.data.tables.to_tensor` of the same rows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lsdm.data.schemas import IMAGES
from lsdm.io import iter_table, read_table, release_freed

if TYPE_CHECKING:
    import torch

#: The IMAGES columns without the pixels: what a stage reads to choose rows.
META = ["id", "split", "label", "height", "width", "channels"]
#: Rows per chunk read from the table (a few MB of pixels at 64x64x3).
CHUNK_ROWS = 512


def image_meta(path: str | Path) -> pd.DataFrame:
    """The IMAGES table without its `image` column: ids, splits, labels and shapes, a few bytes a row."""
    return read_table(path, IMAGES, columns=META)


def image_shape(meta: pd.DataFrame) -> tuple[int, int, int]:
    """(channels, height, width) of the table's images (prepare makes them all one shape)."""
    return tuple(int(meta[k].iloc[0]) for k in ("channels", "height", "width"))  # type: ignore[return-value]


def chw_bytes(chunk: pd.DataFrame) -> np.ndarray:
    """IMAGES rows -> their pixels as uint8 [N, C, H, W]."""
    h, w, c = (int(chunk[k].iloc[0]) for k in ("height", "width", "channels"))
    return np.frombuffer(b"".join(chunk["image"]), dtype=np.uint8).reshape(len(chunk), h, w, c).transpose(0, 3, 1, 2)


def as_float(pixels: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [N, C, H, W] -> float [N, C, H, W] in [0, 1] on `device`. Always a fresh copy with
    row-major strides: a transposed view with one channel passes as contiguous but carries strides
    that let a convolution pick its channels-last kernel, which rounds differently."""
    import torch

    return torch.from_numpy(pixels.copy(order="C")).to(device).float().div_(255.0)


def _positions(ids: pd.Series, table: str | Path) -> pd.Series:
    """id -> its place in `ids` (which must be unique)."""
    position = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
    if not position.index.is_unique:
        raise ValueError(f"{table}: the requested ids are not unique")
    return position


def _chunks(path: str | Path, keep: pd.Index | None, rows: int) -> Iterator[pd.DataFrame]:
    """The table's rows in chunks of up to `rows`, in its order; with `keep`, only rows whose id is in it."""
    for chunk in iter_table(path, IMAGES, rows):
        if keep is not None:
            chunk = chunk[chunk["id"].isin(keep)]
            if chunk.empty:
                continue
        yield chunk


def _all_found(found: int, ids: pd.Series, table: str | Path) -> None:
    if found != len(ids):
        raise ValueError(f"{table}: {len(ids) - found} of the {len(ids)} requested ids are not in the table")


def image_batches(
    path: str | Path, ids: pd.Series | None = None, device: torch.device | str = "cpu", rows: int = CHUNK_ROWS
) -> Iterator[tuple[pd.DataFrame, torch.Tensor]]:
    """(rows' metadata, their images as float [n, C, H, W]) for consecutive chunks of the table, in
    its order; with `ids`, only those rows (chunks then hold up to `rows`)."""
    for chunk in _chunks(path, None if ids is None else pd.Index(ids), rows):
        yield chunk.drop(columns="image"), as_float(chw_bytes(chunk), device)


def load_images(path: str | Path, ids: pd.Series, device: torch.device | str = "cpu") -> torch.Tensor:
    """The images of `ids`, in that order, as one float tensor [len(ids), C, H, W]: for the sets a
    stage holds whole (the pairs, a capped held-out set). The table streams past; only these rows
    are kept, so memory is this set and one chunk, not the table."""
    import torch

    if len(ids) == 0:
        raise ValueError(f"{path}: no images requested")
    position, out, found = _positions(ids, path), None, 0
    for chunk in _chunks(path, position.index, CHUNK_ROWS):
        pixels = chw_bytes(chunk)
        if out is None:
            out = torch.empty((len(ids), *pixels.shape[1:]), device=device)
        out[torch.from_numpy(position[chunk["id"]].to_numpy(copy=True))] = as_float(pixels, device)
        found += len(chunk)
    _all_found(found, ids, path)
    return out


# The scratch files below hold fixed-size uint8 rows, moved straight between the file and numpy
# memory: a bytes object per row would split the heap (lsdm.io.release_freed).


def write_row(fd: int, row: np.ndarray, at: int) -> None:
    """Row number `at` of a file of `row.size`-byte rows := `row` (uint8)."""
    os.pwrite(fd, np.ascontiguousarray(row, dtype=np.uint8).data, at * row.size)


def read_rows(fd: int, idx: np.ndarray, row_bytes: int) -> np.ndarray:
    """uint8 [len(idx), row_bytes]: rows `idx` of a file of `row_bytes`-byte rows."""
    out = np.empty((len(idx), row_bytes), dtype=np.uint8)
    for k, i in enumerate(idx):
        if os.preadv(fd, [out[k]], int(i) * row_bytes) != row_bytes:
            raise OSError(f"short read of row {int(i)} from a scratch file of {row_bytes}-byte rows")
    return out


class ScratchImages:
    """uint8 images of one shape appended to an unlinked scratch file instead of memory, read back
    by index (`images[idx]`, an int or an index array, as a numpy array's rows would be): what
    prepare holds of an image folder while it decodes it (200,000 images of 64x64x3 are 2.5 GB of
    disk here, not of memory). Quacks as the uint8 [N, H, W, C] array `RawImages.images` expects."""

    dtype, ndim = np.dtype(np.uint8), 4

    def __init__(self, scratch: str | Path | None = None):
        self.file = tempfile.TemporaryFile(prefix="lsdm-images-", dir=scratch)  # gone when closed or collected
        self.n, self.row_shape, self.row_bytes = 0, None, 0

    def append(self, image: np.ndarray) -> None:
        if self.row_shape is None:
            self.row_shape, self.row_bytes = image.shape, image.size
        elif image.shape != self.row_shape:
            raise ValueError(f"image of shape {image.shape} among images of shape {self.row_shape}")
        write_row(self.file.fileno(), image, self.n)
        self.n += 1

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, *(self.row_shape or (0, 0, 0)))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: int | np.ndarray) -> np.ndarray:
        rows = np.atleast_1d(np.asarray(idx))
        if rows.size and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"rows {rows.min()}..{rows.max()} of {self.n} images")
        out = read_rows(self.file.fileno(), rows, self.row_bytes).reshape(-1, *self.shape[1:])
        return out[0] if np.ndim(idx) == 0 else out


class PixelFile:
    """The images of `ids` (in that order) as uint8 in a scratch file, read by index: `pixels[idx]`
    is the float batch [len(idx), C, H, W] on `device`, as `to_tensor(rows)[idx]` would be. Made by
    `PixelFile.of` (which deletes the file afterwards); memory: one table chunk while writing, one
    batch while reading."""

    def __init__(self, fd: int, n: int, shape: tuple[int, int, int], device: torch.device | str):
        self.fd, self.n, self.shape, self.device = fd, n, shape, device
        self.row_bytes = int(np.prod(shape))

    @classmethod
    @contextlib.contextmanager
    def of(
        cls, table: str | Path, ids: pd.Series, device: torch.device | str = "cpu", scratch: str | Path | None = None
    ) -> Iterator[PixelFile]:
        """Stream the rows of `ids` out of the IMAGES `table` into a file in `scratch` (None: the
        system's temporary folder) and yield the store; the file is removed on exit."""
        position = _positions(ids, table)
        with tempfile.TemporaryFile(prefix="lsdm-pixels-", dir=scratch) as f:
            fd, written, shape = f.fileno(), 0, None
            for chunk in _chunks(table, position.index, CHUNK_ROWS):
                pixels = chw_bytes(chunk)
                shape = shape or pixels.shape[1:]
                for at, image in zip(position[chunk["id"]].to_numpy(), pixels):
                    write_row(fd, image, int(at))
                written += len(chunk)
            _all_found(written, ids, table)
            yield cls(fd, len(ids), tuple(int(s) for s in shape) if shape else (0, 0, 0), device)

    def __len__(self) -> int:
        return self.n

    def read(self, idx: np.ndarray) -> np.ndarray:
        """uint8 [len(idx), C, H, W] of rows `idx`."""
        return read_rows(self.fd, idx, self.row_bytes).reshape(len(idx), *self.shape)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return as_float(self.read(idx.cpu().numpy()), self.device)

    def batches(self, batch_size: int = CHUNK_ROWS) -> Iterator[torch.Tensor]:
        """Every row in order, `batch_size` at a time, as float tensors."""
        for start in range(0, self.n, batch_size):
            yield as_float(self.read(np.arange(start, min(start + batch_size, self.n))), self.device)
            release_freed()
