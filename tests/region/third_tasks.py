"""A third task type, for tests that need workers with disjoint types."""

from __future__ import annotations

import tierq

app = tierq.App()


@app.task(name="third.t")
async def third(x: int) -> int:
    return x
