"""CPU memory allocator settings for training: keep freed memory instead of faulting it in
again every step.

A training step allocates and frees the same large tensors (T x N potentials, spikes,
noise, gradients) over and over. With glibc's default settings, freed memory at the top of
the heap is handed back to the operating system once more than a few MiB are free, and the
next step pays a page fault per 4 KiB page to get it back. On the 2-core CPU this project
is developed on that cost a TGO step of ``digits_cnn`` 3-16 ms over 29 ms, and one of
``vgg11`` about 37 ms over 390 ms (TGO frees more per step than plain BPTT, which moved by
0-3 ms): ``benchmarks/train_step.py --default-malloc`` shows the step without these
settings (``docs/speed.md``).

:func:`keep_freed_memory` sets glibc's mmap threshold to 32 MiB (its maximum: blocks below
it come from the heap, which is reused) and its trim threshold to 1 GiB (the heap is not
shrunk below its high-water mark while less than that is free). It is what PyTorch's CPU
performance guide achieves with jemalloc or tcmalloc, without preloading a library. The
price is that the process keeps its peak CPU memory until it exits, as a CUDA caching
allocator does. ``fit`` calls it for CPU training unless ``TGO_MALLOC_TUNING=0``. On a
C library other than glibc it does nothing.

Example:
    >>> from tgo.allocator import keep_freed_memory
    >>> applied = keep_freed_memory()   # True on glibc unless TGO_MALLOC_TUNING=0
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["ENV_SWITCH", "keep_freed_memory"]

#: Set to 0 to leave the C library's allocator at its defaults.
ENV_SWITCH = "TGO_MALLOC_TUNING"
_M_TRIM_THRESHOLD = -1      # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 * 1024 * 1024      # glibc's largest allowed value on 64-bit
_TRIM_THRESHOLD = 1024 * 1024 * 1024
_applied = False


def keep_freed_memory() -> bool:
    """Apply the settings once per process; True if they are in effect.

    False where the switch is 0, the C library is not glibc, or glibc refused a value.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (macOS, musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The mmap threshold first: setting any threshold turns glibc's dynamic one off.
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _applied
