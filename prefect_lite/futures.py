"""Futures of submitted task runs.

``Task.submit()`` returns a ``PrefectFuture``; ``Task.map()`` a ``PrefectFutureList``.
A future knows its ``task_run_id`` from the start; ``state`` is the run's current state
(final once ``done()``); ``result()`` waits and returns the value or raises the task's
exception. Futures (also nested in lists, dicts, tuples, sets) passed to other tasks are
resolved by the engine, which also records them as the downstream run's inputs.
"""

from __future__ import annotations

import abc
import asyncio
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    from prefect_lite.states import State

R = TypeVar("R")


class PrefectFuture(abc.ABC, Generic[R]):
    """The eventual outcome of a task run."""

    def __init__(self, task_run_id: uuid.UUID) -> None:
        self._task_run_id = task_run_id

    @property
    def task_run_id(self) -> uuid.UUID:
        return self._task_run_id

    @property
    @abc.abstractmethod
    def state(self) -> State:
        """The run's current state (its final state once the run is done)."""

    @abc.abstractmethod
    def done(self) -> bool: ...

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> None:
        """Wait for the run to finish (at most ``timeout`` seconds; no error on timeout)."""

    @abc.abstractmethod
    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The run's return value; raises its exception if it failed (unless
        ``raise_on_failure=False``, which returns the exception), ``TimeoutError`` if not
        finished within ``timeout`` seconds."""

    @abc.abstractmethod
    def add_done_callback(self, fn: Callable[[PrefectFuture[R]], object]) -> None:
        """Call ``fn(self)`` when the run is done (at once if it already is)."""

    async def wait_async(self) -> None:
        """Wait without blocking the running event loop."""
        if self.done():
            return
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def wake(_: object) -> None:
            loop.call_soon_threadsafe(_resolve, finished)

        self.add_done_callback(wake)
        await finished

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_run_id={self._task_run_id}, state={self.state!r})"


class RunOutcome:
    """The one-shot completion of a task run executing in this process: its final State.

    A lighter ``concurrent.futures.Future`` (one C lock, no Condition): a ``.map`` over
    thousands of items makes one per item.
    """

    __slots__ = ("_callbacks", "_done", "_state")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()  # released once, when the state is set
        self._state: State | None = None
        self._callbacks: list[Callable[[RunOutcome], object]] | None = []

    def done(self) -> bool:
        return self._state is not None

    def set_state(self, state: State) -> None:
        with _callbacks_lock:
            self._state = state
            callbacks, self._callbacks = self._callbacks, None
        self._done.release()
        for callback in callbacks or ():
            callback(self)

    def state(self) -> State | None:
        return self._state

    def wait(self, timeout: float | None = None) -> bool:
        """True once done; False if ``timeout`` seconds passed first."""
        if self._state is not None:
            return True
        if self._done.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            self._done.release()  # let other waiters through
            return True
        return False

    def add_done_callback(self, fn: Callable[[RunOutcome], object]) -> None:
        with _callbacks_lock:
            if self._callbacks is not None:
                self._callbacks.append(fn)
                return
        fn(self)


_callbacks_lock = threading.Lock()


class PrefectConcurrentFuture(PrefectFuture[R]):
    """A task run executing in this process (a task runner thread)."""

    def __init__(
        self,
        task_run_id: uuid.UUID,
        outcome: RunOutcome,
        current_state: Callable[[], State] | None = None,
    ) -> None:
        super().__init__(task_run_id)
        self._outcome = outcome
        self._current_state = current_state

    @property
    def state(self) -> State:
        final = self._outcome.state()
        if final is not None:
            return final
        if self._current_state is not None:
            return self._current_state()
        from prefect_lite.states import Pending

        return Pending()

    def done(self) -> bool:
        return self._outcome.done()

    def wait(self, timeout: float | None = None) -> None:
        self._outcome.wait(timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        if not self._outcome.wait(timeout):
            raise TimeoutError(
                f"Task run {self._task_run_id} did not finish within {timeout} seconds"
            )
        final = self._outcome.state()
        assert final is not None
        value: R = final.result(raise_on_failure=raise_on_failure)
        return value

    def add_done_callback(self, fn: Callable[[PrefectFuture[R]], object]) -> None:
        self._outcome.add_done_callback(lambda _: fn(self))


class PrefectFutureList(list[PrefectFuture[R]]):
    """The futures of a ``Task.map``: a list, plus ``wait()`` and ``result()`` for all."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every run's result, in order; ``TimeoutError`` if they are not all done in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for future in self:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(future.result(timeout=left, raise_on_failure=raise_on_failure))
        return out


class DoneAndNotDoneFutures(NamedTuple, Generic[R]):
    done: set[PrefectFuture[R]]
    not_done: set[PrefectFuture[R]]


def wait(
    futures: Iterable[PrefectFuture[R]], timeout: float | None = None
) -> DoneAndNotDoneFutures[R]:
    """Wait until every future is done or ``timeout`` passes; which are done, which not."""
    deadline = None if timeout is None else time.monotonic() + timeout
    done: set[PrefectFuture[R]] = set()
    not_done: set[PrefectFuture[R]] = set()
    for future in futures:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        future.wait(left)
        (done if future.done() else not_done).add(future)
    return DoneAndNotDoneFutures(done, not_done)


def as_completed(
    futures: Iterable[PrefectFuture[R]], timeout: float | None = None
) -> Iterator[PrefectFuture[R]]:
    """Yield futures as they finish; ``TimeoutError`` if some are not done in time."""
    pending = list(dict.fromkeys(futures))
    finished: queue.SimpleQueue[PrefectFuture[R]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            yield finished.get(timeout=left)
        except queue.Empty:
            raise TimeoutError(
                f"{len(pending)} futures did not all finish in {timeout} s"
            ) from None


def _resolve(finished: asyncio.Future[None]) -> None:
    if not finished.done():
        finished.set_result(None)


def resolve_futures_to_states(expr: Any) -> Any:
    """``expr`` with every future (in built-in collections) replaced by its final state."""
    from prefect_lite.engine.inputs import visit_futures, wait_future

    return visit_futures(expr, wait_future)


def resolve_futures_to_results(expr: Any) -> Any:
    """``expr`` with every future replaced by its result (raises if one did not complete)."""
    from prefect_lite.engine.inputs import visit_futures

    def result(future: PrefectFuture[Any]) -> Any:
        future.wait()
        if not future.state.is_completed():
            raise RuntimeError(f"Task run {future.task_run_id} did not complete successfully")
        return future.result()

    return visit_futures(expr, result)
