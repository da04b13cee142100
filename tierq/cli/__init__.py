"""The ``tierq`` command: run the services, submit and inspect tasks.

Every command takes ``--nats URL`` (env ``TIERQ_NATS``, default ``nats://127.0.0.1:4222``) and
``--prefix`` (env ``TIERQ_PREFIX``). Expected failures (bad flags, bad JSON, an unreachable
server, a failed task) print one clear line on stderr and exit non-zero: 2 for bad input,
1 for everything else, 130 when interrupted. Results go to stdout, progress to stderr, so
``tierq submit x --wait > out.json`` captures just the result.
"""

from ._main import main as main

__all__ = ["main"]
