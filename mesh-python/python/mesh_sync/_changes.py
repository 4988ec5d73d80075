"""``MeshSyncNode.changes``: the changes under a prefix as an asynchronous iterator.

A watch on the node's callback thread hands each change to the event loop with
``loop.call_soon_threadsafe``; the coroutine awaits an :class:`asyncio.Queue`, so the
loop is never blocked and changes arrive in the order they happened. At most
``max_pending`` changes wait: a consumer that falls further behind loses the changes past
that, and is told so by :class:`ChangesLostError` where they would have been.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Tuple, Type, Union, cast

from ._mesh_sync import MeshSyncError

if TYPE_CHECKING:
    from ._mesh_sync import MeshSyncNode, Watch

#: One change: (key, value or None when deleted, 'set' | 'delete' | 'sync').
Change = Tuple[str, Any, str]

_CLOSED = object()
_LOST = object()

#: Changes that may wait for a consumer by default.
DEFAULT_MAX_PENDING = 100_000


class ChangesLostError(MeshSyncError):
    """Raised by a :class:`Changes` iteration where changes were dropped because more
    than ``max_pending`` were waiting. ``lost`` is how many. The iterator goes on with the
    changes that came after: catch it, read the current state (``get_all``) if needed,
    and iterate again."""

    def __init__(self, lost: int) -> None:
        super().__init__(
            f"{lost} change(s) were dropped: the consumer fell more than max_pending behind"
        )
        self.lost = lost


class Changes:
    """The changes of the keys starting with ``prefix``, from the moment it is created.

    Create it from a coroutine (it binds to the running event loop)::

        async with node.changes("sensor/") as changes:
            async for key, value, op in changes:
                ...

    At most ``max_pending`` changes wait to be consumed; past that, changes are dropped
    and the iteration raises :class:`ChangesLostError` at the point where they were, so
    a slow consumer costs bounded memory and still knows what it missed. ``aclose()``
    (or leaving the ``async with``) cancels the watch underneath and ends the iteration.
    """

    def __init__(
        self, node: MeshSyncNode, prefix: str = "", max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        if isinstance(max_pending, bool) or not isinstance(max_pending, int):
            raise TypeError(f"max_pending must be an int, not {type(max_pending).__name__}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Union[Change, object]] = asyncio.Queue()
        self._max_pending = max_pending
        # Shared between the callback thread (which counts what it hands over) and the
        # loop (which counts what it takes).
        self._lock = threading.Lock()
        self._pending = 0
        self._lost = 0
        self._closed = False
        self._finished = False
        self._watch: Watch = node.watch(prefix, self._on_change)

    @property
    def prefix(self) -> str:
        """The prefix followed."""
        return self._watch.prefix

    def _on_change(self, key: str, value: Any, op: str) -> None:
        # Runs on the node's callback thread: only hand the change over, or count it lost.
        with self._lock:
            if self._lost:
                self._lost += 1
                return
            if self._pending >= self._max_pending:
                self._lost = 1
                item: Union[Change, object] = _LOST
            else:
                item = (key, value, op)
            self._pending += 1
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
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
        with self._lock:
            self._pending -= 1
            if item is _LOST:
                lost, self._lost = self._lost, 0
        if item is _LOST:
            raise ChangesLostError(lost)
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
