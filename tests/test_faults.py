"""Faults at the write boundary: a writer killed outright (SIGKILL) leaves only git- and DVC-ignored
leftovers named after it, which the next write or stage start removes; a directory is never missing
while it is replaced; params.yaml survives a kill of the flow's rewrite; and, under DVC, a stage
killed at random points never leaves an output DVC accepts (benchmarks/fault_injection.py)."""

from __future__ import annotations

import fnmatch
import os
import random
import subprocess
import sys
import time

import pytest
from support.checkout import ROOT
from support.processes import env, run

from lsdm import io as lio
from lsdm.io import (
    IGNORE_PATTERNS,
    atomic_dir,
    clean_leftovers,
    clean_stage_leftovers,
    read_json,
    stage_outputs,
    write_json,
)

sys.path.insert(0, str(ROOT / "benchmarks"))
import fault_injection


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(p.stdout)


def killed_child(code: str, *args: str) -> int:
    """Run `code` in a fresh interpreter that SIGKILLs itself somewhere; return its pid."""
    p = subprocess.Popen([sys.executable, "-c", code, *args], env=env(), stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == -9, f"the child was to die by SIGKILL, exited {p.returncode}"
    return int(out.split()[0])


def ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pat) for pat in IGNORE_PATTERNS)


# --- lsdm/io.py -------------------------------------------------------------------------------


def test_checkout_ignores_the_leftover_patterns():
    for f in (".gitignore", ".dvcignore"):
        lines = (ROOT / f).read_text().splitlines()
        assert all(p in lines for p in IGNORE_PATTERNS), f
    names = [
        "results/.fit_latent.lsdm-tmp-123-ab12cd",
        "data/latent/.autoencoder.pt.lsdm-tmp-9-x.pt",
        "reports/.figures.lsdm-old-77",
    ]
    p = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(names),
        capture_output=True,
        text=True,
    )
    assert p.stdout.split() == names
    assert not ignored("results/fit_latent") and not ignored("data/latent/autoencoder.pt")


KILLED_MID_WRITE = """
import os, signal, sys
from lsdm.io import atomic_dir, atomic_path
print(os.getpid(), flush=True)
with atomic_path(sys.argv[1] + "/out.json") as tmp:
    tmp.write_text('{"v": 2, "trunc')
    with atomic_dir(sys.argv[1] + "/live") as d:
        (d / "new.txt").write_text("new")
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_mid_write_leaves_ignored_leftovers_that_the_next_write_removes(tmp_path):
    write_json({"v": 1}, tmp_path / "out.json")
    with atomic_dir(tmp_path / "live") as d:
        (d / "old.txt").write_text("old")
    pid = killed_child(KILLED_MID_WRITE, str(tmp_path))
    assert read_json(tmp_path / "out.json") == {"v": 1}  # the previous versions, whole
    assert [p.name for p in (tmp_path / "live").iterdir()] == ["old.txt"]
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("out.json", "live"))
    assert len(left) == 2 and all(ignored(n) and f"-{pid}-" in n for n in left), left
    mine = tmp_path / f".out.json.lsdm-tmp-{os.getpid()}-inflight.json"  # a live writer's: never touched
    mine.write_text("{")

    write_json({"v": 3}, tmp_path / "out.json")
    with atomic_dir(tmp_path / "live") as d:
        (d / "c.txt").write_text("c")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.json", "live", mine.name])
    assert read_json(tmp_path / "out.json") == {"v": 3} and [p.name for p in (tmp_path / "live").iterdir()] == ["c.txt"]
    assert all(
        p.stat().st_mode & 0o777 == 0o666 & ~lio._UMASK for p in (tmp_path / "out.json", tmp_path / "live/c.txt")
    )


KILLED_BETWEEN_RENAMES = """
import os, signal, sys
import lsdm.io as lio
print(os.getpid(), flush=True)
lio._exchange = lambda a, b: False  # as where the kernel has no atomic exchange: two renames
rename = os.replace
def replace(src, dst):
    rename(src, dst)
    if ".lsdm-old-" in str(dst):  # the old tree is aside; die before the new one moves in
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
with lio.atomic_dir(sys.argv[1]) as d:
    (d / "new.txt").write_text("new")
