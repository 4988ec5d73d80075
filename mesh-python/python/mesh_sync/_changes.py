"""``MeshSyncNode.changes``: the changes under a prefix as an asynchronous iterator.

A watch on the node's callback thread hands each change to the event loop with
``loop.call_soon_threadsafe``; the coroutine awaits an :class:`asyncio.Queue`, so the
loop is never blocked and changes arrive in the order they happened.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Tuple, Type, Union, cast

if TYPE_CHECKING:
    from ._mesh_sync import MeshSyncNode, Watch

#: One change: (key, value or None when deleted, 'set' | 'delete' | 'sync').
Change = Tuple[str, Any, str]

_CLOSED = object()


class Changes:
    """The changes of the keys starting with ``prefix``, from the moment it is created.

    Create it from a coroutine (it binds to the running event loop)::

        async with node.changes("sensor/") as changes:
            async for key, value, op in changes:
                ...

    Changes wait in an unbounded queue until they are consumed: a consumer that falls
    behind holds them in memory. ``aclose()`` (or leaving the ``async with``) cancels
    the watch underneath and ends the iteration.
    """

    def __init__(self, node: MeshSyncNode, prefix: str = "") -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Union[Change, object]] = asyncio.Queue()
        self._closed = False
        self._finished = False
        self._watch: Watch = node.watch(prefix, self._on_change)

    @property
    def prefix(self) -> str:
        """The prefix followed."""
        return self._watch.prefix

    def _on_change(self, key: str, value: Any, op: str) -> None:
        # Runs on the node's callback thread: only hand the change over.
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (key, value, op))
        except RuntimeError:
            # The event loop is closed: nobody will ever read this queue.
            self._watch.cancel()

    def __aiter__(self) -> Changes:
        return self

    async def __anext__(self) -> Change:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _CLOSED:
            self._finished = True
            raise StopAsyncIteration
        return cast(Change, item)

    async def aclose(self) -> None:
        """Cancels the watch; an iteration in progress ends after the changes queued."""
        if self._closed:
            return
        self._closed = True
        self._watch.cancel()
        # Behind every change already handed over, so those are still delivered.
        self._loop.call_soon_threadsafe(self._queue.put_nowait, _CLOSED)

    async def __aenter__(self) -> Changes:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Changes prefix={self.prefix!r} {state}>"
