"""Retry decisions: exponential backoff with jitter drawn from an injected random source."""

from __future__ import annotations

from typing import Protocol

from .model import ErrorSummary, RetryPolicy

__all__ = ["RandomSource", "backoff_delay", "error_type_name", "retry_decision"]


class RandomSource(Protocol):
    """What the core needs from a random generator (``random.Random`` fits)."""

    def random(self) -> float: ...


def error_type_name(cls: type[BaseException]) -> str:
    """The name a retry policy matches on: ``ValueError`` for builtins, else ``pkg.mod.Class``."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def backoff_delay(policy: RetryPolicy, attempt: int, rng: RandomSource) -> float:
    """Delay before the attempt after ``attempt`` (1-based): ``min(base * 2**(attempt-1), max)``,
    minus up to ``jitter`` of it at random, so a burst of failures does not retry in lockstep."""
    exp = min(max(attempt - 1, 0), 1000)
    delay = min(policy.backoff_base * 2.0**exp, policy.backoff_max)
    if policy.jitter > 0.0 and delay > 0.0:
        delay *= 1.0 - policy.jitter * rng.random()
    return max(delay, 0.0)


def retry_decision(
    policy: RetryPolicy, attempts_used: int, error: ErrorSummary | None
) -> str | None:
    """None if another attempt is due, else the dead-letter reason.

    ``attempts_used`` counts the attempt that just ended. A lost attempt (worker or region gone)
    always qualifies regardless of ``retry_on``, but still counts against ``max_attempts``; a
    permanent error (see :class:`ErrorSummary`) never does.
    """
    if error is not None and error.permanent and not error.lost:
        return f"{error.type} cannot succeed on a retry; not retried"
    if attempts_used >= policy.max_attempts:
        return f"out of attempts ({attempts_used} of {policy.max_attempts})"
    if (
        error is not None
        and not error.lost
        and policy.retry_on
        and error.type not in policy.retry_on
    ):
        return f"error type {error.type!r} is not in retry_on"
    return None