"""


def test_kill_between_the_two_renames_puts_the_old_directory_back(tmp_path):
    live = tmp_path / "live"
    with atomic_dir(live) as d:
        (d / "old.txt").write_text("old")
    pid = killed_child(KILLED_BETWEEN_RENAMES, str(live))
    assert not live.exists()  # the window the two renames leave
    assert (tmp_path / f".live.lsdm-old-{pid}" / "old.txt").exists()
    handled = clean_leftovers(live)  # what the next write or stage start does first
    assert len(handled) == 2  # the set-aside tree (put back) and the new one's temp (removed)
    assert [p.name for p in tmp_path.iterdir()] == ["live"] and (live / "old.txt").read_text() == "old"


def test_two_rename_fallback_replaces_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(lio, "_exchange", lambda a, b: False)
    live = tmp_path / "live"
    for name in ("a", "b"):
        with atomic_dir(live) as d:
            (d / name).write_text(name)
    assert [p.name for p in live.iterdir()] == ["b"] and [p.name for p in tmp_path.iterdir()] == ["live"]


SWAPPER = """
import sys
from lsdm.io import atomic_dir
for i in range(200):
    with atomic_dir(sys.argv[1]) as d:
        (d / "n.txt").write_text(str(i))
"""


def test_a_replaced_directory_is_never_missing(tmp_path):
    """Where the kernel can exchange two paths atomically, a reader never finds the directory gone."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    if not lio._exchange(a, b):
        pytest.skip("no atomic exchange of paths here (renameat2 RENAME_EXCHANGE)")
    live = tmp_path / "live"
    with atomic_dir(live) as d:
        (d / "n.txt").write_text("start")
    proc = subprocess.Popen([sys.executable, "-c", SWAPPER, str(live)], env=env())
    looks, missing = 0, 0
    while proc.poll() is None:
        looks += 1
        missing += not os.path.isdir(live)
    assert proc.returncode == 0 and looks > 1000
    assert missing == 0, f"{live} was missing {missing} times in {looks} looks"
    assert (live / "n.txt").read_text() == "199" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "live"]


def test_stage_start_removes_only_its_own_dead_leftovers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    dead, alive = dead_pid(), os.getpid()
    assert {"results/fit_latent/metrics.json", "data/latent/autoencoder.pt"} <= {
        str(p) for p in stage_outputs("fit_latent")
    }
    entries = {  # what killed (or running) writers left: files, and folders with a file inside
        "split_dead": f"data/split/.paired.parquet.lsdm-tmp-{dead}-x.parquet",
        "split_alive": f"data/split/.paired.parquet.lsdm-tmp-{alive}-y.parquet",
        "not_an_output": f"data/split/.notes.txt.lsdm-tmp-{dead}-z.txt",
        "fit_latent_dir": f"results/.fit_latent.lsdm-tmp-{dead}-w",
        "baseline_dir": f"data/baselines/.pixel_wgan.lsdm-tmp-{dead}-v",
    }
    for key, rel in entries.items():
        path = tmp_path / rel / "part" if key.endswith("_dir") else tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("partial")
    there = lambda *keys: {k for k in keys if (tmp_path / entries[k]).exists()}  # noqa: E731

    assert [str(p) for p in clean_stage_leftovers("split")] == [entries["split_dead"]]
    assert there(*entries) == set(entries) - {"split_dead"}
    assert [str(p) for p in clean_stage_leftovers("fit_latent")] == [
        entries["fit_latent_dir"]
    ]  # beside results/fit_latent
    assert [str(p) for p in clean_stage_leftovers("fit_baseline", ["pixel_wgan"])] == [entries["baseline_dir"]]
    assert there(*entries) == {"split_alive", "not_an_output"}


# --- params.yaml under the flow's rewrite -----------------------------------------------------


