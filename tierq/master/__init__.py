"""The master: control plane over the durable log (one active, standbys wait on the lease)."""

from .service import Master as Master
from .service import run_master as run_master

__all__ = ["Master", "run_master"]
