"""The workspace's params.yaml with an orchestrated run's overrides, and its recovery.

`applied_params` writes the validated overrides into params.yaml for the length of a run, comments
and order kept (what `dvc exp run -S` would write), and puts the user's bytes back afterwards, or only
after a failure where the run's outputs are to stay in the workspace (the Prefect flow); `recover_params` puts them back after a run that was killed outright.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lsdm.config import PARAMS_FILE, Params, load_params, set_dotted
from lsdm.errors import ParamsError

STATE_DIR = Path(".dvc") / "tmp" / "lsdm-orchestrate"  # git-ignored by DVC


def validate(repo: Path, overrides: dict[str, Any] | None) -> Params:
    """The same typed check as `lsdm check`, on params.yaml with `overrides` applied."""
    return load_params(repo / PARAMS_FILE, {} if overrides is None else overrides)


def render_params(text: str, overrides: dict[str, Any]) -> str:
    """`params.yaml` text with dotted overrides set, comments and order kept (as `dvc exp run -S`)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    rt = YAML()  # round trip
    rt.preserve_quotes = True
    rt.width = 4096
    doc = rt.load(text)
    for dotted, value in overrides.items():
        set_dotted(doc, dotted, value, section=CommentedMap)
    buf = io.StringIO()
    rt.dump(doc, buf)
    return buf.getvalue()


def _state_dir(repo: Path) -> Path:
    d = repo / STATE_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


_BACKUP = f"{PARAMS_FILE}.orig-"  # + the pid of the run that overrode params.yaml


def _backups(repo: Path) -> list[Path]:
    """Copies of the user's params.yaml kept by runs that have not put it back, oldest first."""
    found = [p for p in _state_dir(repo).glob(f"{_BACKUP}*") if p.name[len(_BACKUP) :].isdigit()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def recover_params(repo: Path) -> bool:
    """Put back params.yaml left overridden by a run that was killed (not just failed); True if so.

    Only a dead run's copy is used (the oldest: a later one would hold the overrides), by one
    atomic rename; the temp files of writes killed midway (of params.yaml, of a copy) go too.
    """
    from lsdm.io import TMP_TAG, clean_leftovers, pid_alive

    state = _state_dir(repo)
    dead = [b for b in _backups(repo) if not pid_alive(int(b.name[len(_BACKUP) :]))]
    if dead:
        os.replace(dead[0], repo / PARAMS_FILE)
        for b in dead[1:]:
            b.unlink(missing_ok=True)
    clean_leftovers(repo / PARAMS_FILE)
    for name in {p.name[1:].split(TMP_TAG)[0] for p in state.glob(f".{_BACKUP}*{TMP_TAG}*")}:
        clean_leftovers(state / name)
    return bool(dead)


@contextlib.contextmanager
def applied_params(
    repo: Path, overrides: dict[str, Any] | None, validated: Params | None = None, keep: bool = False
) -> Iterator[Params]:
    """params.yaml with `overrides` while the block runs; the original bytes come back afterwards, or,
    with `keep`, only if the block fails (a run that completed leaves params.yaml with its overrides,
    beside the outputs they produced, as `dvc exp run -S` does).

    Every write is a whole-file replace (temp file, then rename), so params.yaml is always either
    the user's or the overridden text, never a torso. A copy of the user's is kept under .dvc/tmp,
    named after this process, until it is back, so a run killed outright is undone by the next
    one (`recover_params`, also run here first). `validated`: what `validate` already returned
    for these overrides (else it runs here). Yields the params actually on disk, which must equal them.
    """
    from lsdm.io import atomic_path

    path = repo / PARAMS_FILE
    if recover_params(repo):
        validated = None  # it was checked against the killed run's overrides
    original = path.read_bytes()
    expected = validated if validated is not None else validate(repo, overrides)
    backup = _state_dir(repo) / f"{_BACKUP}{os.getpid()}"
    with atomic_path(backup) as tmp:  # complete before params.yaml changes: recovery never reads a torso
        tmp.write_bytes(original)
        shutil.copymode(path, tmp)  # recovery renames it into place: the user's mode with it
    completed = False
    try:
        if overrides:
            with atomic_path(path) as tmp:
                tmp.write_text(render_params(original.decode(), overrides))
        on_disk = load_params(path)
        if on_disk != expected:  # the file must say what was validated
            raise ParamsError(f"{path}: writing the overrides {overrides} did not give the validated parameters")
        yield on_disk
        completed = True
    finally:
        if not (keep and completed) and (not path.exists() or path.read_bytes() != original):
            with atomic_path(path) as tmp:
                tmp.write_bytes(original)
        backup.unlink(missing_ok=True)
