"""The regional scheduler: credit-based leasing from the master, long-poll for workers."""

from .service import Region as Region
from .service import run_region as run_region

__all__ = ["Region", "run_region"]
