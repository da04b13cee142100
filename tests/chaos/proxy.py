"""A TCP proxy on loopback that can black-hole or cut the link it carries.

``blackhole()`` stops forwarding in both directions without closing anything: the way a dead
network path looks to both ends (no RST, no FIN; data waits in buffers). ``heal()`` lets the
held bytes through again. ``cut()`` closes every connection and refuses new ones until
``heal()``.
"""

from __future__ import annotations

import asyncio
import contextlib

from tierq.testing import free_port


class Proxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refuse = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def blackhole(self) -> None:
        self._flowing.clear()

    def cut(self) -> None:
        self._refuse = True
        self._drop_all()

    def heal(self) -> None:
        self._refuse = False
        self._flowing.set()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await src.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # bytes read just before a black-hole wait too
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.transport.abort()
