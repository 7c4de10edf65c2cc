"""Ctrl-C (SIGINT) stops a stage within seconds, at any moment, writing nothing.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be, and code that
catches too much (a bare `except:`, an `except BaseException` that does not re-raise, in our code or a
library's) can swallow it: the stage then trains on as if nothing happened. So the CLI installs
`install()` first thing, and a received signal is never forgotten:

- the handler records it, then raises KeyboardInterrupt, as Python's own does;
- `check()` raises it again if it was swallowed: every training step calls it (the progress bar's
  update) and so does every atomic write before it renames its result into place, so a swallowed
  Ctrl-C can neither keep training nor publish an output;
- a watchdog thread re-delivers it to the main thread every `REPEAT` seconds, and ends the process
  outright (`os._exit(130)`) `DEADLINE` seconds after the first signal, for code that
  neither calls `check()` nor lets an interrupt through. What that leaves are temporary files beside
  the outputs, which DVC ignores and the stage's next run removes (lsdm.io.clean_stage_leftovers).
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time

REPEAT = 3.0  # seconds between re-deliveries of a signal that has not stopped the process yet
DEADLINE = 15.0  # seconds after the first signal when the process is ended outright

_received = False  # whether a SIGINT arrived since install()
_lock = threading.Lock()


def check() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived (again, where it was swallowed)."""
    if _received:
        raise KeyboardInterrupt("interrupted earlier (SIGINT)")


def _watchdog(repeat: float, deadline: float) -> None:
    t0 = time.monotonic()
    while (left := deadline - (time.monotonic() - t0)) > 0:
        time.sleep(min(repeat, left))
        _thread.interrupt_main()  # runs the handler in the main thread: KeyboardInterrupt there
    os._exit(128 + signal.SIGINT)


def _handler(signum: int, frame) -> None:
    global _received
    with _lock:
        first, _received = not _received, True
    if first:
        threading.Thread(target=_watchdog, args=(REPEAT, DEADLINE), name="lsdm-interrupt", daemon=True).start()
    raise KeyboardInterrupt


def install() -> None:
    """Route SIGINT through `_handler` (from the main thread). A SIGINT the parent ignores, as a
    shell does for a background job, stays ignored."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _handler)
