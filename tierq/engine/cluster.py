"""A NATS cluster of real ``nats-server`` processes on loopback: for tests and the chaos suite.

Each node is an :class:`EmbeddedNats` with its own store, client port and route port, joined to
the others by a ``cluster`` block, so JetStream replicates streams with Raft (R3 on three
nodes). Nodes can be killed, paused and restarted one by one, on the same ports and stores.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from ..config import ConnectOptions
from ..credentials import NatsUsers
from ..errors import EngineUnavailableError, InvalidRequestError
from .embedded import EmbeddedNats, _aprobe_health, free_port

__all__ = ["NatsCluster"]


class NatsCluster:
    """``size`` nats-server processes clustered on loopback (JetStream on every node).

    Args:
        size: number of nodes (3 for R3 streams).
        base_dir: where the nodes keep their stores; a temporary directory if omitted.
        name: the cluster's name (also the prefix of each node's ``server_name``).
        sync_always: fsync before every acknowledgement on every node.
        users: NATS users per role (the same on every node); None: no authentication.
    """

    def __init__(
        self,
        size: int = 3,
        base_dir: str | os.PathLike[str] | None = None,
        *,
        name: str = "tierq",
        sync_always: bool = False,
        users: NatsUsers | None = None,
    ) -> None:
        if size < 1:
            raise InvalidRequestError("a cluster needs at least one node", field="size")
        self._owned_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="tierq-cluster-")).resolve()
        self.name = name
        self.users = users
        routes = [free_port() for _ in range(size)]
        route_urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
        self.nodes: list[EmbeddedNats] = []
        for i, route in enumerate(routes):
            block = "\n".join(
                [
                    "cluster {",
                    f'  name: "{name}"',
                    f'  listen: "127.0.0.1:{route}"',
                    f"  routes: [{route_urls}]",
                    "}",
                ]
            )
            self.nodes.append(
                EmbeddedNats(
                    self.base_dir / f"n{i + 1}",
                    server_name=f"{name}-n{i + 1}",
                    sync_always=sync_always,
                    users=users,
                    extra_config=block,
                    # A node waits for a JetStream meta leader before it reports healthy.
                    startup_timeout=60.0,
                )
            )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated (what ``--nats`` and ``App(nats=...)`` take)."""
        return ",".join(self.urls)

    @property
    def credentials_file(self) -> Path | None:
        return self.nodes[0].credentials_file

    def node(self, server_name: str) -> EmbeddedNats:
        """The node with this ``server_name`` (as JetStream names a stream's leader)."""
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise InvalidRequestError(f"no node named {server_name!r}", field="server_name")

    def connect_options(
        self, role: str = "master", region: str | None = "default", **options: Any
    ) -> ConnectOptions:
        """Options to connect to any node as the user of ``role``."""
        opts = self.nodes[0].connect_options(role, region, **options)
        return msgspec.structs.replace(opts, servers=self.urls)

    async def astart(self) -> NatsCluster:
        """Start every node and wait until each reports JetStream healthy."""
        for node in self.nodes:
            node._spawn()  # all at once: a node is healthy only once the others route to it
        await asyncio.gather(*(node.astart() for node in self.nodes))
        await self.wait_healthy()
        return self

    async def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until every running node passes the full health check (JetStream meta
        leader elected, its streams current): before that, JetStream requests go unanswered."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for node in self.nodes:
            if not node.running:
                continue
            while not await _aprobe_health(node.host, node.monitor_port, query=""):
                if loop.time() > deadline:
                    raise EngineUnavailableError(
                        f"the NATS cluster is not healthy after {timeout} s"
                    )
                await asyncio.sleep(0.1)

    async def astop(self) -> None:
        await asyncio.gather(*(node.astop() for node in self.nodes))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._owned_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    async def __aenter__(self) -> NatsCluster:
        return await self.astart()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()
        self.stop()
