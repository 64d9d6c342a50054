"""Futures of submitted task runs.

``Task.submit()`` returns a ``PrefectFuture``; ``Task.map()`` a ``PrefectFutureList``.
A future knows its ``task_run_id`` from the start; ``state`` is the run's current state
(final once ``done()``); ``result()`` waits and returns the value or raises the task's
exception. Futures (also nested in lists, dicts, tuples, sets) passed to other tasks are
resolved by the engine, which also records them as the downstream run's inputs.
"""

from __future__ import annotations

import abc
import concurrent.futures
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_run_id={self._task_run_id}, state={self.state!r})"


class PrefectConcurrentFuture(PrefectFuture[R]):
    """A task run executing in this process, backed by a ``concurrent.futures.Future``
    whose result is the run's final ``State``."""

    def __init__(
        self,
        task_run_id: uuid.UUID,
        wrapped_future: concurrent.futures.Future[State],
        current_state: Callable[[], State] | None = None,
    ) -> None:
        super().__init__(task_run_id)
        self._wrapped = wrapped_future
        self._current_state = current_state

    @property
    def wrapped_future(self) -> concurrent.futures.Future[State]:
        return self._wrapped

    @property
    def state(self) -> State:
        if self._wrapped.done():
            return self._wrapped.result()
        if self._current_state is not None:
            return self._current_state()
        from prefect_lite.states import Pending

        return Pending()

    def done(self) -> bool:
        return self._wrapped.done()

    def wait(self, timeout: float | None = None) -> None:
        concurrent.futures.wait([self._wrapped], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        try:
            final = self._wrapped.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"Task run {self._task_run_id} did not finish within {timeout} seconds"
            ) from None
        value: R = final.result(raise_on_failure=raise_on_failure)
        return value

    def add_done_callback(self, fn: Callable[[PrefectFuture[R]], object]) -> None:
        self._wrapped.add_done_callback(lambda _: fn(self))


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
    pending = list(futures)
    by_wrapped: dict[Any, PrefectFuture[R]] = {}
    others = []
    for future in pending:
        wrapped = getattr(future, "wrapped_future", None)
        if wrapped is not None:
            by_wrapped[wrapped] = future
        else:
            others.append(future)
    try:
        for wrapped in concurrent.futures.as_completed(by_wrapped, timeout=timeout):
            yield by_wrapped[wrapped]
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"{len(pending)} futures did not all finish in {timeout} s") from None
    for future in others:
        future.wait()
        yield future


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
