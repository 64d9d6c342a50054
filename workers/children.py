"""A worker's child processes: the warm ones waiting, the busy ones, and their monitor.

``take()`` gives a warm child: one that finished a run and was kept (its pages are already
its own, so it is the quickest), else one the zygote forked ahead of time; either way the
pool asks the zygote for more to keep ``warm`` ready. The monitor thread waits on every
child's channel: a ``done`` report or an unexpected end (the channel closes) is handed to
``on_finished``; a child that is not retiring goes back to the warm ones.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from workers.process import Child, Zygote, ZygoteGone

logger = logging.getLogger("prefect_lite.workers.children")

FORK_TIMEOUT_SECONDS = 30.0


class ChildPool:
    def __init__(
        self,
        warm: int,
        on_finished: Callable[[Child], None],
        next_deadline: Callable[[], float | None],
        on_deadline: Callable[[], None],
    ) -> None:
        self.warm = max(1, warm)
        self.zygote = Zygote()
        self.idle: list[Child] = []
        self.busy: dict[str, Child] = {}
        self.lock = threading.Lock()
        self._on_finished = on_finished
        self._next_deadline = next_deadline
        self._on_deadline = on_deadline
        self._stopped = threading.Event()
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._woken = threading.Event()
        self._thread = threading.Thread(target=self._monitor, name="worker-monitor", daemon=True)

    def start(self) -> None:
        self._top_up()
        self._thread.start()

    def _top_up(self) -> None:
        with self.lock:
            missing = self.warm - len(self.idle) - self.zygote.ready()
        for _ in range(max(0, missing)):
            self.zygote.request_fork()

    def take(self) -> Child:
        """A warm child: a kept one, else a forked one (a dead zygote is replaced once)."""
        with self.lock:
            child = self.idle.pop() if self.idle else None
        if child is None:
            child = self._forked()
        self._top_up()
        return child

    def _forked(self) -> Child:
        for attempt in range(2):
            if not self.zygote.alive():
                logger.warning("the zygote process is gone; starting a new one")
                self.zygote = Zygote()
            try:
                if self.zygote.ready() == 0:
                    self.zygote.request_fork()
                return self.zygote.take_forked(FORK_TIMEOUT_SECONDS)
            except (ZygoteGone, OSError):
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def assign(self, key: str, child: Child, kind: str, run_id: str, **payload: Any) -> Child:
        """Give the child its work; a child found dead is dropped and another one used."""
        for attempt in range(3):
            with self.lock:
                self.busy[key] = child
            try:
                child.assign(kind, run_id, **payload)
                return child
            except OSError:
                with self.lock:
                    self.busy.pop(key, None)
                child.channel.close()
                if attempt == 2:
                    raise
                child = self.take()
            finally:
                self.wake()
        raise AssertionError("unreachable")

    def busy_children(self) -> list[Child]:
        with self.lock:
            return list(self.busy.values())

    def find(self, key: str) -> Child | None:
        with self.lock:
            return self.busy.get(key)

    def wake(self) -> None:
        if not self._woken.is_set():
            self._woken.set()
            self._wake_w.send_bytes(b"1")

    # ------------------------------------------------------------------ the monitor
    def _monitor(self) -> None:
        leaving: set[Child] = set()  # retired after their run, not closed yet
        while not self._stopped.is_set():
            with self.lock:
                watched: dict[Any, Child] = {c.channel: c for c in self.busy.values()}
                watched.update({c.channel: c for c in self.idle})
            watched.update({c.channel: c for c in leaving})
            ready = wait([self._wake_r, *watched], timeout=self._next_deadline())
            for conn in ready:
                if conn is self._wake_r:
                    self._woken.clear()
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
                    continue
                self._read(watched[conn], leaving)
            self._on_deadline()

    def _read(self, child: Child, leaving: set[Child]) -> None:
        try:
            message = child.channel.recv()
        except (EOFError, OSError):
            self._ended(child, leaving)
            return
        if not message or message[0] != "done":
            return
        child.done = tuple(message[1:])
        self._release(child)
        self._report(child)
        if child.retiring:
            leaving.add(child)
        else:
            with self.lock:
                self.idle.append(child)

    def _ended(self, child: Child, leaving: set[Child]) -> None:
        """A child's channel closed: it exited (after retiring, or it died)."""
        child.channel.close()
        leaving.discard(child)
        with self.lock:
            if child in self.idle:
                self.idle.remove(child)
        was_busy = self._release(child)
        if was_busy and child.done is None:
            child.exit_code = self.zygote.wait_exit(child.pid, timeout=2.0)
            self._report(child)
        else:
            self.zygote.wait_exit(child.pid, timeout=0.0)
        self._top_up()

    def _release(self, child: Child) -> bool:
        with self.lock:
            for key, held in list(self.busy.items()):
                if held is child:
                    del self.busy[key]
                    return True
        return False

    def _report(self, child: Child) -> None:
        try:
            self._on_finished(child)
        except Exception:
            logger.exception("Could not report the end of flow run %s", child.run_id)

    def close(self, wait_seconds: float = 5.0) -> None:
        self._stopped.set()
        self.wake()
        self._thread.join(timeout=wait_seconds)
        with self.lock:
            children = [*self.idle, *self.busy.values()]
            self.idle.clear()
        for child in children:
            child.channel.close()
        self.zygote.close(timeout=wait_seconds)
