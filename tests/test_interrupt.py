"""Ctrl-C is never lost (lsdm.interrupt): a SIGINT that code swallows still stops the process within
seconds and lets no output be published. Each case runs in a fresh interpreter that swallows the
signal the way a careless library would (a bare `except:`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from support.processes import env, start_group, tail

PRELUDE = """
import os, signal, sys, time
from lsdm import interrupt
interrupt.REPEAT, interrupt.DEADLINE = {repeat}, {deadline}
interrupt.install()
print("ready", flush=True)
"""


def interrupted(
    tmp_path, body: str, setup: str = "", repeat: float = 0.5, deadline: float = 3.0, wait: float = 60
) -> tuple[int, float, str]:
    """Run `setup`, PRELUDE, then `body`, SIGINT it once it is ready; (exit status, seconds to exit,
    output). The watchdog re-delivers every `repeat` s and ends the child `deadline` s after the SIGINT."""
    log = tmp_path / "child.log"
    code = setup + PRELUDE.format(repeat=repeat, deadline=deadline) + body
    proc = start_group([sys.executable, "-c", code], tmp_path, env(), log, sigint=True)
    deadline = time.monotonic() + 300
    while "ready" not in tail(log):
        assert proc.poll() is None and time.monotonic() < deadline, tail(log)
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {wait} s after the SIGINT\n{tail(log)}") from None
    return proc.returncode, time.monotonic() - t0, tail(log)


def test_a_plain_ctrl_c_stops_at_once(tmp_path):
    rc, seconds, _ = interrupted(tmp_path, "while True: time.sleep(0.01)")
    assert rc == -signal.SIGINT and seconds < 30


SWALLOW_ONCE = """
try:
    while True: time.sleep(0.01)
except:  # noqa: E722  a library that swallows everything
    print("swallowed", flush=True)
for step in range(10**9):  # training goes on
    time.sleep(0.01)
"""


def test_a_swallowed_ctrl_c_is_delivered_again(tmp_path):
    rc, seconds, out = interrupted(tmp_path, SWALLOW_ONCE)
    assert "swallowed" in out and rc == -signal.SIGINT and seconds < 30  # the watchdog's second delivery got through


SWALLOW_ALWAYS = """
while True:
    try:
        time.sleep(0.01)
    except:  # noqa: E722
        pass
"""


def test_a_process_that_swallows_every_ctrl_c_is_ended_at_the_deadline(tmp_path):
    rc, seconds, _ = interrupted(tmp_path, SWALLOW_ALWAYS)
    assert rc == 128 + signal.SIGINT and 2.5 < seconds < 60  # DEADLINE is 3 s here


CHECKED = """
try:
    while True: time.sleep(0.01)
except:  # noqa: E722
    pass
try:
    with atomic_path("out.txt") as tmp:
        tmp.write_text("half of a result")
except KeyboardInterrupt:
    print("refused", flush=True)
    sys.exit(3)
print("published", flush=True)
"""


def test_a_swallowed_ctrl_c_publishes_nothing(tmp_path):
    rc, _, out = interrupted(tmp_path, CHECKED, setup="from lsdm.io import atomic_path\n", repeat=60, deadline=120)
    assert rc == 3 and "refused" in out and "published" not in out
    assert [p.name for p in tmp_path.iterdir()] == ["child.log"]  # no out.txt, no temporary file


def test_training_steps_raise_a_swallowed_ctrl_c(tmp_path):
    """With the watchdog far off, it is the training step's own check that stops the loop."""
    setup = "import torch\nfrom lsdm.models.training import minimise\n"
    body = """
try:
    while True: time.sleep(0.01)
except:  # noqa: E722
    pass
model = torch.nn.Linear(2, 1)
data = torch.randn(64, 2)
try:
    minimise(model, lambda i, g: model(data[i]).pow(2).mean(), len(data), steps=10**6, batch_size=8, lr=1e-3,
             seed=0, desc="toy", metric="loss")
except KeyboardInterrupt:
    print("stopped in training", flush=True)
    sys.exit(4)
"""
    rc, _, out = interrupted(tmp_path, body, setup, repeat=60, deadline=120)
    assert rc == 4 and "stopped in training" in out
