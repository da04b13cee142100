from __future__ import annotations

import tierq.engine as engine
import tierq.testing as testing


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    assert engine.__all__ == sorted(engine.__all__, key=_isort_key)
    for name in engine.__all__:
        assert hasattr(engine, name), name
    public = {n for n in vars(engine) if not n.startswith("_")}
    modules = {n for n, v in vars(engine).items() if type(v) is type(engine)}
    assert public - modules == set(engine.__all__)


def test_testing_exports() -> None:
    assert testing.__all__ == sorted(testing.__all__, key=_isort_key)
    for name in testing.__all__:
        assert hasattr(testing, name), name
