"""tierq: a distributed task scheduler for Python, on NATS JetStream."""

from .errors import (
    BackpressureError as BackpressureError,
    InvalidRequestError as InvalidRequestError,
    TaskCancelledError as TaskCancelledError,
    TaskFailedError as TaskFailedError,
    TaskTimeoutError as TaskTimeoutError,
    TierqError as TierqError,
)

__all__ = [
    "BackpressureError",
    "InvalidRequestError",
    "TaskCancelledError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TierqError",
]
