"""Worker processes that end with the process that started them.

A full build renders in worker processes; killed with SIGKILL, the build left
them (and multiprocessing's resource tracker, which lives while a process
holds its pipe) running for good. `die_with` is their initializer. This
module imports nothing of newsdrop's, so a spawned worker arms it before the
slow imports of rendering.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import threading
import time

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with(parent: int) -> None:
    """End this process when ``parent`` ends, however it ends: Linux's PR_SET_PDEATHSIG
    where it exists (the kernel sends SIGKILL), else a thread that watches the parent."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        armed = False
    if os.getppid() != parent:  # it ended before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)
