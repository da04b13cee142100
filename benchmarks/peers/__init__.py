"""Peer benchmarks: celery, dramatiq, rq, huey, arq and taskiq on the tierq workload.

``run_peers()`` measures them (each in its own ``.venv-peers/<name>``, against a private
``redis-server``) and ``format_table()`` renders the results as Markdown. See ``../peers.md``.
"""

from .results import BulkResult as BulkResult
from .results import PeerResult as PeerResult
from .results import format_extras as format_extras
from .results import format_table as format_table
from .runner import run_peers as run_peers
from .specs import PEERS as PEERS

__all__ = ["PEERS", "BulkResult", "PeerResult", "format_extras", "format_table", "run_peers"]
