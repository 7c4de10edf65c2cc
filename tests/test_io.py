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


def test_checkpoints_load_without_unpickling_code(tmp_path):
    """torch.load(weights_only=True): a checkpoint that would run arbitrary code on load is refused."""
    import pickle

    import pytest
    import torch

    from lsdm.io import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "ok.pt", "conv_ae", {"dim": 4, "channels": [4]}, {"w": torch.ones(2)}, nfe=[1, 2])
    assert load_checkpoint(tmp_path / "ok.pt")["nfe"] == [1, 2]
    torch.save({"name": "x", "config": {}, "state_dict": {}, "evil": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path / "evil.pt")


class _Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))
