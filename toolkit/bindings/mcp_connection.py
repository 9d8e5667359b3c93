"""One open MCP client session, owned by a private event loop thread.

Why a loop of our own: the SDK's `Client` is an anyio context manager whose task group must be
entered and left by the same task, and it must outlive the caller's event loop (`Agent.run`
makes a new loop per task; discovery runs at registry load, with no loop at all). So one daemon
thread runs one asyncio loop for every MCP connection of the process; a connection is a task on
that loop that enters `Client`, waits to be told to stop, and leaves it. Calls are coroutines
submitted to that loop (`run_coroutine_threadsafe`) and awaited from any caller loop through
`asyncio.wrap_future`; cancelling the caller (a timeout) cancels the call on the owner loop.
All the connection's state is touched only on the owner loop, so no locks are needed for it.

A connection opens lazily and reopens after the server went away, so a crashed server costs
the calls in flight, not the tool.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import tempfile
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class MCPConnectionError(Exception):
    """The server could not be reached, or went away."""


class _OwnerLoop:
    """The daemon thread running the loop that owns every MCP session of the process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="toolkit-mcp", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


_owner: _OwnerLoop | None = None
_owner_lock = threading.Lock()
_open_connections: weakref.WeakSet[MCPConnection] = weakref.WeakSet()


def owner_loop() -> _OwnerLoop:
    global _owner
    with _owner_lock:
        if _owner is None:
            _owner = _OwnerLoop()
        return _owner


class MCPConnection:
    """A client session to one server: `target` is a URL or a `StdioServerParameters`."""

    def __init__(self, target: Any, label: str, connect_timeout_s: float = 30.0):
        self.target = target
        self.label = label
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._opening: asyncio.Lock | None = None
        self._stderr: Any = None  # a stdio server's stderr, kept to explain a failed start

    # ---- on the owner loop ----------------------------------------------------------------

    async def _serve(self, ready: asyncio.Future[Any]) -> None:
        from mcp import Client, StdioServerParameters
        from mcp.client.stdio import stdio_client

        stop = self._stop
        assert stop is not None
        errlog = None
        if isinstance(self.target, StdioServerParameters):
            errlog = self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        client = None
        try:
            client = Client(self.target if errlog is None else stdio_client(self.target, errlog=errlog))
            async with client:
                if ready.done():  # the opener gave up waiting (timeout): don't keep a session nobody holds
                    return
                self._client = client
                ready.set_result(client)
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits for the connection
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else MCPConnectionError(repr(exc)))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            if self._client is client:  # a newer session may already have taken its place
                self._client = None

    async def _ensure_open(self) -> Any:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._client is not None and self._task is not None and not self._task.done():
                return self._client
            await self._shutdown()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[Any] = loop.create_future()
            self._stop = asyncio.Event()
            self._task = loop.create_task(self._serve(ready), name=f"mcp:{self.label}")
            try:
                client = await asyncio.wait_for(ready, self.connect_timeout_s)
            except TimeoutError:
                await self._shutdown()
                raise MCPConnectionError(
                    f"no answer from MCP server {self.label} after {self.connect_timeout_s:g} s{self._stderr_tail()}"
                ) from None
            except Exception as exc:
                await self._shutdown()
                raise MCPConnectionError(
                    f"cannot connect to MCP server {self.label}: {_describe(exc)}{self._stderr_tail()}"
                ) from None
            _open_connections.add(self)
            return client

    async def _shutdown(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self._stop is not None:
            self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:
            task.cancel()
        except Exception:  # noqa: BLE001 - a failed session is being discarded anyway
            pass
        _open_connections.discard(self)

    async def _list_tools(self) -> list[Any]:
        client = await self._ensure_open()
        tools: list[Any] = []
        cursor = None
        for _ in range(100):  # a paginator that never ends cannot hang the registry
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        # shielded: a call cut off by its timeout while the server starts doesn't abort the start,
        # so the next call finds the session open
        client = await asyncio.shield(self._ensure_open())
        try:
            return await client.call_tool(name, arguments)
        except Exception as exc:
            if _connection_lost(exc) or self._task is None or self._task.done():
                # the session is dead even if its task has not noticed: drop it, the next call reopens
                reason = f"MCP server {self.label} went away during the call: {_describe(exc)}{self._stderr_tail()}"
                await asyncio.shield(self._discard(client))
                raise MCPConnectionError(reason) from None
            raise

    async def _discard(self, client: Any) -> None:
        if self._client is client:
            await self._shutdown()

    def _stderr_tail(self, limit: int = 600) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - limit * 4))
            tail = self._stderr.read().strip()[-limit:]
        except (OSError, ValueError):
            return ""
        return f"; server stderr: {tail}" if tail else ""

    # ---- from any thread or loop ----------------------------------------------------------

    def list_tools_sync(self, timeout_s: float | None = None) -> list[Any]:
        future = owner_loop().submit(self._list_tools())
        try:
            return future.result(timeout_s or self.connect_timeout_s + 10)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise MCPConnectionError(f"listing the tools of MCP server {self.label} timed out") from None

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        return await asyncio.wrap_future(owner_loop().submit(self._call(name, arguments)))

    async def aclose(self) -> None:
        await asyncio.wrap_future(owner_loop().submit(self._shutdown()))

    def close(self, timeout_s: float = 15.0) -> None:
        try:
            owner_loop().submit(self._shutdown()).result(timeout_s)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    @property
    def is_open(self) -> bool:
        return self._task is not None and not self._task.done()


def _connection_lost(exc: BaseException) -> bool:
    import anyio
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    if isinstance(exc, MCPError):
        return getattr(exc, "code", None) == CONNECTION_CLOSED
    return isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, ConnectionError))


def _describe(exc: BaseException) -> str:
    # anyio wraps task-group failures in ExceptionGroups; the first leaf says what happened
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


@atexit.register
def _close_all() -> None:
    """Stop the servers we started, so no subprocess outlives the interpreter."""
    for connection in list(_open_connections):
        connection.close(timeout_s=5)