def test_recover_params_uses_only_a_dead_runs_copy(tmp_path):
    from lsdm.orchestration.params_file import STATE_DIR, applied_params, recover_params

    repo = tmp_path / "ws"
    (repo / STATE_DIR).mkdir(parents=True)
    user = (ROOT / "params.yaml").read_bytes()
    (repo / "params.yaml").write_bytes(b"overridden: by a run\n")
    live_copy = repo / STATE_DIR / f"params.yaml.orig-{os.getpid()}"  # a run still going (this process)
    live_copy.write_bytes(b"not this one\n")
    assert not recover_params(repo) and live_copy.exists()
    live_copy.unlink()
    dead = dead_pid()
    (repo / STATE_DIR / f"params.yaml.orig-{dead}").write_bytes(user)  # a killed run's
    (repo / STATE_DIR / f".params.yaml.orig-{dead}.lsdm-tmp-{dead}-x").write_bytes(user[:10])  # its torn write
    (repo / f".params.yaml.lsdm-tmp-{dead}-y.yaml").write_bytes(user[:10])
    assert recover_params(repo) and (repo / "params.yaml").read_bytes() == user
    assert list((repo / STATE_DIR).iterdir()) == []
    os.chmod(repo / "params.yaml", 0o640)
    with pytest.raises(RuntimeError):
        with applied_params(repo, {"split.n_paired_per_class": 2}) as p:
            assert p.split.n_paired_per_class == 2
            raise RuntimeError("a stage failed")
    assert (repo / "params.yaml").read_bytes() == user and list((repo / STATE_DIR).iterdir()) == []
    assert (repo / "params.yaml").stat().st_mode & 0o777 == 0o640  # replaced, not rewritten: mode kept
    assert sorted(p.name for p in repo.iterdir()) == [".dvc", "params.yaml"]


def test_params_yaml_survives_sigkill_of_the_flows_rewrite(tmp_path):
    """A process overriding and restoring params.yaml as the flow does, SIGKILLed at random points:
    params.yaml is always whole (the user's text or the overridden one), and the user's again after
    the next start, with nothing left beside it."""
    row = fault_injection.inject_params(tmp_path, 5, random.Random(0), tmp_path)
    assert row.kills == 5, row
    assert (row.torn, row.accepted, row.unignored, row.left) == (0, 0, 0, 0), row.notes
    assert row.final_ok, row


HOLD_GUARD = """
import sys, time, zc.lockfile
lock = zc.lockfile.LockFile(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def test_a_torn_dvc_lock_table_is_removed_only_when_no_dvc_edits_it(tmp_path):
    """DVC rewrites .dvc/tmp/rwlock in place: a dvc killed then leaves it torn, and every dvc command
    fails until it is gone. The orchestrator removes it before a stage, unless a dvc holds its guard."""
    from lsdm.orchestration.lock_repair import repair_rwlock

    run(["dvc", "init", "--no-scm", "-q"], tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo 1 > out.txt\n    outs: [out.txt]\n")
    rwlock = tmp_path / ".dvc" / "tmp" / "rwlock"
    rwlock.parent.mkdir(parents=True, exist_ok=True)
    rwlock.write_text('{"read": {}, "write": {}}')
    assert not repair_rwlock(tmp_path) and rwlock.exists()  # whole: left alone
    rwlock.write_text('{"read": {"/x": [{"pid"')  # what a kill mid-rewrite leaves
    assert "RWLock-file" in run(["dvc", "status"], tmp_path, check=False).stderr
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_GUARD, f"{rwlock}.lock"], env=env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not repair_rwlock(tmp_path) and rwlock.exists()  # a dvc may be rewriting it right now
    finally:
        holder.kill()
        holder.wait()
    assert repair_rwlock(tmp_path) and not rwlock.exists()
    assert run(["dvc", "status"], tmp_path, check=False).returncode == 0


# --- under DVC: the harness on two stages ------------------------------------------------------


@pytest.mark.slow
def test_stages_killed_at_random_leave_nothing_dvc_accepts(tmp_path):
    """prepare (table files, no torch) and eval_net (a checkpoint and a dvclive folder), each killed
    twice at seeded random points of its run: DVC never takes a partial output as up to date, no
    output is torn, every leftover is git-ignored, and the next start cleans up and completes."""
    t0 = time.perf_counter()
    rows = fault_injection.inject(tmp_path, ["prepare", "eval_net"], kills=2, params_kills=0, flow_kills=0, seed=0)
    assert [r.target for r in rows] == ["prepare", "eval_net"]
    for r in rows:
        assert r.kills >= 1, r
        assert (r.accepted, r.torn, r.unignored, r.left) == (0, 0, 0, 0), (r.target, r.notes)
        assert r.final_ok, (r.target, r.notes)
    assert time.perf_counter() - t0 < 300
