"""File I/O with two guarantees: tables are validated on every read and write, and nothing is
ever half-written at its final path (temp file or directory in the same folder, then rename).

An interrupted stage therefore leaves either the previous output or none, never a truncated file
that DVC or the next stage could take as valid.

A run killed outright (SIGKILL, a lost machine) cannot clean up after itself, so every temporary
name carries its writer's pid: `.<name>.lsdm-tmp-<pid>-<random>` (being written) and
`.<name>.lsdm-old-<pid>` (the previous directory, set aside for a moment). Both are git- and
DVC-ignored (IGNORE_PATTERNS, in .gitignore and .dvcignore), and the next write of the same path,
or the next start of the stage that owns it (`clean_stage_leftovers`), removes those of dead
writers. A directory is swapped in with one atomic exchange where the kernel offers it (Linux
renameat2); elsewhere it takes two renames, and a writer killed between them leaves the path
missing and the old copy aside, which the next start puts back. The residual risk is pid reuse: a
leftover whose pid now belongs to another live process is kept until that process ends.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import functools
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from lsdm import interrupt
from lsdm.errors import DataError

if TYPE_CHECKING:
    import torch

#: Every file read through this module while tracing (`lsdm <stage>` with $LSDM_TRACE set records
#: them, with the modules the stage imported, so a test can hold dvc.yaml's deps to the truth).
READS: set[str] = set()


def _read(path: Path) -> Path:
    READS.add(os.path.relpath(path))
    return path


TMP_TAG, OLD_TAG = ".lsdm-tmp-", ".lsdm-old-"
#: What .gitignore and .dvcignore must hold so that a killed writer's leftovers never look like outputs.
IGNORE_PATTERNS = (f".*{TMP_TAG}*", f".*{OLD_TAG}*")

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _owner(rest: str) -> int | None:
    """The pid that starts `rest` (the part of a temp name after its tag), or None."""
    digits = rest.split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_leftovers(path: str | Path) -> list[Path]:
    """Remove what writers of `path` killed mid-write left beside it; return what it handled.

    Only entries named after `path` whose writer is dead are touched. If a writer died between
    setting the old directory aside and moving the new one in, `path` is missing: the old copy is
    put back (the last complete version), not removed.
    """
    path = Path(path)
    found = []  # (tag, entry) of every dead writer's entry named after `path`
    try:
        with os.scandir(path.parent) as it:
            for entry in it:
                for tag in (TMP_TAG, OLD_TAG):
                    prefix = f".{path.name}{tag}"
                    if entry.name.startswith(prefix):
                        pid = _owner(entry.name[len(prefix) :])
                        if pid is not None and not pid_alive(pid):
                            found.append((tag, Path(entry.path)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    handled = []
    for tag, leftover in sorted(found, key=lambda f: _mtime(f[1]), reverse=True):  # the newest old copy first
        if tag == OLD_TAG and not os.path.lexists(path):
            os.replace(leftover, path)
        else:
            _remove(leftover)
        handled.append(leftover)
    return handled


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None off Linux or where libc lacks it (musl)."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None) if sys.platform.startswith("linux") else None


def release_freed() -> None:
    """Give the heap's free pages back to the system; a streaming pass calls it once a batch.

    Why: glibc serves blocks of up to ~32 MB (a batch of 512 images of 64x64x3 as float32 is 25 MB)
    from its heap. When a small allocation that outlives a batch (a result kept per batch) lands in
    the hole a freed batch left, the next batch no longer fits there and the heap grows again, the
    holes staying resident: a pass over a table grew by about a batch per batch (fit_latent +600 MB
    at 14,400 images of 64x64x3, varying from run to run). A few ms a call; a no-op without glibc.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2 (glibc 2.28+), or None off Linux or where libc lacks it."""
    return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform.startswith("linux") else None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where
    the kernel, libc or file system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}{TMP_TAG}{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    The file keeps the permissions of the one it replaces (a new one gets the umask's), as an
    in-place write would.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=suffix or path.suffix, dir=path.parent)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    os.fchmod(fd, mode)
    os.close(fd)
    try:
        yield Path(tmp)
        interrupt.check()  # a swallowed Ctrl-C publishes nothing
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `path` as a whole when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        interrupt.check()  # a swallowed Ctrl-C publishes nothing
        _swap_in(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)  # after an exchange: the previous `path`


def _swap_in(tmp: Path, path: Path) -> None:
    """Move directory `tmp` to `path`. With no `path` one rename does it; else one atomic exchange
    (the old tree then sits at `tmp`), or, where there is none, old aside, new in, old removed."""
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    if path.is_dir() and not path.is_symlink() and _exchange(tmp, path):
        return
    old = path.with_name(f".{path.name}{OLD_TAG}{os.getpid()}")
    _remove(old)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def stage_outputs(stage: str, items: Iterable[str] = (), dvc_yaml: str | Path = "dvc.yaml") -> list[Path]:
    """The outs, metrics and plots dvc.yaml declares for `stage` (a `foreach` stage's, for each of `items`)."""
    try:
        spec = (yaml.safe_load(Path(dvc_yaml).read_text()) or {}).get("stages", {}).get(stage)
    except (OSError, yaml.YAMLError):
        return []
    if not isinstance(spec, dict):
        return []
    body, items = (spec.get("do") or {}, list(items)) if "foreach" in spec else (spec, [""])
    entries = [e for key in ("outs", "metrics", "plots") for e in body.get(key) or []]
    names = [next(iter(e)) if isinstance(e, dict) else e for e in entries]  # `- path:` with options, or a plain path
    return [Path(n.replace("${item}", item)) for item in items for n in names if isinstance(n, str)]


def clean_stage_leftovers(stage: str, items: Iterable[str] = (), dvc_yaml: str | Path = "dvc.yaml") -> list[Path]:
    """At a stage's start: the leftovers of its killed runs, beside each of its outputs and each
    folder above one (a whole folder such as results/<stage>/ is what atomic_dir writes)."""
    targets = {p for out in stage_outputs(stage, items, dvc_yaml) for p in (out, *out.parents) if p != Path(".")}
    return [r for t in sorted(targets) for r in clean_leftovers(t)]


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(_read(Path(path)).read_text())


#: A Parquet row group holds about this many bytes at most: a table read in batches (`iter_table`)
#: never decodes more than one group at a time, so a 2.5 GB image table streams in ~64 MB steps.
ROW_GROUP_BYTES = 64 << 20


def write_table(df: pd.DataFrame, path: str | Path, schema: Any, arrow_schema: pa.Schema | None = None) -> None:
    """Validate `df` with a pandera schema and write it as Parquet, atomically, in row groups of at
    most ~ROW_GROUP_BYTES (a small table is one group).

    `arrow_schema` pins column types that pandas cannot express (fixed-size float32 lists).
    Output bytes depend only on the data: same rows in, byte-identical file out.
    """
    write_table_chunks([df], path, schema, arrow_schema)


def write_table_chunks(
    chunks: Iterable[pd.DataFrame], path: str | Path, schema: Any, arrow_schema: pa.Schema | None = None
) -> int:
    """`write_table` for a table made a part at a time: each chunk validated and written as it comes
    (row groups of at most ~ROW_GROUP_BYTES within it), so memory is one chunk, not the table. The
    file appears only whole (atomic). A one-chunk table is byte-identical to `write_table`'s. Checks
    across rows (unique ids) see one chunk: the caller ensures them across chunks. Returns the rows."""
    n, writer = 0, None
    with atomic_path(path) as tmp:
        try:
            for df in chunks:
                table = pa.Table.from_pandas(
                    schema.validate(df).reset_index(drop=True), schema=arrow_schema, preserve_index=False
                )
                writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
                rows = max(1, len(table) * ROW_GROUP_BYTES // max(1, table.nbytes))
                writer.write_table(table, row_group_size=min(rows, 1 << 20))
                n += len(table)
                del table, df  # before the next chunk is made: one chunk alive, not two
                pa.default_memory_pool().release_unused()  # else the pool keeps every chunk's buffers
                release_freed()
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"{path}: no rows to write (an empty iterable of chunks)")
    return n


def _table_path(path: str | Path) -> Path:
    """`path` as a Path, or FileNotFoundError saying which stage's output is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: table not found (has the stage that writes it run?)")
    return path


def read_table(path: str | Path, schema: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """Read and validate a table as written: no type is coerced on the way in (a float label read as
    an int would be silently truncated), and a mismatch is a DataError naming the file and column.
    `columns`: only those (e.g. the image table without its pixels), validated as the schema says."""
    path = _table_path(path)
    try:
        _has_columns(path, schema, columns)
        df = pd.read_parquet(_read(path), columns=columns)
    except (OSError, ValueError) as e:  # pyarrow's errors for a file that is not Parquet, or is cut short
        raise _unreadable(path, e) from None
    return _validated(df, path, schema, columns)


def iter_table(path: str | Path, schema: Any, rows: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The table in consecutive chunks of `rows` rows (the last may be shorter), each validated as
    `read_table` validates the whole: memory bounded by a chunk and one row group, not the table."""
    path = _table_path(path)
    try:
        _has_columns(path, schema, columns)
        # pre_buffer off: with it (pyarrow's default) the reader keeps every row group it has read
        # buffered until it is closed, outside Arrow's memory pool, so a pass over the table held the
        # whole file in memory (5.6 GB in fit_latent at 200,000 images of 64x64x3)
        batches = pq.ParquetFile(_read(path), pre_buffer=False).iter_batches(batch_size=rows, columns=columns)
        pending: list[pa.RecordBatch] = []
        for batch in batches:  # pyarrow cuts batches at row-group ends: re-chunk to exactly `rows`
            pending.append(batch)
            while sum(len(b) for b in pending) >= rows:
                whole = pa.Table.from_batches(pending)
                yield _validated(whole.slice(0, rows).to_pandas(), path, schema, columns)
                pending = whole.slice(rows).to_batches()
                release_freed()  # the chunk the caller has let go of
        if pending and sum(len(b) for b in pending):
            yield _validated(pa.Table.from_batches(pending).to_pandas(), path, schema, columns)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise _unreadable(path, e) from None


def _has_columns(path: Path, schema: Any, columns: list[str] | None) -> None:
    """A column asked for by name and missing from the file: the error a whole-table read gives."""
    missing = [c for c in columns or () if c not in pq.read_schema(path).names]
    if missing:
        raise DataError(
            f"{path}: not a valid {schema.name!r} table (column {missing[0]!r} is missing); it was edited "
            "or written by another version: rerun the stage that writes it (`dvc repro -f <stage>`)"
        )


def _unreadable(path: Path, e: Exception) -> DataError:
    return DataError(
        f"{path}: not a readable Parquet file ({type(e).__name__}: {e}); rerun the stage that "
        "writes it (`dvc repro -f <stage>`)"
    )


def _validated(df: pd.DataFrame, path: Path, schema: Any, columns: list[str] | None) -> pd.DataFrame:
    import pandera.errors

    if columns is None:
        strict = copy.deepcopy(schema)
    else:  # the named columns only; a table-wide check needs every column, so it waits for a full read
        strict = schema.select_columns(columns)
        strict.checks = [] if set(columns) != set(schema.columns) else strict.checks
    strict.coerce = False
    try:
        return strict.validate(df)
    except (pandera.errors.SchemaError, pandera.errors.SchemaErrors) as e:
        if isinstance(e, pandera.errors.SchemaErrors):  # raised for some checks even when not lazy
            e = e.schema_errors[0]
        column = getattr(e.schema, "name", None)
        where = f"column {column!r}: " if column and column != schema.name else ""
        reason = " ".join(str(e).split())[:300]
        raise DataError(
            f"{path}: not a valid {schema.name!r} table ({where}{reason}); it was edited or written by "
            "another version: rerun the stage that writes it (`dvc repro -f <stage>`)"
        ) from None


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
