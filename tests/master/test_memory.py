"""release_free_memory hands the heap's free pages back (where the C library can)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierq.master.memory import release_free_memory


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_free_heap_pages_go_back_to_the_system() -> None:
    if not Path("/proc/self/status").exists() or not release_free_memory():
        pytest.skip("no malloc_trim or /proc here")
    # 64 KiB blocks come from the heap (below glibc's mmap threshold), written so they are
    # resident; one block allocated after them keeps the heap from shrinking on its own.
    blocks = [bytearray(b"x" * 65536) for _ in range(1600)]
    keep = bytearray(b"y" * 65536)
    del blocks
    before = _rss_mib()
    assert release_free_memory()
    assert _rss_mib() < before - 50
    assert keep[0] == ord("y")
