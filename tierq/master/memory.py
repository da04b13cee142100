"""Hand the C allocator's free pages back to the system after the master's large transient
allocations: encoding a snapshot, rebuilding the state from one.

Both allocate tens of megabytes of short-lived buffers (the encoded snapshot, its chunk lists,
the decoder's input) among the long-lived task records. glibc keeps the freed pages of its heap
mapped (it only returns the top of the heap on its own), so a leader with 1,000,000 queued tasks
kept ~15-30 MiB more after its first snapshot, for good. ``malloc_trim(0)`` releases every
whole free page (``madvise``); with a million tasks it takes about 2 ms. Where the C library
has no ``malloc_trim`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

__all__ = ["release_free_memory"]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    fn = getattr(libc, "malloc_trim", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; whether anything could be done."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))
