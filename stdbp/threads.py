"""How many worker threads the compiled kernels use (stdlib only, shared by training and emulator)."""

from __future__ import annotations

import os


def num_threads() -> int:
    """`STDBP_NUM_THREADS` if set, else the CPUs this process may run on."""
    env = os.environ.get("STDBP_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
