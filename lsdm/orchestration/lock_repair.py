"""DVC's lock table repaired after a dvc killed while rewriting it (a crashed worker, a retried stage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def repair_rwlock(repo: Path) -> bool:
    """Remove DVC's lock table `.dvc/tmp/rwlock` if a dvc killed while rewriting it left it torn; True if so.

    DVC rewrites that JSON file in place, and once it is torn refuses every command ("Unable to
    read RWLock-file ... JSON structure is corrupted") until someone deletes it, as DVC's own
    messages advise for stale entries. It is only touched while no dvc process edits it (DVC's
    guard, `rwlock.lock`, is free); the entries it held are lost with the torn text anyway.
    """
    import zc.lockfile  # DVC's own lock backend

    path = repo / ".dvc" / "tmp" / "rwlock"
    if _json_ok(path):
        return False
    try:
        guard = zc.lockfile.LockFile(f"{path}.lock")
    except zc.lockfile.LockError:
        return False  # a dvc is rewriting it right now
    try:
        if _json_ok(path):
            return False
        path.unlink()
    finally:
        guard.close()
    print(f"lsdm: removed {path}: a dvc killed while rewriting it had left it torn", file=sys.stderr)
    return True


def _json_ok(path: Path) -> bool:
    """True unless `path` exists and is not JSON."""
    try:
        json.loads(path.read_bytes())
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return True
