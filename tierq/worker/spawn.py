"""How another process starts ``tierq worker``: its command line and its environment.

``tierq dev``, the test kit and the local autoscaler start workers the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..config import NatsConfig

__all__ = ["worker_command", "worker_env"]

#: Where a worker process finds each NATS login field (its `tierq worker` reads these).
_ENV = {
    "user": "TIERQ_NATS_USER",
    "password": "TIERQ_NATS_PASSWORD",
    "token": "TIERQ_NATS_TOKEN",
    "creds": "TIERQ_NATS_CREDS",
    "credentials": "TIERQ_NATS_CREDENTIALS",
    "tls_ca": "TIERQ_NATS_TLS_CA",
    "tls_cert": "TIERQ_NATS_TLS_CERT",
    "tls_key": "TIERQ_NATS_TLS_KEY",
}


def worker_command(
    modules: Sequence[str],
    *,
    nats_url: str,
    prefix: str,
    region: str,
    concurrency: int,
    pool: str,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``tierq worker`` command line, run by this interpreter."""
    return [
        sys.executable,
        "-m",
        "tierq",
        "worker",
        *modules,
        "--nats",
        nats_url,
        "--prefix",
        prefix,
        "--region",
        region,
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        *extra,
    ]


def worker_env(nats: NatsConfig) -> dict[str, str]:
    """The environment of a worker process: ours, with ``nats``'s login in ``TIERQ_NATS_*``.

    Passed in the environment rather than as flags, so no password shows in the process list.
    """
    env = dict(os.environ)
    for field_name, var in _ENV.items():
        value = getattr(nats, field_name)
        if value:
            env[var] = str(value)
        else:
            env.pop(var, None)
    # Workers import the user's modules from where their parent was started.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH", "")]))
    return env
