"""Run every benchmark module's ``main()`` in turn (``make bench``).

A module takes part by living in this folder and defining ``main``; ``main`` may take an
``argv`` list (it is given ``[]``, i.e. its defaults) or nothing. Pass module names to run only
those: ``python benchmarks/run_all.py core_bench``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

#: Cheap and self-contained first; the ones that start servers and peers after.
ORDER = ["core_bench", "e2e", "api_bench"]
#: Parts of e2e (it runs them side by side); runnable alone, not run twice by make bench.
SKIP = {"throughput", "noop_tasks"}
#: Modules whose ``--write`` updates their section of docs/benchmarks.md.
WRITES = {"core_bench", "e2e", "recovery"}


def modules() -> list[str]:
    found = [
        p.stem
        for p in sorted(HERE.glob("*.py"))
        if p.stem not in ("run_all", "__init__") and p.stem not in SKIP
    ]
    ranked = [m for m in ORDER if m in found] + [m for m in found if m not in ORDER]
    return ranked


def run(name: str) -> None:
    module = importlib.import_module(name)
    main = getattr(module, "main", None)
    if main is None:
        return
    print(f"\n=== {name} ===", flush=True)
    if inspect.signature(main).parameters:
        main(["--write", str(HERE.parent / "docs" / "benchmarks.md")] if name in WRITES else [])
    else:
        main()


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or modules()
    for name in names:
        run(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
