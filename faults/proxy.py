"""A TCP proxy on loopback that can be cut: the chain's RPC as the workers see it.

Cut, it closes every connection it carries and stops listening, so a client gets "connection
refused", as from a node that is down. Restored, it listens on the same port again. Armed with
:meth:`cut_after_send`, it cuts right after forwarding a request that carries a transaction
(``eth_sendRawTransaction``) and before the node's answer can come back: the transaction reaches
the chain, and its sender does not learn that it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class CuttableProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self.sends_seen = 0
        self.cut_on_send: threading.Event = threading.Event()
        self.cut_happened: threading.Event = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rpc-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- from the scenario's thread ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def cut_after_send(self) -> None:
        """The next request with a transaction goes through, then everything is cut."""
        self.cut_happened.clear()
        self.cut_on_send.set()

    @property
    def up(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        self._call(self._cut())
        self._call(self._cancel_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # -- on the proxy's loop ----------------------------------------------------------------------

    async def _cancel_all(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port or 0, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            self.cuts += 1
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        held: list[bool] = [False]  # set once a transaction went up on this connection and the cut is due
        try:
            await asyncio.gather(self._pump(reader, up_writer, True, held), self._pump(up_reader, writer, False, held))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool, held: list[bool]
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65_536):
                sending = upstream and b"eth_sendRawTransaction" in chunk
                if sending and self.cut_on_send.is_set():
                    held[0] = True
                if not upstream and held[0]:
                    continue  # the node's answer to the transaction never reaches the sender
                writer.write(chunk)
                await writer.drain()
                if sending:
                    self.sends_seen += 1
                    if held[0]:
                        self.cut_on_send.clear()
                        await asyncio.sleep(0.3)  # the node takes (and mines) it; its answer is dropped
                        await self._cut()
                        self.cut_happened.set()
                        return
        writer.transport.abort()
