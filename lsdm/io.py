"""File I/O with two guarantees: tables are validated on every read and write, and nothing is
ever half-written at its final path (temp file or directory in the same folder, then rename).

An interrupted stage therefore leaves either the previous output or none, never a truncated file
that DVC or the next stage could take as valid.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lsdm.errors import DataError

if TYPE_CHECKING:
    import torch

#: Every file read through this module while tracing (`lsdm <stage>` with $LSDM_TRACE set records
#: them, with the modules the stage imported, so a test can hold dvc.yaml's deps to the truth).
READS: set[str] = set()


def _read(path: Path) -> Path:
    READS.add(os.path.relpath(path))
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `path` as a whole when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(_read(Path(path)).read_text())


def write_table(df: pd.DataFrame, path: str | Path, schema: Any, arrow_schema: pa.Schema | None = None) -> None:
    """Validate `df` with a pandera schema and write it as Parquet, atomically.

    `arrow_schema` pins column types that pandas cannot express (fixed-size float32 lists).
    Output bytes depend only on the data: same rows in, byte-identical file out.
    """
    df = schema.validate(df).reset_index(drop=True)
    table = pa.Table.from_pandas(df, schema=arrow_schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_table(path: str | Path, schema: Any) -> pd.DataFrame:
    """Read and validate a table as written: no type is coerced on the way in (a float label read as
    an int would be silently truncated), and a mismatch is a DataError naming the file and column."""
    import pandera.errors

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: table not found (has the stage that writes it run?)")
    try:
        df = pd.read_parquet(_read(path))
    except (OSError, ValueError) as e:  # pyarrow's errors for a file that is not Parquet, or is cut short
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e}); rerun the stage that "
                        "writes it (`dvc repro -f <stage>`)") from None
    strict = copy.deepcopy(schema)
    strict.coerce = False
    try:
        return strict.validate(df)
    except (pandera.errors.SchemaError, pandera.errors.SchemaErrors) as e:
        if isinstance(e, pandera.errors.SchemaErrors):  # raised for some checks even when not lazy
            e = e.schema_errors[0]
        column = getattr(e.schema, "name", None)
        where = f"column {column!r}: " if column and column != schema.name else ""
        reason = " ".join(str(e).split())[:300]
        raise DataError(f"{path}: not a valid {schema.name!r} table ({where}{reason}); it was edited or written by "
                        "another version: rerun the stage that writes it (`dvc repro -f <stage>`)") from None


def save_checkpoint(path: str | Path, name: str, config: dict[str, Any], state: dict[str, Any], **extra: Any) -> None:
    """A checkpoint names its registry entry and config, so `load_checkpoint` rebuilds the network."""
    import torch  # here, not at the top: stages that only move tables start ~3 s sooner without it

    buf = io.BytesIO()  # saving to a buffer keeps the file name out of the archive: same weights, same bytes
    torch.save({"name": name, "config": config, "state_dict": state, **extra}, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found (has the stage that writes it run?)")
    import torch

    # weights_only: a checkpoint holds tensors, numbers, strings, lists and dicts; nothing is unpickled as code
    return torch.load(_read(path), map_location=map_location, weights_only=True)
