"""One task type that only a worker loading this module runs (see test_types.py)."""

from __future__ import annotations

import tierq

app = tierq.App()


@app.task(name="orphan.t")
async def orphan(x: int) -> int:
    return x
