"""Atomic writes: a failed or interrupted write leaves the previous file (or nothing), never a torso."""

import pytest

from lsdm.io import atomic_dir, atomic_path, write_json


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    f = tmp_path / "out.json"
    write_json({"v": 1}, f)
    with pytest.raises(RuntimeError):
        with atomic_path(f) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise RuntimeError("interrupted")
    assert f.read_text().strip().endswith("}") and '"v": 1' in f.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_atomic_dir_replaces_whole_or_nothing(tmp_path):
    d = tmp_path / "live"
    with atomic_dir(d) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(d) as tmp:
            (tmp / "b.txt").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in d.iterdir()) == ["a.txt"]
    with atomic_dir(d) as tmp:
        (tmp / "c.txt").write_text("3")
    assert sorted(p.name for p in d.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live"]
