"""Keep numpy's BLAS to `num_threads()` threads while a kernel's matrix products run.

numpy's bundled OpenBLAS starts one thread per CPU by default; on a busy machine (training on
every core, several processes) its spinning threads make a 128 x 800 x 784 product ten times
slower than on one thread. `blas_threads(n)` sets OpenBLAS's thread count for the duration of
a `with` block and restores it afterwards. Where the library or its setter cannot be found
(another BLAS, another platform) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading

_LOCK = threading.Lock()
_FUNCS: tuple | None = None  # (get, set) or () when not available


def _find() -> tuple:
    """(get, set) ctypes functions of the OpenBLAS that numpy loaded, or ()."""
    import numpy  # noqa: F401 - makes sure its BLAS is loaded before /proc/self/maps is read

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return ()
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype = ctypes.c_int
                    put.argtypes = [ctypes.c_int]
                    return get, put
    return ()


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the block with at most n OpenBLAS threads (no-op without a known OpenBLAS)."""
    global _FUNCS
    if _FUNCS is None:
        with _LOCK:
            if _FUNCS is None:
                _FUNCS = _find()
    if not _FUNCS:
        yield
        return
    get, put = _FUNCS
    before = get()
    if before <= n:
        yield
        return
    put(n)
    try:
        yield
    finally:
        put(before)
