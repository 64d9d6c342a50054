"""Task runners: where ``Task.submit()`` and ``Task.map()`` runs execute.

``ThreadPoolTaskRunner`` (the default) runs each submission in a worker thread, with a
copy of the submitting context (``contextvars.copy_context()``), so the flow run, tags
and settings follow the task. A run whose inputs include unfinished futures does not
occupy a thread while it waits: it is handed to the pool when its upstreams are done.
When the flow run ends, the runner waits for every run it started.
"""

from __future__ import annotations

import abc
import contextvars
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Self

from prefect_lite.exceptions import DefinitionError, MappingLengthMismatch, MappingMissingIterable
from prefect_lite.futures import (
    PrefectConcurrentFuture,
    PrefectFuture,
    PrefectFutureList,
    RunOutcome,
)
from prefect_lite.utilities.annotations import BaseAnnotation, allow_failure, quote, unmapped


class TaskRunner(abc.ABC):
    """Base of task runners: ``submit`` one run, ``map`` many; a context manager that is
    entered for the duration of a flow run."""

    def __init__(self) -> None:
        self._started = False

    @property
    def name(self) -> str:
        return type(self).__name__.lower().replace("taskrunner", "")

    @abc.abstractmethod
    def duplicate(self) -> Self:
        """A fresh runner with the same settings (one per flow run)."""

    @abc.abstractmethod
    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: dict[str, list[uuid.UUID]] | None = None,
    ) -> PrefectFuture[Any]: ...

    def map(
        self, task: Any, parameters: dict[str, Any], wait_for: Any = None
    ) -> PrefectFutureList[Any]:
        """Submit one run per element of the iterable parameters."""
        calls, dependencies = expand_mapped_parameters(task, parameters)
        return PrefectFutureList(
            self.submit(task, call, wait_for=wait_for, dependencies=dependencies) for call in calls
        )

    @abc.abstractmethod
    def wait_all(self) -> None:
        """Block until every run started by this runner is done."""

    def __enter__(self) -> Self:
        self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._started = False


def default_max_workers() -> int:
    """Threads of the default pool: enough for I/O-bound tasks, bounded for big maps."""
    return max(32, (os.cpu_count() or 1) * 8)


class WorkerPool:
    """Threads that run submitted calls from one queue; a thread is added when queued calls
    outnumber idle threads (up to ``max_workers``), so a call never waits behind one that
    is blocked while a thread could be added. Lighter than ``ThreadPoolExecutor``: no
    future per call (a task run has its own outcome)."""

    def __init__(self, max_workers: int, name: str) -> None:
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._waiting = 0  # threads blocked on the queue
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        queue_ = self._queue
        queue_.put((fn, args))
        with self._lock:
            if queue_.qsize() <= self._waiting or len(self._threads) >= self.max_workers:
                return
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        get, lock = self._queue.get, self._lock
        while True:
            with lock:
                self._waiting += 1
            item = get()
            with lock:
                self._waiting -= 1
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # pragma: no cover - calls report their own errors
                logging.getLogger("prefect_lite.task_runners").exception("worker call failed")

    def drain(self) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
        """Take the calls no thread has started yet (they will not run)."""
        taken: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return taken
            if item is not None:
                taken.append(item)

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join()


class ThreadPoolTaskRunner(TaskRunner):
    """Runs task runs in a pool of threads (``max_workers`` default: ``default_max_workers``)."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise DefinitionError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()
        self._outcomes: list[RunOutcome] = []

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(max_workers=self.max_workers)

    def __getstate__(self) -> dict[str, Any]:  # picklable with its flow: settings only
        return {"max_workers": self.max_workers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(max_workers=state["max_workers"])  # type: ignore[misc]

    def _workers(self) -> WorkerPool:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = WorkerPool(
                        self.max_workers or default_max_workers(), "prefect_lite-task"
                    )
                pool = self._pool
        return pool

    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: dict[str, list[uuid.UUID]] | None = None,
    ) -> PrefectConcurrentFuture[Any]:
        from prefect_lite.engine.task_engine import TaskRunEngine, run_in_worker

        if not self._started:
            raise RuntimeError("The task runner is not started: submit tasks from a flow run")
        engine = TaskRunEngine(task, parameters, wait_for, dependencies)
        run = engine.create()
        outcome = RunOutcome()
        self._outcomes.append(outcome)
        context = contextvars.copy_context()
        pool = self._workers()

        def start(_: object = None) -> None:
            try:
                pool.submit(context.run, _run_into, engine, outcome, run_in_worker)
            except RuntimeError:  # the flow run ended (interrupted) before this could start
                outcome.set_state(engine.cancel("The flow run ended before the task started."))

        pending = [f for f in engine.scan.futures if not f.done()] if engine.scan else []
        if not pending:
            start()
        else:
            _when_all_done(pending, start)
        return PrefectConcurrentFuture(run.id, outcome, lambda: engine.state)

    def wait_all(self) -> None:
        for outcome in list(self._outcomes):
            outcome.wait()

    def cancel_pending(self, reason: str) -> int:
        """Cancel the submitted runs that have not started; how many were cancelled."""
        pool = self._pool
        if pool is None:
            return 0
        cancelled = 0
        for _, args in pool.drain():
            _, engine, outcome, _ = args
            outcome.set_state(engine.cancel(reason))
            cancelled += 1
        return cancelled

    def __exit__(self, exc_type: Any = None, *exc: object) -> None:
        """Wait for every started run; after an interrupt (KeyboardInterrupt, SystemExit,
        cancellation), cancel those not started yet and do not wait for the others."""
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        try:
            if interrupted:
                self.cancel_pending("The flow run was interrupted before the task started.")
            else:
                self.wait_all()
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=not interrupted)
            self._outcomes = []
            super().__exit__(exc_type, *exc)


def _run_into(engine: Any, outcome: RunOutcome, runner: Callable[[Any], Any]) -> None:
    outcome.set_state(runner(engine))


def _when_all_done(futures: list[PrefectFuture[Any]], callback: Callable[[], None]) -> None:
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            callback()

    for future in futures:
        future.add_done_callback(one_done)


# ---------------------------------------------------------------------------- mapping


def _is_iterable(value: Any) -> bool:
    if isinstance(value, str | bytes | dict):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def expand_mapped_parameters(
    task: Any, parameters: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, list[uuid.UUID]]]:
    """One parameter dict per mapped call, and the upstream runs that fed the iterables.

    Top-level futures and states are resolved first (their results are what is mapped
    over); ``unmapped(x)`` and non-iterables are given to every call; ``allow_failure``
    and ``quote`` wrappers are kept on each element.
    """
    from prefect_lite.engine.inputs import resolve, scan_inputs, wait_future
    from prefect_lite.engine.scope import current_scope
    from prefect_lite.states import State

    scope = current_scope()
    dependencies: dict[str, list[uuid.UUID]] = {}
    iterables: dict[str, list[Any]] = {}
    static: dict[str, Any] = {}
    for name, value in parameters.items():
        annotation = value if isinstance(value, allow_failure | quote) else None
        inner = value.value if annotation is not None else value
        if isinstance(inner, PrefectFuture | State):
            dependencies[name] = scan_inputs({name: inner}, None, scope).lineage.get(name, [])
            inner = resolve(allow_failure(inner) if annotation else inner, wait_future)
        if isinstance(inner, unmapped):
            static[name] = inner.value
        elif _is_iterable(inner) and not isinstance(inner, BaseAnnotation):
            items: Iterable[Any] = inner
            iterables[name] = [annotation.rewrap(v) for v in items] if annotation else list(items)
        else:
            static[name] = value if annotation is not None and inner is value.value else inner
    if not iterables:
        raise MappingMissingIterable(
            f"Task.map of {task.name!r} got no iterable argument to map over "
            f"(parameters: {sorted(parameters)}); wrap constants in unmapped()"
        )
    lengths = {name: len(items) for name, items in iterables.items()}
    if len(set(lengths.values())) > 1:
        raise MappingLengthMismatch(
            f"Task.map of {task.name!r} got iterables of different lengths: {lengths}"
        )
    count = next(iter(lengths.values()))
    calls = []
    for i in range(count):
        call = dict(static)
        for name, items in iterables.items():
            call[name] = items[i]
        calls.append(task.signature.apply_defaults(call))
    return calls, dependencies
